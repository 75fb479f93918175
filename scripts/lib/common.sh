# Sourced by the scripts that build, package and test uml (from the repository root): the few
# facts more than one of them needs, defined once.

# uml's version (the workspace's Cargo.toml).
uml_version() { sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1; }

# One field of a JSON file (a greedy fixture's prompt, trusted_tokens, trusted_completion).
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }

# What every package carries beside its own binary, from a folder scripts/build-portable made:
# llama.cpp's libraries, the OpenMP runtime they need and the backend modules, one per line.
portable_libs() { printf '%s\n' "$1"/lib{llama,llama-common,ggml,ggml-base,gomp}.so.* "$1"/libggml-*.so; }
