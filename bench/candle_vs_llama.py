#!/usr/bin/env python3
"""candle against llama.cpp on the same weights: SmolLM2-135M dequantized to F32, as a GGUF
(llama.cpp) and as a Hugging Face folder (candle), both written by `uml convert`. `uml bench`
measures both the same way (pp = prompt tokens/s in n_batch chunks on a fresh context, tg =
one-token decodes), alternated, same threads; reports candle/llama.cpp per test with a 95%
bootstrap CI (bench/stats.py) against the target (>= 0.8 at F32). With --quantized it also
reports candle F32 against llama.cpp's Q8_0 and the original Q4_1 GGUF, to show what the
quantized kernels buy.

Usage: bench/candle_vs_llama.py [--rounds 7] [--reps 3] [--quantized]
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
    ap.add_argument("--quantized", action="store_true", help="also compare with Q8_0 and the original GGUF")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "f32.gguf")
        hf = os.path.join(tmp, "hf")
        subprocess.run([args.uml, "convert", args.model, f32, "--to", "gguf", "--type", "f32"], check=True)
        subprocess.run([args.uml, "convert", args.model, hf, "--to", "hf"], check=True)
        references = [("llama.cpp F32", f32)]
        if args.quantized:
            q8 = os.path.join(tmp, "q8_0.gguf")
            subprocess.run([args.uml, "convert", args.model, q8, "--to", "gguf", "--type", "q8_0"], check=True)
            references += [("llama.cpp Q8_0", q8), ("llama.cpp " + os.path.basename(args.model), args.model)]

        samples = {"candle F32": {}}
        for name, _ in references:
            samples[name] = {}
        for _ in range(args.rounds):
            runs = [("candle F32", hf, "candle")] + [(name, path, "llamacpp") for name, path in references]
            for name, path, backend in runs:
                for test, tps in bench(args.uml, path, backend, args.threads, args.p, args.n, args.reps).items():
                    samples[name].setdefault(test, []).append(tps)
    print(json.dumps(samples, indent=1), file=sys.stderr)

    print(f"SmolLM2-135M, threads {args.threads}, {args.rounds} rounds x {args.reps} repetitions, alternated\n")
    print("| test | candle F32 t/s | reference | reference t/s | candle / reference [95% CI] | verdict |")
    print("| --- | ---: | --- | ---: | ---: | --- |")
    for name, _ in references:
        for test in samples["candle F32"]:
            ci = stats.ratio_ci(samples["candle F32"][test], samples[name][test])
            verdict = stats.verdict(ci, args.target) if name == "llama.cpp F32" else "(context)"
            print(f"| {test} | {ci['uml']:.1f} | {name} | {ci['ref']:.1f} | {stats.fmt_ci(ci)} | {verdict} |")


if __name__ == "__main__":
    main()
