"""Remote models: ``uml.remote`` and the manager's ``register_remote`` / ``set_fallback`` against
a ``uml serve`` on a free loopback port serving SmolLM2 as "smollm2": greedy chat equal to
llama.cpp's fixture, streaming, the errors of a model not served, an unreachable endpoint and
a bad URL, and a broken local file answered by its fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from conftest import fixture, model_path, uml_serve

import uml


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with uml_serve("--model", f"smollm2={model_path()}") as base:
        yield base

def test_remote_model_generates_and_chats(url: str) -> None:
    with uml.remote(url, "smollm2") as m:
        assert m.backend == "remote"
        done = m.generate("The capital of France is", max_tokens=8, temperature=0)
        assert done.text and done.finish_reason in ("stop", "length")
        chat = fixture("smollm2_chat_greedy.json")
        reply = m.chat(chat["messages"], max_tokens=chat["trusted_tokens"], temperature=0)
        assert reply.text == chat["trusted_completion"]
        assert reply.finish_reason == "length"
        pieces = list(m.stream("Count: one, two,", max_tokens=6, temperature=0))
        assert len(pieces) > 1 and "".join(pieces)
        with pytest.raises(uml.UnsupportedError):
            m.tokenize("hello")
    assert m.closed


def test_load_options_and_api_key_are_passed(url: str) -> None:
    # The server takes no key: an unasked-for one is harmless; max_parallel is a load option.
    with uml.remote(url, "smollm2", api_key="unused", max_parallel=2) as m:
        assert m.plan["max_parallel"] == 2
        assert m.generate("Hi", max_tokens=2).text


def test_a_model_the_endpoint_does_not_serve_is_not_found(url: str) -> None:
    with pytest.raises(uml.ModelNotFoundError, match="no-such-model"):
        uml.remote(url, "no-such-model")


def test_an_unreachable_endpoint_is_a_backend_error() -> None:
    with pytest.raises(uml.BackendError, match="127.0.0.1:1"):
        uml.remote("http://127.0.0.1:1/v1", "smollm2")


def test_bad_arguments_are_invalid() -> None:
    with pytest.raises(uml.InvalidArgumentError, match="http"):
        uml.remote("ftp://127.0.0.1/v1", "smollm2")
    with pytest.raises(uml.InvalidArgumentError, match="n_ctxx"):
        uml.remote("http://127.0.0.1:1/v1", "smollm2", n_ctxx=1)  # type: ignore[call-arg]


def test_manager_register_remote(url: str) -> None:
    with uml.Manager() as mgr:
        mgr.register_remote("far", url, "smollm2", max_parallel=2)
        with pytest.raises(uml.InvalidArgumentError, match="already registered"):
            mgr.register_remote("far", url, "smollm2")
        with pytest.raises(uml.InvalidArgumentError, match="http"):
            mgr.register_remote("bad", "localhost:8080", "smollm2")
        mgr.register_remote("missing", url, "no-such-model")
        with mgr.get("far") as m:
            assert m.backend == "remote"
            assert m.generate("Hi", max_tokens=4, temperature=0).text
            (entry,) = [e for e in mgr.list() if e["id"] == "far"]
            assert entry["state"] == "in_use" and entry["memory_bytes"] == 0
        with pytest.raises(uml.ModelNotFoundError, match="no-such-model"):
            mgr.get("missing")


def test_manager_fallback_answers_for_a_broken_local_file(url: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really a model")
    with uml.Manager() as mgr:
        mgr.register("local", broken)
        with pytest.raises(uml.UmlError):
            mgr.get("local")
        with pytest.raises(uml.ModelNotFoundError, match="nobody"):
            mgr.set_fallback("nobody", url, "smollm2")
        mgr.set_fallback("local", url, "smollm2", api_key=None)
        with mgr.get("local") as m:
            assert m.backend == "remote"
            assert m.skipped_backends and m.skipped_backends[0]["stage"] == "load"
            done = m.chat([{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0)
            assert done.text and done.finish_reason in ("stop", "length")
