"""Tokens/s through the Python package next to the Rust CLI on the same model.

    python bench/python_vs_rust.py [MODEL] [--runs N] [--cli PATH]

Two comparisons, each run alternately (Python, Rust, Python, ...) so machine noise hits both:
  engine:   Model.bench() (llama-bench's pp512/tg128) vs `uml bench --json`
  generate: greedy, 128 tokens, against `uml run --json` (a fresh process: load, generate once):
            "cold process" rows run a fresh Python process doing the same; "warm" rows use the
            already-loaded model of this process. usage = usage.generation_tokens_per_second;
            end to end = tokens / wall-clock time of the Python call (prompt + generation +
            binding overhead) vs tokens / (prompt_ms + generation_ms) inside the Rust CLI.
The target is Python >= 0.98 x Rust. Columns: medians, the median of per-round ratios, and
best-of-rounds rates and their ratio (on a shared machine the best runs are the undisturbed ones).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import uml

REPO = Path(__file__).resolve().parents[1]
PROMPT = "Once upon a time, in a small village by the sea,"

# A fresh Python process doing what one `uml run` process does: load, one greedy generation.
COLD_CHILD = """
import json, sys, time, uml
model, prompt, n, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with uml.Loader(model, n_threads=threads) as m:
    start = time.perf_counter()
    out = m.generate(prompt, max_tokens=n, temperature=0)
    wall = time.perf_counter() - start
print(json.dumps({"usage": out.usage.to_dict(), "wall": wall, "text": out.text}))
"""


def cli_path(given: str | None) -> str:
    candidates = [given, os.environ.get("UML_CLI")]
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        candidates.append(str(Path(target) / "release" / "uml"))
    candidates.append(str(REPO / "target" / "release" / "uml"))
    for c in candidates:
        if c and Path(c).is_file():
            return c
    sys.exit("uml CLI not found: build it with `cargo build --release -p uml-cli` or pass --cli PATH")


def run_json(cmd: List[str]) -> Any:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--cli")
    args = ap.parse_args()
    cli = cli_path(args.cli)
    threads = uml.hardware().physical_cores

    py: Dict[str, List[float]] = {
        "pp512": [], "tg128": [], "gen": [], "gen_wall": [], "stream_wall": [], "cold": [], "cold_wall": []
    }
    rs: Dict[str, List[float]] = {"pp512": [], "tg128": [], "gen": [], "gen_total": []}
    with uml.Loader(args.model, n_threads=threads) as m:
        for _ in range(args.runs):
            report = m.bench(n_prompt=512, n_gen=128, repetitions=1)
            for t in report.tests:
                py[t.test].append(t.median)
            cli_report = run_json([cli, "bench", args.model, "-p", "512", "-n", "128", "-r", "1", "-t", str(threads), "--quiet", "--json"])
            for t in cli_report["tests"]:
                rs[t["test"]].append(t["median"])

            start = time.perf_counter()
            out = m.generate(PROMPT, max_tokens=args.max_tokens, temperature=0)
            wall = time.perf_counter() - start
            py["gen"].append(out.usage.generation_tokens_per_second)
            py["gen_wall"].append(out.usage.completion_tokens / wall)
            start = time.perf_counter()
            stream = m.stream(PROMPT, max_tokens=args.max_tokens, temperature=0)
            pieces = list(stream)
            wall = time.perf_counter() - start
            done = stream.completion
            assert done is not None and "".join(pieces) == out.text
            py["stream_wall"].append(done.usage.completion_tokens / wall)
            cli_out = run_json(
                [cli, "run", args.model, PROMPT, "--temperature", "0", "--max-tokens", str(args.max_tokens),
                 "-t", str(threads), "--quiet", "--json"]
            )
            usage = cli_out["usage"]
            rs["gen"].append(usage["generation_tokens_per_second"])
            rs["gen_total"].append(usage["completion_tokens"] * 1000 / (usage["prompt_ms"] + usage["generation_ms"]))
            if cli_out["text"] != out.text:
                print("warning: Python and Rust greedy outputs differ", file=sys.stderr)
            cold = run_json(
                [sys.executable, "-c", COLD_CHILD, args.model, PROMPT, str(args.max_tokens), str(threads)]
            )
            py["cold"].append(cold["usage"]["generation_tokens_per_second"])
            py["cold_wall"].append(cold["usage"]["completion_tokens"] / cold["wall"])

    def med(xs: List[float]) -> float:
        return statistics.median(xs)

    print(f"model: {args.model}")
    print(f"threads: {threads}, runs: {args.runs} (medians), uml {uml.__version__}")
    print(f"{'test':<40} {'python t/s':>11} {'rust t/s':>10} {'ratio':>7} {'best py':>8} {'best rs':>8} {'ratio':>6}  per-round ratios")
    rows = [
        ("engine pp512 (Model.bench / uml bench)", "pp512", "pp512"),
        ("engine tg128 (Model.bench / uml bench)", "tg128", "tg128"),
        (f"cold process, generate {args.max_tokens} (usage)", "cold", "gen"),
        (f"cold process, generate {args.max_tokens} (end to end)", "cold_wall", "gen_total"),
        (f"warm, generate {args.max_tokens} tok (usage)", "gen", "gen"),
        (f"warm, generate {args.max_tokens} tok (end to end)", "gen_wall", "gen_total"),
        (f"warm, stream {args.max_tokens} tok (end to end)", "stream_wall", "gen_total"),
    ]
    for name, pk, rk in rows:
        p, r = med(py[pk]), med(rs[rk])
        # Python and Rust ran back to back in each round, so per-round ratios cancel slow drifts
        # of a shared machine; their median is the figure to trust.
        ratios = [a / b for a, b in zip(py[pk], rs[rk])]
        per_run = " ".join(f"{x:.2f}" for x in ratios)
        # Best of the rounds: interference from other processes only ever slows a run down.
        bp, br = max(py[pk]), max(rs[rk])
        print(f"{name:<40} {p:>11.1f} {r:>10.1f} {med(ratios):>7.3f} {bp:>8.1f} {br:>8.1f} {bp / br:>6.3f}  {per_run}")


if __name__ == "__main__":
    main()
