"""Concurrent streams on one model: uml's batched slots against uml's former one-context-per-call
path and against llama.cpp's llama-batched-bench at the same batch shape.

    cargo build --release -p uml-core --example streams
    python bench/batched.py [MODEL] [--streams 4] [--npp 128] [--ntg 128] [--rounds 7]

Each round, alternated, with the same threads, batch and context per sequence:
  batched:   `streams` threads call Model::generate at once on one model loaded with
             max_parallel = streams (greedy, end-of-generation banned so each makes exactly
             ntg tokens; distinct prompts of npp tokens), through core/examples/streams.rs;
  per-call:  the same calls with deterministic = true: each generation runs in a private
             context of its own, decoded alone, which is how every generation ran before the
             slots;
  reference: llama-batched-bench -npp NPP -ntg NTG -npl STREAMS -kvu (a unified KV cache, as
             uml's slots use).
Prompt speed: streams x npp / the time until every stream has its first token; generation
speed: the tokens after the first / the time from the last first token to the last end
(llama-batched-bench's S_PP and S_TG). Medians, per-round ratios with bootstrap intervals.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import tool  # noqa: E402
from stats import describe_rounds, fmt_ci, ratio_ci, verdict  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STREAMS_BIN = REPO / "target" / "release" / "examples" / "streams"


def run_uml(model: str, streams: int, npp: int, ntg: int, threads: int, mode: str,
            round_no: int) -> Tuple[float, float]:
    out = subprocess.run([str(STREAMS_BIN), model, str(streams), str(npp), str(ntg), str(threads),
                          mode, str(round_no)], check=True, capture_output=True, text=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    return float(row["speed_pp"]), float(row["speed_tg"])


def run_reference(binary: str, model: str, streams: int, npp: int, ntg: int, threads: int,
                  n_ctx: int) -> Tuple[float, float]:
    out = subprocess.run(
        [binary, "-m", model, "-c", str(n_ctx * streams), "-b", "512", "-ub", "512",
         "-npp", str(npp), "-ntg", str(ntg), "-npl", str(streams), "-t", str(threads), "-kvu",
         "--output-format", "jsonl"],
        check=True, capture_output=True, text=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    return float(row["speed_pp"]), float(row["speed_tg"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--npp", type=int, default=128)
    ap.add_argument("--ntg", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batched-bench", default=None, help="path of llama-batched-bench")
    args = ap.parse_args()
    if not STREAMS_BIN.exists():
        sys.exit(f"{STREAMS_BIN} is missing: cargo build --release -p uml-core --example streams")
    binary = tool("llama-batched-bench", args.batched_bench)
    n_ctx = 512 * ((args.npp + args.ntg + 511) // 512)
    results: Dict[str, List[float]] = {k: [] for k in
                                       ("pp_batched", "tg_batched", "pp_call", "tg_call", "pp_ref", "tg_ref")}
    shape = (args.model, args.streams, args.npp, args.ntg, args.threads)
    for r in range(args.rounds):
        for key, run in (("batched", lambda: run_uml(*shape, "batched", 2 * r)),
                         ("call", lambda: run_uml(*shape, "per-call", 2 * r + 1)),
                         ("ref", lambda: run_reference(binary, *shape, n_ctx))):
            pp, tg = run()
            results["pp_" + key].append(pp)
            results["tg_" + key].append(tg)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in results.items()), flush=True)

    print(f"\n{args.streams} streams, npp {args.npp}, ntg {args.ntg}, {args.threads} threads, "
          f"{args.rounds} rounds (t/s per round):")
    for k, v in results.items():
        print(f"  {k:11s} {describe_rounds(v)}")
    rows = [
        ("generation, batched / per-call", "tg_batched", "tg_call", 2.0),
        ("generation, batched / llama-batched-bench", "tg_batched", "tg_ref", 1.0),
        ("prompt, batched / per-call", "pp_batched", "pp_call", None),
        ("prompt, batched / llama-batched-bench", "pp_batched", "pp_ref", None),
        ("generation, per-call / llama-batched-bench", "tg_call", "tg_ref", None),
    ]
    print("\n| ratio | first t/s | second t/s | median ratio [95% CI] | verdict |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, a, b, target in rows:
        ci = ratio_ci(results[a], results[b])
        v = verdict(ci, target) if target is not None else "(reported)"
        print(f"| {name} | {ci['uml']:.1f} | {ci['ref']:.1f} | {fmt_ci(ci)} | {v} |")


if __name__ == "__main__":
    main()
