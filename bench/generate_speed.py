#!/usr/bin/env python3
"""End-to-end generation speed (sampling, detokenizing, streaming included) of two uml builds,
alternated: `uml run --json` reports generation tokens/s in its usage. Use it to check that a
change to the generation loop or the sampler costs nothing, e.g. the build before and after:

  cp target/release/uml /tmp/uml-before    # before the change
  cargo build --release -p uml-cli         # after it
  bench/generate_speed.py --a /tmp/uml-before --b target/release/uml

Reports the median per-round ratio b/a with a 95% bootstrap confidence interval
(bench/stats.py) against the target (>= 0.98 by default).
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tokens_per_second(uml, model, prompt, max_tokens, seed, sampling):
    cmd = [uml, "run", model, prompt, "--max-tokens", str(max_tokens), "--seed", str(seed),
           "--ctx", "1024", "--quiet", "--json"] + sampling
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return out["usage"]["generation_tokens_per_second"], out["usage"]["completion_tokens"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="the baseline uml binary")
    ap.add_argument("--b", required=True, help="the uml binary under test")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--prompt", default="Once upon a time")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("--greedy", action="store_true", help="temperature 0 instead of the defaults")
    args = ap.parse_args()

    sampling = ["--temperature", "0"] if args.greedy else []
    samples = {"a": [], "b": []}
    lengths = {"a": [], "b": []}
    for r in range(args.rounds):
        for name, uml in (("a", args.a), ("b", args.b)):
            tps, n = tokens_per_second(uml, args.model, args.prompt, args.max_tokens, r + 1, sampling)
            samples[name].append(tps)
            lengths[name].append(n)
    print(json.dumps({"tokens_per_second": samples, "completion_tokens": lengths}, indent=1), file=sys.stderr)
    ci = stats.ratio_ci(samples["b"], samples["a"])
    mode = "greedy" if args.greedy else "default sampling (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05)"
    print(f"generate, {mode}, {args.max_tokens} tokens max, {args.rounds} rounds alternated\n")
    print("| build | tokens/s (median) |\n| --- | ---: |")
    print(f"| a: {args.a} | {ci['ref']:.1f} |\n| b: {args.b} | {ci['uml']:.1f} |\n")
    print(f"b/a: {stats.fmt_ci(ci)}, {stats.verdict(ci, args.target)}")


if __name__ == "__main__":
    main()
