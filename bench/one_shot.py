#!/usr/bin/env python3
"""Time and memory to the first token: a one-shot `uml run MODEL PROMPT --max-tokens 1` against
llama.cpp's `llama-simple -m MODEL -n 1 PROMPT`, as fresh processes, alternated.

Each round runs both once; per tool it records wall time (fork to exit) and peak RSS (the
child's ru_maxrss). Reports the median per-round ratio uml/llama-simple with a 95% bootstrap
confidence interval (bench/stats.py) against the target (<= 1.1). Neither side is given a
context size: uml sizes a one-shot context from the prompt and --max-tokens, llama-simple uses
prompt + n_predict. llama-simple comes from ../shared/tools/llama-reference (llama.cpp a few
days older than the crate's: say so beside any ratio).

Usage: bench/one_shot.py [--rounds 15] [--uml target/release/uml] [--llama-simple PATH]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402
import stats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(cmd):
    """(wall seconds, peak RSS in MiB) of one child process."""
    # stderr goes to a file: llama-simple logs more than a pipe holds, and waiting on a child
    # that blocks on a full pipe never ends.
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        log.seek(0)
        err = log.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"one_shot: {' '.join(cmd)} failed:\n{err}")
    return wall, usage.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--prompt", default="Hello")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--target", type=float, default=1.1)
    ap.add_argument("--uml", default=os.path.join(ROOT, "target", "release", "uml"))
    ap.add_argument("--llama-simple")
    args = ap.parse_args()

    simple = reference.tool("llama-simple", args.llama_simple)
    uml_cmd = [args.uml, "run", args.model, args.prompt, "--max-tokens", "1", "--temperature", "0",
               "-t", str(args.threads), "--quiet"]
    # llama-simple takes no thread option: it uses llama.cpp's default (GGML_DEFAULT_N_THREADS = 4),
    # which on this 2-core machine oversubscribes; uml uses the physical cores.
    ref_cmd = [simple, "-m", args.model, "-n", "1", args.prompt]
    measure(uml_cmd), measure(ref_cmd)  # warm the page cache for both
    samples = {"uml": {"wall_s": [], "rss_mib": []}, "llama-simple": {"wall_s": [], "rss_mib": []}}
    for _ in range(args.rounds):
        for name, cmd in (("uml", uml_cmd), ("llama-simple", ref_cmd)):
            wall, rss = measure(cmd)
            samples[name]["wall_s"].append(wall)
            samples[name]["rss_mib"].append(rss)
    print(json.dumps(samples, indent=1), file=sys.stderr)

    print(f"one-shot `{args.prompt}`, 1 token, model {os.path.basename(args.model)}, "
          f"{args.rounds} alternated rounds, fresh processes\n")
    print("| measure | uml | llama-simple | ratio [95% CI] | verdict |")
    print("| --- | ---: | ---: | ---: | --- |")
    for key, unit in (("wall_s", "s"), ("rss_mib", "MiB")):
        ci = stats.ratio_ci(samples["uml"][key], samples["llama-simple"][key], higher_is_better=False)
        print(f"| {key} | {ci['uml']:.3f} {unit} | {ci['ref']:.3f} {unit} | {stats.fmt_ci(ci)} | "
              f"{stats.verdict(ci, args.target, higher_is_better=False)} |")


if __name__ == "__main__":
    main()
