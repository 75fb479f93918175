"""Embeddings: one vector per text, numpy when available, plain lists otherwise."""

from __future__ import annotations

import math
from pathlib import Path

import numpy
import pytest

import uml


def test_embed_numpy_and_lists(smollm2_path: Path) -> None:
    with uml.Loader(smollm2_path, n_ctx=512, n_threads=1, embeddings=True) as m:
        vectors = m.embed(["The cat sat on the mat.", "A kitten rested on the rug.", "Stock prices fell."])
        assert isinstance(vectors, numpy.ndarray)
        assert vectors.dtype == numpy.float32 and vectors.shape[0] == 3 and vectors.shape[1] > 0
        vectors[0, 0] += 0  # writable
        for v in vectors:
            assert math.isclose(float(numpy.linalg.norm(v)), 1.0, rel_tol=1e-3)
        one = m.embed("The cat sat on the mat.")
        assert one.shape == (vectors.shape[1],)
        numpy.testing.assert_allclose(one, vectors[0], rtol=1e-4, atol=1e-5)
        lists = m.embed_lists(["The cat sat on the mat.", "Stock prices fell."])
        assert isinstance(lists, list) and len(lists) == 2 and isinstance(lists[0][0], float)
        numpy.testing.assert_allclose(numpy.array(lists[0]), vectors[0], rtol=1e-4, atol=1e-5)
        assert m.embed_lists([]) == []


def test_embed_without_numpy(smollm2_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_numpy(name: str, *args: object, **kwargs: object) -> object:
        if name == "numpy":
            raise ImportError("numpy hidden by the test")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    with uml.Loader(smollm2_path, n_ctx=512, n_threads=1, embeddings=True) as m:
        monkeypatch.setattr(builtins, "__import__", no_numpy)
        vectors = m.embed(["a", "b"])
        assert isinstance(vectors, list) and len(vectors) == 2 and isinstance(vectors[1][0], float)
        single = m.embed("a")
        assert isinstance(single, list) and single == vectors[0]
