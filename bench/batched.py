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
             uml's slots use): decodes only, it never samples or detokenizes;
  server:    llama-server -np STREAMS -kvu, started once, answering STREAMS concurrent streamed
             /completion requests (greedy, ignore_eos, no prompt cache; the same prompts), timed
             by this client as streams.rs times uml: it samples and streams, as uml does.
Prompt speed: streams x npp / the time until every stream has its first token; generation
speed: the tokens after the first / the time from the last first token to the last end
(llama-batched-bench's S_PP and S_TG). Medians, per-round ratios with bootstrap intervals.
"""

from __future__ import annotations

import argparse
import json
import socket
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


FILLER = ("The river ran past the mill and the mill turned all day, grinding wheat "
          "for the village bakers who sold bread at the market every morning. ")


class Server:
    """llama-server with STREAMS slots, started once and stopped at exit."""

    def __init__(self, binary: str, model: str, streams: int, threads: int, n_ctx: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [binary, "-m", model, "-c", str(n_ctx * streams), "-np", str(streams), "-kvu",
             "-b", "512", "-ub", "512", "-t", str(threads), "-tb", str(threads),
             "--host", "127.0.0.1", "--port", str(self.port), "--no-webui"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                if self.call("/health", None)["status"] == "ok":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("llama-server did not become healthy in 60 s")

    def call(self, path: str, body: Optional[Dict[str, Any]]) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)

    def run(self, streams: int, npp: int, ntg: int, round_no: int) -> Tuple[float, float]:
        prompts = []
        for s in range(streams):
            text = f"Story {round_no * 100 + s}: {FILLER * 40}"
            tokens = self.call("/tokenize", {"content": text, "add_special": False})["tokens"]
            prompts.append(tokens[:npp])
        firsts: List[float] = [0.0] * streams
        ends: List[float] = [0.0] * streams
        counts: List[int] = [0] * streams
        barrier = threading.Barrier(streams + 1)

        def one(i: int) -> None:
            body = {"prompt": prompts[i], "n_predict": ntg, "temperature": 0, "ignore_eos": True,
                    "cache_prompt": False, "stream": True}
            req = urllib.request.Request(f"http://127.0.0.1:{self.port}/completion",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            barrier.wait()
            with urllib.request.urlopen(req, timeout=600) as r:
                for line in r:
                    if not line.startswith(b"data: "):
                        continue
                    chunk = json.loads(line[6:])
                    if chunk.get("stop"):
                        counts[i] = int(chunk["timings"]["predicted_n"])
                        break
                    if not firsts[i]:
                        firsts[i] = time.perf_counter()
            ends[i] = time.perf_counter()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        if counts != [ntg] * streams:
            raise RuntimeError(f"llama-server made {counts} tokens, not {ntg} each")
        pp_end, end = max(firsts), max(ends)
        return streams * npp / (pp_end - start), streams * (ntg - 1) / (end - pp_end)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--npp", type=int, default=128)
    ap.add_argument("--ntg", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batched-bench", default=None, help="path of llama-batched-bench")
    ap.add_argument("--server", default=None, help="path of llama-server")
    args = ap.parse_args()
    if not STREAMS_BIN.exists():
        sys.exit(f"{STREAMS_BIN} is missing: cargo build --release -p uml-core --example streams")
    binary = tool("llama-batched-bench", args.batched_bench)
    n_ctx = 512 * ((args.npp + args.ntg + 511) // 512)
    results: Dict[str, List[float]] = {k: [] for k in ("pp_batched", "tg_batched", "pp_call", "tg_call",
                                                         "pp_ref", "tg_ref", "pp_server", "tg_server")}
    shape = (args.model, args.streams, args.npp, args.ntg, args.threads)
    server = Server(tool("llama-server", args.server), args.model, args.streams, args.threads, n_ctx)
    try:
        for r in range(args.rounds):
            for key, run in (("batched", lambda: run_uml(*shape, "batched", 2 * r)),
                             ("call", lambda: run_uml(*shape, "per-call", 2 * r + 1)),
                             ("ref", lambda: run_reference(binary, *shape, n_ctx)),
                             ("server", lambda: server.run(args.streams, args.npp, args.ntg, 2 * r))):
                pp, tg = run()
                results["pp_" + key].append(pp)
                results["tg_" + key].append(tg)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in results.items()), flush=True)
    finally:
        server.stop()

    print(f"\n{args.streams} streams, npp {args.npp}, ntg {args.ntg}, {args.threads} threads, "
          f"{args.rounds} rounds (t/s per round):")
    for k, v in results.items():
        print(f"  {k:11s} {describe_rounds(v)}")
    rows = [
        ("generation, batched / per-call", "tg_batched", "tg_call", 2.0),
        ("generation, batched / llama-batched-bench", "tg_batched", "tg_ref", 1.0),
        ("generation, batched / llama-server", "tg_batched", "tg_server", 1.0),
        ("prompt, batched / per-call", "pp_batched", "pp_call", None),
        ("prompt, batched / llama-batched-bench", "pp_batched", "pp_ref", None),
        ("prompt, batched / llama-server", "pp_batched", "pp_server", None),
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
