"""Sentence embeddings and cosine similarity: python examples/python/embed.py [MODEL]

Any GGUF works; a sentence-embedding model gives meaningful similarities, e.g.
models/all-MiniLM-L6-v2.F32.gguf (fetched by scripts/fetch-models).
"""

from __future__ import annotations

import uml
from _common import model_path

texts = ["The cat sat on the mat.", "A kitten rested on the rug.", "Stock markets fell sharply today."]
with uml.Loader(model_path(), n_ctx=512, embeddings=True) as model:
    vectors = model.embed_lists(texts)  # model.embed(texts) gives a numpy array when numpy is installed
    print(f"{len(vectors)} vectors of {len(vectors[0])} dimensions (L2-normalised)")
    for i, text in enumerate(texts[1:], start=1):
        cosine = sum(a * b for a, b in zip(vectors[0], vectors[i]))
        print(f"cos({texts[0]!r}, {text!r}) = {cosine:.3f}")
