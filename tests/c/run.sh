#!/usr/bin/env bash
# C / C++ packaging and memory tests, run by scripts/test after the cargo tests (which compile
# and run the C test programs themselves: ffi/tests/c_programs.rs):
#   1. scripts/install-libuml into a temporary prefix;
#   2. examples/c/generate.c built with `pkg-config --cflags --libs uml` and run;
#   3. examples/cpp/chat.cpp and a static generate built with CMake's find_package(uml)
#      (uml::uml, uml::uml_static) and run;
#   4. the portable build (scripts/build-portable: llama.cpp's CPU kernels as run-time modules)
#      checked by scripts/test-portable, then tests/c/test_smollm2.c against the greedy
#      fixtures again on its AVX2 variant (the cargo tests used the native kernels), so a
#      fixture that holds on one CPU kernel path only fails here (tests/fixtures/README.md);
#   5. a load -> generate -> free program under valgrind (on that portable build, which loads
#      a variant valgrind runs; it cannot execute the native build's AVX-512): no definite or indirect leaks, no
#      memory errors (suppressions: tests/c/valgrind.supp, each with its reason); and the same
#      program on the native build under LeakSanitizer, with a negative control.
# Needs the SmolLM2 test model (scripts/fetch-models), cmake, pkg-config, valgrind and
# abigail-tools (scripts/check-abi).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
MODEL=${UML_MODELS:-$ROOT/models}/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$MODEL" ]; then
    echo "tests/c/run.sh: test model $MODEL is missing: run scripts/fetch-models first" >&2
    exit 1
fi
for tool in cc c++ cmake pkg-config valgrind abidiff; do
    command -v "$tool" >/dev/null || { echo "tests/c/run.sh: $tool is missing (scripts/bootstrap installs it)" >&2; exit 1; }
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PREFIX=$TMP/prefix
PROMPT="The capital of France is"

echo "== install libuml into a temporary prefix"
scripts/install-libuml "$PREFIX"

echo "== the C ABI against its recorded baseline (scripts/check-abi), and its negative controls"
scripts/check-abi
scripts/check-abi --self-test

echo "== pkg-config: build and run examples/c/generate.c"
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
flags=$(pkg-config --cflags --libs uml)
echo "pkg-config --cflags --libs uml: $flags"
# shellcheck disable=SC2086 # word splitting of the flags is wanted
cc -std=c11 -Wall -Wextra -Werror examples/c/generate.c $flags -o "$TMP/generate"
LD_LIBRARY_PATH=$PREFIX/lib "$TMP/generate" "$MODEL" "$PROMPT" 8 >"$TMP/generate.out" 2>"$TMP/generate.err"
cat "$TMP/generate.out"
grep -q '"finish_reason":"length"' "$TMP/generate.err"
# Linked against the soname, not the unversioned development link.
objdump -p "$TMP/generate" | grep -q 'NEEDED *libuml\.so\.[0-9]'

[ -s "$TMP/generate.out" ]

echo "== CMake find_package(uml): build the C++ chat example (shared) and generate (static)"
cmake -S tests/c/cmake -B "$TMP/cmake-build" -DCMAKE_PREFIX_PATH="$PREFIX" -DUML_EXAMPLES="$ROOT/examples" \
    -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$TMP/cmake-build" -j 2 >/dev/null
printf 'What is the capital of France?\n' | LD_LIBRARY_PATH=$PREFIX/lib "$TMP/cmake-build/chat" "$MODEL" "You are a helpful assistant." >"$TMP/chat.out"
cat "$TMP/chat.out"
grep -q 'Paris' "$TMP/chat.out"
# The static build must not need libuml.so at run time.
if ldd "$TMP/cmake-build/generate_static" | grep -q libuml; then
    echo "tests/c/run.sh: generate_static links libuml.so dynamically" >&2
    exit 1
fi
"$TMP/cmake-build/generate_static" "$MODEL" "$PROMPT" 8 >"$TMP/static.out" 2>/dev/null
cmp "$TMP/generate.out" "$TMP/static.out"

echo "== build the portable uml and libuml (scripts/build-portable)"
# The native build (target-cpu=native) executes AVX-512 on CPUs that have it, which valgrind
# 3.19 does not implement. The portable build loads the best CPU variant the CPU reports, and
# under valgrind that is one it can run. Its own target dir compiles llama.cpp with its 14 CPU
# variants (about 11 minutes on 2 cores, once per machine).
scripts/build-portable "$TMP/portable" >/dev/null
cc -std=c11 -g -Iinclude examples/c/generate.c -L"$TMP/portable" -luml \
    -Wl,--disable-new-dtags,-rpath,"$TMP/portable" -o "$TMP/generate_portable"
echo "== the portable build as a user runs it: every CPU variant this CPU runs gives the fixture text"
scripts/test-portable "$TMP/portable"
echo "== greedy fixtures on a second CPU kernel path: tests/c/test_smollm2.c on the portable libuml, AVX2 kernels"
# The cargo tests checked the fixtures on this machine's native build (AVX-512 where the CPU
# has it); the same checks on the AVX2 variant (haswell) make a fixture that only one kernel
# path satisfies fail here, not on the next user's machine. The trusted prefixes are read as
# recorded: the Rust and Python tests of this run check them against the per-token margins.
cc -std=c11 -O1 -g -Wall -Wextra -Werror -Iinclude tests/c/test_smollm2.c -L"$TMP/portable" -luml \
    -Wl,--disable-new-dtags,-rpath,"$TMP/portable" -lpthread -lm -o "$TMP/test_smollm2_portable"
fixture_args=()
while IFS= read -r -d '' arg; do fixture_args+=("$arg"); done < <(python3 - <<'PY'
import json, sys
def load(name):
    return json.load(open(f"tests/fixtures/{name}"))
c, chat = load("smollm2_count_greedy.json"), load("smollm2_chat_greedy.json")
args = [c["prompt"], str(c["trusted_tokens"]), c["trusted_completion"],
        json.dumps(chat["messages"]), str(chat["trusted_tokens"]), chat["trusted_completion"]]
sys.stdout.write("".join(a + "\0" for a in args))
PY
)
# As README asks of hosts: llama.cpp's OpenMP spin budget (the cancel-under-load check needs it).
GOMP_SPINCOUNT=1000 UML_CPU_VARIANT=haswell "$TMP/test_smollm2_portable" "$MODEL" "${fixture_args[@]}"

echo "== valgrind: load -> generate -> free on a portable build, no leaks and no memory errors"
if ! valgrind --error-exitcode=1 --leak-check=full \
    --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
    --suppressions=tests/c/valgrind.supp --num-callers=30 \
    "$TMP/generate_portable" "$MODEL" "Hi" 2 >/dev/null 2>"$TMP/valgrind.log"; then
    cat "$TMP/valgrind.log" >&2
    echo "tests/c/run.sh: valgrind found errors or leaks (above)" >&2
    exit 1
fi
grep -E "definitely lost|indirectly lost|ERROR SUMMARY" "$TMP/valgrind.log" || true
echo "valgrind: clean"

echo "== LeakSanitizer: the same program on the native build"
# LeakSanitizer runs natively, so it checks the build users actually get; a negative control
# proves it sees allocations made inside libuml.
cc -std=c11 -g -fsanitize=leak -Iinclude examples/c/generate.c -L"$PREFIX/lib" -luml \
    -Wl,--disable-new-dtags,-rpath,"$PREFIX/lib" -o "$TMP/generate_lsan"
"$TMP/generate_lsan" "$MODEL" "Hi" 2 >/dev/null 2>"$TMP/lsan.log" || {
    cat "$TMP/lsan.log" >&2
    echo "tests/c/run.sh: LeakSanitizer found leaks (above)" >&2
    exit 1
}
cc -std=c11 -g -fsanitize=leak -Iinclude tests/c/leak_control.c -L"$PREFIX/lib" -luml \
    -Wl,--disable-new-dtags,-rpath,"$PREFIX/lib" -o "$TMP/leak_control"
if "$TMP/leak_control" 2>"$TMP/control.log" || ! grep -q "Direct leak" "$TMP/control.log"; then
    cat "$TMP/control.log" >&2
    echo "tests/c/run.sh: the negative control's deliberate leak was not reported" >&2
    exit 1
fi
echo "LeakSanitizer: load -> generate -> free clean; the deliberate leak of the control is reported"
echo "tests/c/run.sh: all C / C++ packaging and memory tests passed"
