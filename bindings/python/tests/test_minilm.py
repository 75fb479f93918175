"""A real sentence-embedding model (all-MiniLM-L6-v2, BERT) against llama.cpp's llama-embedding."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy
import pytest

import uml
from conftest import fixture, model_path

REF = fixture("minilm_embeddings.json")


@pytest.fixture(scope="module")
def minilm() -> Iterator[uml.Model]:
    path: Path = model_path("all-MiniLM-L6-v2.F32.gguf")
    with uml.Loader(path, n_threads=1, embeddings=True) as m:
        yield m


def test_vectors_equal_llama_embedding(minilm: uml.Model) -> None:
    got = minilm.embed(REF["texts"])
    want = numpy.array(REF["embeddings"], dtype=numpy.float32)
    assert got.shape == want.shape == (len(REF["texts"]), 384)
    # The fixture prints 7 decimals; core's own test allows 1e-4 per component.
    numpy.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    cats, kittens, stocks = got[0], got[1], got[2]
    assert float(cats @ kittens) > float(cats @ stocks) + 0.4


def test_embedding_model_refuses_to_generate(minilm: uml.Model) -> None:
    with pytest.raises(uml.UnsupportedError, match="embedding model") as caught:
        minilm.generate("Hello")
    assert isinstance(caught.value, NotImplementedError)


def test_too_long_text_is_context_overflow(minilm: uml.Model) -> None:
    with pytest.raises(uml.ContextOverflowError):
        minilm.embed(["word " * 600])
