"""Stream text as it is generated (Ctrl-C stops it): python examples/python/stream.py [MODEL]"""

from __future__ import annotations

import uml
from _common import model_path


shown = ""


def show_progress(stage: str, fraction: float) -> None:
    global shown
    line = f"loading: {stage} {int(fraction * 10) * 10:3d}%"
    if line != shown:  # llama.cpp reports every tensor; redraw only on 10% steps
        shown = line
        print("\r" + line, end="", flush=True)


with uml.Loader(model_path(), n_ctx=2048, progress=show_progress) as model:
    print()
    with model.stream("Once upon a time", max_tokens=200, temperature=0.7, seed=1) as stream:
        for piece in stream:
            print(piece, end="", flush=True)
    print()
    done = stream.completion
    if done is not None:
        print(f"[{done.finish_reason}, {done.usage.generation_tokens_per_second:.1f} t/s]")
