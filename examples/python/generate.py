"""Generate a continuation: python examples/python/generate.py [MODEL] [PROMPT]"""

from __future__ import annotations

import sys

import uml
from _common import model_path

prompt = sys.argv[2] if len(sys.argv) > 2 else "The capital of France is"
with uml.Loader(model_path(), n_ctx=2048) as model:
    out = model.generate(prompt, max_tokens=64, temperature=0)
    print(prompt + out.text)
    u = out.usage
    print(f"[{out.finish_reason}: {u.completion_tokens} tokens at {u.generation_tokens_per_second:.1f} t/s]")
