#!/usr/bin/env python3
"""The portable build (scripts/build-portable: llama.cpp's CPU kernels loaded at run time, one
module per x86-64 level) against the native build (target-cpu=native, kernels compiled in),
`uml bench` pp and tg on the same model and threads, alternated per round. Reports the median
per-round ratio portable / native with its 95% bootstrap interval (bench/stats.py); target
>= 0.98. UML_CPU_VARIANT picks the portable build's variant (default: the best for this CPU).

Usage: bench/portable.py [--portable dist/portable/uml] [--native target/release/uml]
                         [--variant haswell] [--rounds 7]
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench(uml, model, threads, p, n, reps, variant=None):
    env = dict(os.environ)
    if variant:
        env["UML_CPU_VARIANT"] = variant
    cmd = [uml, "bench", model, "-t", str(threads), "-p", str(p), "-n", str(n), "-r", str(reps),
           "--ctx", str(p + n), "--quiet", "--json", "--backend", "llamacpp"]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)
    return {t["test"]: t["median"] for t in report["tests"]}


def kernels(uml, variant):
    env = dict(os.environ)
    if variant:
        env["UML_CPU_VARIANT"] = variant
    out = subprocess.run([uml, "hw", "--json"], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)["cpu_kernels"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--portable", default=os.path.join(ROOT, "dist", "portable", "uml"))
    ap.add_argument("--native", default=os.path.join(ROOT, "target", "release", "uml"))
    ap.add_argument("--variant", help="the portable build's CPU variant (UML_CPU_VARIANT)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    args = ap.parse_args()

    variant = kernels(args.portable, args.variant)
    samples = {"portable": {}, "native": {}}
    for _ in range(args.rounds):
        for name, uml, v in (("portable", args.portable, args.variant), ("native", args.native, None)):
            for test, tps in bench(uml, args.model, args.threads, args.p, args.n, args.reps, v).items():
                samples[name].setdefault(test, []).append(tps)
    print(json.dumps(samples, indent=1), file=sys.stderr)
    print(f"model: {os.path.basename(args.model)}, threads: {args.threads}, portable variant: {variant}, "
          f"rounds: {args.rounds} x {args.reps} repetitions, alternated\n")
    print("| test | portable t/s | native t/s | portable / native [95% CI] | verdict |")
    print("| --- | ---: | ---: | ---: | --- |")
    for test in samples["portable"]:
        ci = stats.ratio_ci(samples["portable"][test], samples["native"][test])
        print(f"| {test} | {ci['uml']:.1f} | {ci['ref']:.1f} | {stats.fmt_ci(ci)} | "
              f"{stats.verdict(ci, args.target)} |")


if __name__ == "__main__":
    main()
