#!/usr/bin/env bash
# Builds bench/c_threads.c against the release libuml and runs it on SmolLM2: generation speed
# from 8 long-lived pthreads against the main thread (target: ratio >= 0.95).
# Usage: bench/c_threads.sh [MODEL] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-${UML_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf}
cargo build --release -p uml-ffi --quiet
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cc -O2 -Wall -Wextra -Iinclude bench/c_threads.c -Ltarget/release -luml -lpthread -o "$OUT/c_threads"
LD_LIBRARY_PATH=target/release "$OUT/c_threads" "$MODEL" "${2:-3}"
