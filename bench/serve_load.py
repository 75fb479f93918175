"""Load test: `uml serve` against llama.cpp's `llama-server`, the same streaming clients on both.

    cargo build --release -p uml-cli
    python bench/serve_load.py [MODEL] [--clients 4] [--requests 4] [--max-tokens 128] [--rounds 5]

Each round, alternated: start the server (uml serve with --parallel CLIENTS, or llama-server
-np CLIENTS -kvu; 2 threads, a 1024-token context per slot), warm it with one request, then
CLIENTS threads each send REQUESTS streamed /v1/completions requests one after another
(greedy, ignore_eos / end-of-generation banned, distinct prompts, no prompt cache). Per round:
aggregate generated tokens/s over the wall time, p50 and p95 time to first token, and errors.
Ratios uml / llama-server with bootstrap intervals over the rounds.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import tool  # noqa: E402
from stats import describe_rounds, fmt_ci, ratio_ci, verdict  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
UML = REPO / "target" / "release" / "uml"
FILLER = "The river ran past the mill and the mill turned all day, grinding wheat for the village bakers. "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(kind: str, model: str, clients: int, threads: int) -> Tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    if kind == "uml":
        cmd = [str(UML), "serve", "--model", f"m={model}", "--port", str(port), "--ctx", "1024",
               "--threads", str(threads), "--parallel", str(clients)]
        name = "m"
    else:
        cmd = [tool("llama-server"), "-m", model, "-c", str(1024 * clients), "-np", str(clients), "-kvu",
               "-t", str(threads), "-tb", str(threads), "--port", str(port), "--no-webui"]
        name = Path(model).name
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as r:
                if r.status == 200:
                    return proc, base, name
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} did not become healthy")


def one_request(base: str, name: str, prompt: str, max_tokens: int) -> Tuple[float, int]:
    """Streams one completion; returns (time to first token, tokens generated)."""
    body = {"model": name, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "ignore_eos": True, "cache_prompt": False, "logit_bias": {"0": -100, "1": -100, "2": -100}}
    req = urllib.request.Request(base + "/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    first: Optional[float] = None
    pieces = 0
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0].get("text"):
                pieces += 1
                if first is None:
                    first = time.perf_counter() - start
    if first is None:
        raise RuntimeError("no text streamed")
    return first, pieces


def run_load(base: str, name: str, clients: int, requests: int, max_tokens: int, round_no: int
             ) -> Dict[str, float]:
    ttfts: List[float] = []
    tokens = [0]
    errors = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        barrier.wait()
        for r in range(requests):
            prompt = f"Story {round_no}-{c}-{r}: {FILLER * 3}"
            try:
                ttft, n = one_request(base, name, prompt, max_tokens)
                with lock:
                    ttfts.append(ttft)
                    tokens[0] += n
            except Exception:  # noqa: BLE001 - counted, reported
                with lock:
                    errors[0] += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ttfts.sort()
    return {
        "tokens_per_s": tokens[0] / wall,
        "ttft_p50": statistics.median(ttfts) if ttfts else float("nan"),
        "ttft_p95": ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))] if ttfts else float("nan"),
        "errors": float(errors[0]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not UML.exists():
        sys.exit(f"{UML} is missing: cargo build --release -p uml-cli")
    results: Dict[str, Dict[str, List[float]]] = {"uml": {}, "llama": {}}
    for r in range(args.rounds):
        for kind in ("uml", "llama"):
            proc, base, name = start(kind, args.model, args.clients, args.threads)
            try:
                one_request(base, name, "Warm up.", 8)
                row = run_load(base, name, args.clients, args.requests, args.max_tokens, r)
            finally:
                proc.terminate()
                proc.wait(30)
            for k, v in row.items():
                results[kind].setdefault(k, []).append(v)
            print(f"round {r + 1} {kind}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    print(json.dumps(results), file=sys.stderr)
    print(f"\n{args.clients} clients x {args.requests} streamed requests of {args.max_tokens} tokens, "
          f"{args.threads} threads, {args.rounds} rounds:")
    for kind in results:
        for k, v in results[kind].items():
            print(f"  {kind:5s} {k:12s} {describe_rounds(v)}")
    print("\n| measure | uml | llama-server | uml / llama-server [95% CI] | verdict |")
    print("| --- | ---: | ---: | ---: | --- |")
    for key, target in (("tokens_per_s", 1.1), ("ttft_p50", None), ("ttft_p95", None)):
        ci = ratio_ci(results["uml"][key], results["llama"][key])
        v = verdict(ci, target) if target is not None else "(reported; lower is better)"
        print(f"| {key} | {ci['uml']:.3f} | {ci['ref']:.3f} | {fmt_ci(ci)} | {v} |")
    print(f"| errors | {sum(results['uml']['errors']):.0f} | {sum(results['llama']['errors']):.0f} | | |")


if __name__ == "__main__":
    main()
