#!/usr/bin/env bash
# Builds bench/c_threads.c against the release libuml and runs it on SmolLM2: generation speed
# from 8 long-lived pthreads against the main thread (target: ratio >= 0.95).
# Usage: bench/c_threads.sh [MODEL] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-${UML_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf}
MODEL=$(realpath "$MODEL")
cargo build --release -p uml-ffi --quiet
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
# The library by its soname (libuml.so.1), as an installed one is found.
cp target/release/libuml.so "$OUT/libuml.so.1"
ln -s libuml.so.1 "$OUT/libuml.so"
cc -O2 -Wall -Wextra -Iinclude bench/c_threads.c -L"$OUT" -luml -lpthread -o "$OUT/c_threads"
LD_LIBRARY_PATH=$OUT "$OUT/c_threads" "$MODEL" "${2:-3}"
