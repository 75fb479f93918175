#!/usr/bin/env python3
"""candle against llama.cpp on the same weights, per weight type: SmolLM2-135M dequantized to
F32 (a Hugging Face folder for candle, a GGUF for llama.cpp), and requantized to Q8_0 and Q4_0
GGUFs that both engines run (candle through its quantized kernels), plus the original Q4_1
file. All written by `uml convert`. `uml bench` measures each the same way (pp = prompt
tokens/s in n_batch chunks on a fresh context, tg = one-token decodes), candle and llama.cpp
alternated, same threads; reports candle/llama.cpp per test with a 95% bootstrap CI
(bench/stats.py) against the target (>= 0.8 at F32).

Usage: bench/candle_vs_llama.py [--rounds 7] [--reps 3]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench(uml, model, backend, threads, p, n, reps):
    cmd = [uml, "bench", model, "--backend", backend, "-t", str(threads), "-p", str(p), "-n", str(n),
           "-r", str(reps), "--ctx", str(p + n), "--quiet", "--json"]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {t["test"]: t["median"] for t in report["tests"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uml", default=os.path.join(ROOT, "target", "release", "uml"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--target", type=float, default=0.8)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        def convert(dst, *extra):
            subprocess.run([args.uml, "convert", args.model, dst, *extra], check=True,
                           capture_output=True)
            return dst

        hf = convert(os.path.join(tmp, "hf"), "--to", "hf")
        pairs = [("F32", hf, convert(os.path.join(tmp, "f32.gguf"), "--to", "gguf", "--type", "f32"))]
        for ty in ["q8_0", "q4_0"]:
            path = convert(os.path.join(tmp, f"{ty}.gguf"), "--to", "gguf", "--type", ty)
            pairs.append((ty.upper(), path, path))
        pairs.append(("Q4_1 (original)", args.model, args.model))

        samples = {name: {"candle": {}, "llamacpp": {}} for name, _, _ in pairs}
        for _ in range(args.rounds):
            for name, candle_model, llama_model in pairs:
                for backend, path in [("candle", candle_model), ("llamacpp", llama_model)]:
                    for test, tps in bench(args.uml, path, backend, args.threads, args.p, args.n,
                                           args.reps).items():
                        samples[name][backend].setdefault(test, []).append(tps)
    print(json.dumps(samples, indent=1), file=sys.stderr)

    print(f"SmolLM2-135M, threads {args.threads}, {args.rounds} rounds x {args.reps} repetitions, alternated\n")
    print("| weights | test | candle t/s | llama.cpp t/s | candle / llama.cpp [95% CI] | verdict |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for name, _, _ in pairs:
        for test in samples[name]["candle"]:
            ci = stats.ratio_ci(samples[name]["candle"][test], samples[name]["llamacpp"][test])
            verdict = stats.verdict(ci, args.target) if name == "F32" else "(reported)"
            print(f"| {name} | {test} | {ci['uml']:.1f} | {ci['ref']:.1f} | {stats.fmt_ci(ci)} | {verdict} |")


if __name__ == "__main__":
    main()
