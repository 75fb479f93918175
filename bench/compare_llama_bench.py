#!/usr/bin/env python3
"""uml vs llama.cpp's own llama-bench on the same model, threads and machine.

Alternates the two (uml, reference, uml, reference, ...) so drift on a shared machine hits both,
and reports, per test, the median of the per-round ratios with a 95% bootstrap confidence
interval (bench/stats.py) and whether it meets the target (>= 0.98), misses it, or the machine
was too noisy to conclude. The reference tools come from ../shared/tools/llama-reference
(llama.cpp built from the llama-cpp-python sdist, a few days older than the llama.cpp that
llama-cpp-sys-2 vendors: say so beside any ratio).

To compare a CPU path other than this machine's native one, build both sides for it, e.g. AVX2:
  RUSTFLAGS="-C target-cpu=x86-64-v3" CARGO_TARGET_DIR=target/portable cargo build --release -p uml-cli
  GGML_NATIVE=OFF ../shared/tools/llama-reference ~/.cache/uml/llama-reference-avx2
  bench/compare_llama_bench.py --uml target/portable/release/uml \
      --llama-bench ~/.cache/uml/llama-reference-avx2/bin/llama-bench --label avx2

Usage: bench/compare_llama_bench.py [--model M] [--threads T] [--rounds R] [--llama-bench PATH]
Prints a Markdown table (for BENCHMARKS.md) and the raw samples as JSON on stderr.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402
import stats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_uml(uml, model, threads, p, n, reps):
    cmd = [uml, "bench", model, "-t", str(threads), "-p", str(p), "-n", str(n), "-r", str(reps),
           "--ctx", str(p + n), "--quiet", "--json"]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {t["test"]: t["median"] for t in report["tests"]}


def run_reference(llama_bench, model, threads, p, n, reps):
    cmd = [llama_bench, "-m", model, "-t", str(threads), "-p", str(p), "-n", str(n), "-r", str(reps),
           "-o", "json"]
    rows = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    result = {}
    for row in rows:
        name = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
        result[name] = row["avg_ts"]
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("--label", default="native", help="the CPU path both sides were built for")
    ap.add_argument("--reps", type=int, default=5, help="repetitions inside each tool run")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--uml", default=os.path.join(ROOT, "target", "release", "uml"))
    ap.add_argument("--llama-bench")
    args = ap.parse_args()

    llama_bench = reference.tool("llama-bench", args.llama_bench)
    samples = {"uml": {}, "llama.cpp": {}}
    for _ in range(args.rounds):
        for name, fn, tool in (("uml", run_uml, args.uml), ("llama.cpp", run_reference, llama_bench)):
            for test, tps in fn(tool, args.model, args.threads, args.p, args.n, args.reps).items():
                samples[name].setdefault(test, []).append(tps)
    print(json.dumps(samples, indent=1), file=sys.stderr)

    print(f"model: {os.path.basename(args.model)}, threads: {args.threads}, CPU path: {args.label}, "
          f"rounds: {args.rounds} x {args.reps} repetitions, alternated\n")
    print("| test | uml t/s | llama-bench t/s | ratio [95% CI] | verdict |")
    print("| --- | ---: | ---: | ---: | --- |")
    for test in samples["uml"]:
        ci = stats.ratio_ci(samples["uml"][test], samples["llama.cpp"][test])
        print(f"| {test} | {ci['uml']:.1f} | {ci['ref']:.1f} | {stats.fmt_ci(ci)} | "
              f"{stats.verdict(ci, args.target)} |")
    for test in samples["uml"]:
        print(f"\n{test} per round (t/s): uml {stats.describe_rounds(samples['uml'][test])}; "
              f"llama-bench {stats.describe_rounds(samples['llama.cpp'][test])}")


if __name__ == "__main__":
    main()
