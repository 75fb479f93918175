"""Time to first token with a repeated ~1,000-token system prompt, kept or evaluated again.

    python bench/prefix_cache.py [MODEL] [--runs N]

Each round, on one loaded model (SmolLM2 by default, 2 threads):
  cold: the model's idle context holds an unrelated prompt; generate one token from
        system + question, wall time;
  warm: the idle context holds system + another question (a previous request with the same
        system prompt); the same one-token generation.
Cold and warm alternate; medians, their ratio (target <= 0.3), and usage.cached_prompt_tokens.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import uml

REPO = Path(__file__).resolve().parents[1]
SYSTEM = (
    "You are a careful assistant for a library. Answer questions about opening hours, loans, "
    "fines, rooms and events politely and briefly, and say when you do not know. "
) * 28
QUESTIONS = [
    "When does the library open on Sundays?",
    "How long can I keep a book?",
    "Can I book a study room for four people?",
    "Is there a fine for returning a DVD late?",
]


def first_token_ms(model: uml.Model, prompt: str) -> tuple[float, int, int]:
    """Wall time of a one-token generation: the prompt's evaluation plus the first token."""
    start = time.perf_counter()
    done = model.generate(prompt, max_tokens=1, temperature=0)
    elapsed = (time.perf_counter() - start) * 1000
    return elapsed, done.usage.prompt_tokens, done.usage.cached_prompt_tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    cold: list[float] = []
    warm: list[float] = []
    tokens = 0
    # One slot: with more, the cold case could find the system prompt in another slot.
    with uml.Loader(args.model, n_ctx=2048, n_threads=uml.hardware().physical_cores, max_parallel=1) as m:
        for i in range(args.runs):
            question = QUESTIONS[i % len(QUESTIONS)]
            other = QUESTIONS[(i + 1) % len(QUESTIONS)]
            m.generate("An unrelated prompt about the weather.", max_tokens=2, temperature=0)
            ms, tokens, kept = first_token_ms(m, SYSTEM + question)
            cold.append(ms)
            m.generate(SYSTEM + other, max_tokens=2, temperature=0)
            ms_warm, _, kept_warm = first_token_ms(m, SYSTEM + question)
            warm.append(ms_warm)
            print(f"round {i}: cold {ms:.0f} ms (kept {kept}), warm {ms_warm:.0f} ms (kept {kept_warm} of {tokens})")
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"prompt {tokens} tokens; time to first token: cold {c:.0f} ms, warm {w:.0f} ms, ratio {w / c:.3f}")


if __name__ == "__main__":
    main()
