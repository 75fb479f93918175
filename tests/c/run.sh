#!/usr/bin/env bash
# C / C++ packaging and memory tests, run by scripts/test after the cargo tests (which compile
# and run the C test programs themselves: ffi/tests/c_programs.rs):
#   1. scripts/install-libuml into a temporary prefix;
#   2. examples/c/generate.c built with `pkg-config --cflags --libs uml` and run;
#   3. examples/cpp/chat.cpp and a static generate built with CMake's find_package(uml)
#      (uml::uml, uml::uml_static) and run;
#   4. a load -> generate -> free program under valgrind: no definite or indirect leaks,
#      no memory errors (suppressions: tests/c/valgrind.supp, each with its reason).
# Needs the SmolLM2 test model (scripts/fetch-models), cmake, pkg-config and valgrind.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
MODEL=${UML_MODELS:-$ROOT/models}/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$MODEL" ]; then
    echo "tests/c/run.sh: test model $MODEL is missing: run scripts/fetch-models first" >&2
    exit 1
fi
for tool in cc c++ cmake pkg-config valgrind; do
    command -v "$tool" >/dev/null || { echo "tests/c/run.sh: $tool is missing (scripts/bootstrap installs it)" >&2; exit 1; }
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PREFIX=$TMP/prefix
PROMPT="The capital of France is"

echo "== install libuml into a temporary prefix"
scripts/install-libuml "$PREFIX"

echo "== pkg-config: build and run examples/c/generate.c"
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
flags=$(pkg-config --cflags --libs uml)
echo "pkg-config --cflags --libs uml: $flags"
# shellcheck disable=SC2086 # word splitting of the flags is wanted
cc -std=c11 -Wall -Wextra -Werror examples/c/generate.c $flags -o "$TMP/generate"
LD_LIBRARY_PATH=$PREFIX/lib "$TMP/generate" "$MODEL" "$PROMPT" 8 >"$TMP/generate.out" 2>"$TMP/generate.err"
cat "$TMP/generate.out"
grep -q '"finish_reason":"length"' "$TMP/generate.err"
[ -s "$TMP/generate.out" ]

echo "== CMake find_package(uml): build the C++ chat example (shared) and generate (static)"
cmake -S tests/c/cmake -B "$TMP/cmake-build" -DCMAKE_PREFIX_PATH="$PREFIX" -DUML_EXAMPLES="$ROOT/examples" \
    -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$TMP/cmake-build" -j 2 >/dev/null
printf 'What is the capital of France?\n' | LD_LIBRARY_PATH=$PREFIX/lib "$TMP/cmake-build/chat" "$MODEL" >"$TMP/chat.out"
cat "$TMP/chat.out"
grep -q 'Paris' "$TMP/chat.out"
# The static build must not need libuml.so at run time.
if ldd "$TMP/cmake-build/generate_static" | grep -q libuml; then
    echo "tests/c/run.sh: generate_static links libuml.so dynamically" >&2
    exit 1
fi
"$TMP/cmake-build/generate_static" "$MODEL" "$PROMPT" 8 >"$TMP/static.out" 2>/dev/null
cmp "$TMP/generate.out" "$TMP/static.out"

echo "== valgrind: load -> generate -> free, no leaks and no memory errors"
LD_LIBRARY_PATH=$PREFIX/lib valgrind --error-exitcode=1 --leak-check=full \
    --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
    --suppressions=tests/c/valgrind.supp --num-callers=30 \
    "$TMP/generate" "$MODEL" "Hi" 2 >/dev/null 2>"$TMP/valgrind.log" || {
    cat "$TMP/valgrind.log" >&2
    echo "tests/c/run.sh: valgrind found errors or leaks (above)" >&2
    exit 1
}
echo "valgrind: clean"
echo "tests/c/run.sh: all C / C++ packaging and memory tests passed"
