"""Every core error kind has its Python class; bad paths and corrupt files raise the right ones."""

from __future__ import annotations

from pathlib import Path

import pytest

import uml
from uml import _uml

BUILTIN = {
    "INVALID_ARGUMENT": ValueError,
    "NOT_FOUND": FileNotFoundError,
    "OUT_OF_MEMORY": MemoryError,
    "MODEL_CLOSED": ValueError,
    "CONTEXT_OVERFLOW": ValueError,
    "UNSUPPORTED": NotImplementedError,
    "IO": OSError,
    "BACKEND": RuntimeError,
    "INTERNAL": RuntimeError,
}


def test_every_core_kind_maps_to_its_own_class() -> None:
    kinds = _uml._error_kinds()
    assert [code for code, _ in kinds] == list(range(1, len(kinds) + 1))
    assert sorted(uml.ERRORS_BY_CODE) == [code for code, _ in kinds]
    for code, name in kinds:
        with pytest.raises(uml.UmlError) as caught:
            _uml._raise_error(code, f"message of {name}")
        err = caught.value
        assert type(err) is uml.ERRORS_BY_CODE[code], name
        assert (err.code, err.kind) == (code, name)
        assert str(err) == f"message of {name}"
        if name in BUILTIN:
            assert isinstance(err, BUILTIN[name]), name


def test_missing_file_is_model_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    for call in (lambda: uml.inspect(missing), lambda: uml.load(missing), lambda: uml.estimate(missing)):
        with pytest.raises(uml.ModelNotFoundError) as caught:
            call()
        assert isinstance(caught.value, FileNotFoundError)
        assert str(missing) in str(caught.value)
    with pytest.raises(FileNotFoundError):
        with uml.Loader(missing):
            pass


def test_a_fifo_or_device_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    for call in (lambda: uml.inspect(fifo), lambda: uml.load(fifo), lambda: uml.estimate(fifo)):
        with pytest.raises(uml.InvalidArgumentError, match="FIFO"):
            call()
    with pytest.raises(uml.InvalidArgumentError, match="device"):
        uml.inspect("/dev/zero")


def test_corrupt_gguf_is_invalid_model(tmp_path: Path) -> None:
    bad = tmp_path / "truncated.gguf"
    good = tmp_path / "tiny.gguf"
    _uml._write_tiny_llama_gguf(good, 1)
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(uml.InvalidModelError) as caught:
        uml.inspect(bad)
    assert str(bad) in str(caught.value)
    with pytest.raises(uml.InvalidModelError):
        uml.load(bad)


def test_not_a_model_is_unsupported_format(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("just some text, not a model\n")
    with pytest.raises(uml.UnsupportedFormatError) as caught:
        uml.inspect(text)
    assert str(text) in str(caught.value)


def test_invalid_load_options(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.gguf"
    _uml._write_tiny_llama_gguf(tiny, 1)
    with pytest.raises(uml.InvalidArgumentError, match="n_gpu_layer"):
        uml.load(tiny, n_gpu_layer=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="n_ctx"):
        uml.load(tiny, n_ctx=0)
    with pytest.raises(uml.InvalidArgumentError, match="kv_cache_type"):
        uml.load(tiny, kv_cache_type="q5")  # type: ignore[arg-type]


def test_errors_are_public_and_picklable() -> None:
    import pickle

    for cls in uml.ERRORS_BY_CODE.values():
        assert cls.__module__ == "uml" and getattr(uml, cls.__name__) is cls
        err = pickle.loads(pickle.dumps(cls("a message")))
        assert type(err) is cls and str(err) == "a message"
