"""LoRA adapters from Python on the real SmolLM2 (random adapters written by the test hook, as
core's tests write them): the ``lora`` load option, on by default at its scale, chosen per call
with ``lora=[...]`` (``[]`` and scale 0 are the base model, token for token), in streams and
chats too, adapters loaded together running together, and the errors (unknown name, two on at
once at other scales, a file that is no adapter), and their memory counted in the estimate."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest

import uml
from uml import _uml
from conftest import model_path

PROMPT = "Once upon a time, there was a"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    """Two strong random adapters: each changes PROMPT's greedy text."""
    folder = tmp_path_factory.mktemp("lora")
    a, b = folder / "a.gguf", folder / "b.gguf"
    _uml._write_lora_adapter(model_path(), a, 3, 8, 0.2)
    _uml._write_lora_adapter(model_path(), b, 4, 8, 0.2)
    return a, b


def first_text(lora_options: List[uml.LoraAdapter], lora: Optional[List[uml.LoraScale]] = None, **extra: Any) -> str:
    """A fresh model's first greedy generation (a later one may reuse cached prompt tokens,
    evaluated in other batches, which round differently in the last bits)."""
    with uml.Loader(model_path(), n_ctx=256, lora=lora_options) as m:
        if lora is None:
            return m.generate(PROMPT, max_tokens=24, temperature=0, **extra).text
        return m.generate(PROMPT, max_tokens=24, temperature=0, lora=lora, **extra).text


def test_adapters_load_apply_and_are_chosen_per_call(adapters: Tuple[Path, Path]) -> None:
    a, b = adapters
    loaded: List[uml.LoraAdapter] = [{"path": str(a)}, {"path": str(b), "name": "other", "scale": 0}]
    base = first_text([])
    with_a = first_text(loaded)
    assert with_a != base
    assert first_text(loaded, [{"name": "a", "scale": 1.0}]) == with_a
    assert first_text(loaded, []) == base
    assert first_text(loaded, [{"name": "a", "scale": 0}]) == base
    with_b = first_text(loaded, [{"name": "other"}])
    assert with_b not in (base, with_a)

    with uml.Loader(model_path(), n_ctx=256, lora=loaded) as m:
        streamed = "".join(m.stream(PROMPT, max_tokens=24, temperature=0, lora=[{"name": "other"}]))
        # The fresh model's first generation, as with_b was: a later one reuses cached prompt tokens.
        assert streamed == with_b
        reply = m.chat([{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0, lora=[])
        assert reply.text


def test_adapters_loaded_together_run_together(adapters: Tuple[Path, Path]) -> None:
    a, b = adapters
    both: List[uml.LoraAdapter] = [{"path": str(a)}, {"path": str(b), "scale": 0.5}]
    together = first_text(both)
    assert together not in (first_text([{"path": str(a)}]), first_text([{"path": str(b), "scale": 0.5}]))
    assert first_text(both, [{"name": "b", "scale": 0.5}, {"name": "a", "scale": 1.0}]) == together
    with uml.Loader(model_path(), n_ctx=256, lora=both) as m:
        with pytest.raises(uml.UnsupportedError, match="loaded with"):
            m.generate("Hi", lora=[{"name": "a"}, {"name": "b"}])


def test_lora_errors_name_the_fix(adapters: Tuple[Path, Path]) -> None:
    a, b = adapters
    with uml.Loader(model_path(), n_ctx=256, lora=[{"path": str(a)}, {"path": str(b), "scale": 0}]) as m:
        with pytest.raises(uml.InvalidArgumentError, match="loaded: a, b"):
            m.generate("Hi", lora=[{"name": "c"}])
        with pytest.raises(uml.UnsupportedError, match="scale to 0"):
            m.generate("Hi", lora=[{"name": "a"}, {"name": "b"}])
    with pytest.raises(uml.InvalidArgumentError, match="not an adapter file"):
        uml.load(model_path(), lora=[{"path": str(model_path())}])
    with pytest.raises(uml.ModelNotFoundError, match="does not exist"):
        uml.load(model_path(), lora=[{"path": "/nonexistent/a.gguf"}])


def test_estimate_counts_the_adapters(adapters: Tuple[Path, Path]) -> None:
    a, b = adapters
    # No GPU layers: adapters of offloaded blocks would count on the device.
    alone = uml.estimate(model_path(), n_ctx=256, gpu_layers=0)
    one = uml.estimate(model_path(), n_ctx=256, gpu_layers=0, lora=[{"path": str(a)}])
    both = uml.estimate(model_path(), n_ctx=256, gpu_layers=0, lora=[{"path": str(a)}, {"path": str(b)}])
    assert alone.adapters_bytes == 0 and one.adapters_bytes > 0
    assert one.host_bytes == alone.host_bytes + one.adapters_bytes
    # Both on: their tensors and the merged copy (f32, as the test adapters are).
    assert both.adapters_bytes == 4 * one.adapters_bytes
    with uml.Loader(model_path(), n_ctx=256, gpu_layers=0, max_parallel=1, lora=[{"path": str(a)}]) as m:
        assert m.memory.adapters_bytes == one.adapters_bytes
    with pytest.raises(uml.ModelNotFoundError, match="does not exist"):
        uml.estimate(model_path(), lora=[{"path": "/nonexistent/a.gguf"}])
