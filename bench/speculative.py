#!/usr/bin/env python3
"""Speculative decoding: generation tokens/s of SmolLM2 as an F32 GGUF (the model) with and
without SmolLM2 Q4_1 as its draft, next to llama.cpp's `llama-speculative` on the same pair,
alternated per round (greedy, the same prompt, draft length and threads for both).

The F32 file is made once with `uml convert MODEL.gguf F32.gguf --to gguf --type f32` (kept
under target/bench/). Reports the median per-round ratios with 95% bootstrap intervals
(bench/stats.py): uml with the draft / uml without (target >= 1.5) and uml with the draft /
llama-speculative (target >= 1.0). llama-speculative comes from ../shared/tools/llama-reference
(llama.cpp a few days older than the crate's: say so beside any ratio).

uml also stops a draft at the draft's near-ties (`--draft-margin-min`, default 0.25 logits);
llama-speculative has no such rule. `--draft-margin-min 0` measures uml without it.

Usage: bench/speculative.py [--rounds 7] [--draft-max 16] [--draft-p-min 0] [--draft-margin-min M] [--n 256]
"""
import argparse
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402
import stats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def uml_run(args, target, draft):
    cmd = [args.uml, "run", target, args.prompt, "--max-tokens", str(args.n), "--temperature", "0", "--json",
           "--quiet", "-t", str(args.threads), "--ctx", "1024"]
    if draft:
        cmd += ["--draft-model", args.draft, "--draft-max", str(args.draft_max), "--draft-p-min", str(args.draft_p_min)]
        if args.draft_margin_min is not None:
            cmd += ["--draft-margin-min", str(args.draft_margin_min)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    u = out["usage"]
    return u["generation_tokens_per_second"], u["drafted_tokens"], u["accepted_tokens"], out["text"]


def llama_speculative(args, tool, target):
    cmd = [tool, "-m", target, "-md", args.draft, "-p", args.prompt, "-n", str(args.n), "--temp", "0",
           "-t", str(args.threads), "-c", "1024", "--spec-draft-n-max", str(args.draft_max),
           "--spec-draft-p-min", str(args.draft_p_min)]
    err = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
    speed = re.search(r"decoded\s+\d+ tokens in\s+[\d.]+ seconds, speed:\s+([\d.]+) t/s", err)
    drafted = re.search(r"n_drafted\s*=\s*(\d+)", err)
    accepted = re.search(r"n_accept\s*=\s*(\d+)", err)
    if not speed:
        sys.exit(f"speculative: no speed in llama-speculative's output:\n{err[-2000:]}")
    return float(speed.group(1)), int(drafted.group(1)), int(accepted.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draft", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--prompt", default="Once upon a time")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--draft-max", type=int, default=16)
    ap.add_argument("--draft-p-min", type=float, default=0.0)
    ap.add_argument("--draft-margin-min", type=float, default=None,
                    help="uml's near-tie stop (default: uml's own, 0.25; llama-speculative has none)")
    ap.add_argument("--uml", default=os.path.join(ROOT, "target", "release", "uml"))
    ap.add_argument("--llama-speculative")
    args = ap.parse_args()

    target = os.path.join(ROOT, "target", "bench", "smollm2-f32.gguf")
    if not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        subprocess.run([args.uml, "convert", args.draft, target, "--to", "gguf", "--type", "f32"], check=True)
    tool = reference.tool("llama-speculative", args.llama_speculative)
    plain, drafted, ref = [], [], []
    counts = {"uml": [0, 0], "llama-speculative": [0, 0]}
    for _ in range(args.rounds):
        speed, _, _, text_plain = uml_run(args, target, False)
        plain.append(speed)
        speed, d, a, text_drafted = uml_run(args, target, True)
        drafted.append(speed)
        counts["uml"][0] += d
        counts["uml"][1] += a
        if text_drafted != text_plain:
            print("speculative: note: uml's text with the draft differs from without (a near-tie?)", file=sys.stderr)
        speed, d, a = llama_speculative(args, tool, target)
        ref.append(speed)
        counts["llama-speculative"][0] += d
        counts["llama-speculative"][1] += a
    print(json.dumps({"uml_plain": plain, "uml_draft": drafted, "llama_speculative": ref, "counts": counts},
                     indent=1), file=sys.stderr)
    print(f"SmolLM2 F32 with the Q4_1 draft, {args.n} greedy tokens of {args.prompt!r}, draft max "
          f"{args.draft_max}, p-min {args.draft_p_min}, uml's margin-min "
          f"{'0.25 (default)' if args.draft_margin_min is None else args.draft_margin_min}, {args.threads} threads, {args.rounds} alternated rounds\n")
    print("| measure | uml | reference | ratio [95% CI] | verdict |")
    print("| --- | ---: | ---: | ---: | --- |")
    ci = stats.ratio_ci(drafted, plain)
    print(f"| tg t/s: uml with draft / uml without | {ci['uml']:.1f} | {ci['ref']:.1f} | {stats.fmt_ci(ci)} | "
          f"{stats.verdict(ci, 1.5)} |")
    ci = stats.ratio_ci(drafted, ref)
    print(f"| tg t/s: uml with draft / llama-speculative | {ci['uml']:.1f} | {ci['ref']:.1f} | {stats.fmt_ci(ci)} | "
          f"{stats.verdict(ci, 1.0)} |")
    for name, (d, a) in counts.items():
        print(f"\n{name}: accepted {a} of {d} drafted ({a / max(d, 1):.2f})")


if __name__ == "__main__":
    main()
