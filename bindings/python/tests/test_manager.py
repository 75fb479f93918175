"""uml.Manager on tiny models: scan and register, get -> a uml.Model that generates, the states
list() reports, eviction of the least recently used idle model under a small budget, a model in
use never evicted, aliases, unload / remove bytes, hot-swap, keep-alive, paths outside the
folders refused, and closing (the manager, and a model handle from it)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator, Tuple

import pytest

import uml
from uml import _uml


@pytest.fixture
def tiny(tmp_path: Path) -> Tuple[Path, int]:
    """A folder with tiny models a, b, c (different weights) and what one load takes."""
    folder = tmp_path / "models"
    folder.mkdir()
    for seed, name in enumerate("abc"):
        _uml._write_tiny_llama_gguf(folder / f"{name}.gguf", seed)
    return folder, uml.estimate(folder / "a.gguf").host_bytes


@pytest.fixture
def manager(tiny: Tuple[Path, int]) -> Iterator[uml.Manager]:
    """A manager over the tiny folder whose budget holds two of its models, not three."""
    folder, need = tiny
    with uml.Manager(memory_budget_bytes=need * 5 // 2, folders=[folder]) as m:
        assert m.scan() == ["a", "b", "c"]
        yield m


def state(m: uml.Manager, id: str) -> str:
    states = {s["id"]: s["state"] for s in m.list()}
    return str(states[id])


def test_get_gives_a_model_that_generates_and_closing_it_lets_go_of_the_handle(manager: uml.Manager) -> None:
    assert [s["state"] for s in manager.list()] == ["unloaded"] * 3
    assert manager.used_bytes == 0
    with manager.get("a") as model:
        assert isinstance(model, uml.Model)
        assert model.path.endswith("a.gguf") and model.backend == "llama.cpp"
        out = model.generate("the cat", max_tokens=4, temperature=0)
        assert out.usage.completion_tokens > 0
        assert state(manager, "a") == "in_use"
    assert model.closed
    with pytest.raises(uml.ModelClosedError, match=r"manager\.get"):
        model.generate("the cat")
    # The manager kept the model: idle now, counted in the budget, handed out again at once.
    (entry,) = [s for s in manager.list() if s["id"] == "a"]
    assert entry["state"] == "idle" and entry["memory_bytes"] > 0 and entry["backend"] == "llama.cpp"
    assert entry["aliases"] == [] and entry["activity"] == {"running": 0, "queued": 0}
    assert isinstance(entry["idle_ms"], int) and entry["path"].endswith("a.gguf")
    assert 0 < manager.used_bytes <= manager.budget_bytes
    # Two handles to one model are independent: closing one leaves the other working.
    first, second = manager.get("a"), manager.get("a")
    first.close()
    assert second.generate("the cat", max_tokens=2, temperature=0).usage.completion_tokens > 0
    second.close()


def test_a_load_over_budget_unloads_the_least_recently_used_idle_model(manager: uml.Manager) -> None:
    manager.get("a").close()
    manager.get("b").close()
    manager.get("a").close()  # a is now the more recently used
    manager.alias("tiny", "c")
    manager.get("tiny").close()
    assert (state(manager, "a"), state(manager, "b"), state(manager, "c")) == ("idle", "unloaded", "idle")
    assert manager.used_bytes <= manager.budget_bytes
    assert [s["aliases"] for s in manager.list()] == [[], [], ["tiny"]]
    with pytest.raises(uml.ModelNotFoundError, match="a, b, c"):
        manager.get("nope")


def test_a_model_in_use_is_never_evicted(manager: uml.Manager) -> None:
    with manager.get("a") as a, manager.get("b"):
        with pytest.raises(uml.OutOfMemoryError, match="budget"):
            manager.get("c")
        assert (state(manager, "a"), state(manager, "b")) == ("in_use", "in_use")
        assert a.generate("the cat", max_tokens=2, temperature=0).usage.completion_tokens > 0
    # Once let go of, they make room.
    manager.get("c").close()
    assert state(manager, "c") == "idle"


def test_unload_and_remove_report_their_bytes(manager: uml.Manager) -> None:
    manager.get("a").close()
    assert manager.unload("a") > 0
    assert state(manager, "a") == "unloaded"
    assert manager.unload("a") == 0
    manager.get("a").close()  # loads again on demand
    manager.alias("first", "a")
    held = manager.get("a")
    assert manager.remove("first") > 0
    assert [s["id"] for s in manager.list()] == ["b", "c"]
    for name in ("a", "first"):
        with pytest.raises(uml.ModelNotFoundError, match="registered"):
            manager.get(name)
    with pytest.raises(uml.ModelNotFoundError):
        manager.unload("a")
    # A handle still open keeps its model working.
    assert held.generate("the cat", max_tokens=2, temperature=0).usage.completion_tokens > 0
    held.close()


def test_swap_keeps_old_handles_working(tiny: Tuple[Path, int]) -> None:
    folder, need = tiny
    with uml.Manager(memory_budget_bytes=need * 4, folders=[folder]) as m:
        m.register("tiny", folder / "a.gguf", n_ctx=64)
        old = m.get("tiny")
        m.swap("tiny", folder / "b.gguf")
        with m.get("tiny") as new:
            assert new.path.endswith("b.gguf") and old.path.endswith("a.gguf")
            assert old.generate("the cat", max_tokens=2, temperature=0).usage.completion_tokens > 0
            assert new.generate("the cat", max_tokens=2, temperature=0).usage.completion_tokens > 0
        old.close()
        (folder / "broken.gguf").write_bytes(b"GGUF but not really")
        with pytest.raises(uml.UmlError):
            m.swap("tiny", folder / "broken.gguf")
        with m.get("tiny") as kept:  # a failed swap keeps the model that runs
            assert kept.path.endswith("b.gguf")
        with pytest.raises(uml.ModelNotFoundError, match="nope"):
            m.swap("nope", folder / "c.gguf")


def test_paths_outside_the_folders_are_refused(tiny: Tuple[Path, int], tmp_path: Path) -> None:
    folder, need = tiny
    outside = tmp_path / "outside"
    outside.mkdir()
    _uml._write_tiny_llama_gguf(outside / "x.gguf", 9)
    (folder / "link.gguf").symlink_to(outside / "x.gguf")
    with uml.Manager(memory_budget_bytes=need * 4, folders=[folder]) as m:
        for path in (outside / "x.gguf", folder / ".." / "outside" / "x.gguf", folder / "link.gguf"):
            with pytest.raises(uml.InvalidArgumentError, match="outside the model folders"):
                m.register("x", path)
        with pytest.raises(uml.ModelNotFoundError, match="missing"):
            m.register("x", folder / "missing.gguf")
        m.register("a", folder / "a.gguf")
        with pytest.raises(uml.InvalidArgumentError, match="already registered"):
            m.register("a", folder / "b.gguf")
        with pytest.raises(uml.InvalidArgumentError, match="model id"):
            m.register("two words", folder / "b.gguf")
        with pytest.raises(uml.InvalidArgumentError, match="n_gpu_layers"):
            m.register("b", folder / "b.gguf", n_gpu_layers=1)  # type: ignore[call-arg]
        with pytest.raises(uml.InvalidArgumentError, match="outside the model folders"):
            m.swap("a", outside / "x.gguf")
        # scan passes over what it cannot register (the symlink leads outside).
        assert m.scan() == ["b", "c"]


def test_options_and_errors() -> None:
    with pytest.raises(uml.ModelNotFoundError, match="no-such-folder"):
        uml.Manager(folders=["/no-such-folder"])
    with pytest.raises(uml.InvalidArgumentError, match="keep_alive"):
        uml.Manager(keep_alive=-1)
    with pytest.raises(TypeError):
        uml.Manager(memory_budget=1)  # type: ignore[call-arg]
    with pytest.raises(uml.InvalidArgumentError, match="memory_budget_bytes = -1"):
        uml.Manager(memory_budget_bytes=-1)
    m = uml.Manager()  # 80% of the available RAM, any path
    assert m.budget_bytes > 0 and m.used_bytes == 0 and m.keep_alive is None and m.list() == []
    assert "0 models" in repr(m)
    m.close()
    assert m.closed and "closed" in repr(m)
    m.close()  # idempotent
    with pytest.raises(uml.InvalidArgumentError, match="closed"):
        m.list()
    with pytest.raises(uml.InvalidArgumentError, match="closed"):
        m.get("a")


def test_a_model_outlives_its_closed_manager(tiny: Tuple[Path, int]) -> None:
    folder, need = tiny
    m = uml.Manager(memory_budget_bytes=need * 4, keep_alive=60, folders=[folder])
    assert m.keep_alive == 60.0
    m.register("a", folder / "a.gguf")
    model = m.get("a")
    m.close()
    assert model.generate("the cat", max_tokens=2, temperature=0).usage.completion_tokens > 0
    model.close()


def test_an_idle_model_is_unloaded_after_its_keep_alive(tiny: Tuple[Path, int]) -> None:
    folder, need = tiny
    with uml.Manager(memory_budget_bytes=need * 4, keep_alive=0.2, folders=folder) as m:
        m.scan()
        held = m.get("a")
        m.get("b").close()
        deadline = time.monotonic() + 10
        while state(m, "b") != "unloaded":
            assert time.monotonic() < deadline, "b was not unloaded after its keep-alive"
            time.sleep(0.02)
        assert state(m, "a") == "in_use"  # held all along: kept
        held.close()
        while state(m, "a") != "unloaded":
            assert time.monotonic() < deadline, "a was not unloaded after its keep-alive"
            time.sleep(0.02)


def test_other_python_threads_run_while_get_loads(smollm2_path: Path) -> None:
    count = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal count
        while not stop.is_set():
            count += 1

    with uml.Manager(folders=[smollm2_path.parent]) as m:
        m.register("smollm2", smollm2_path, n_ctx=512, n_threads=1)
        spinner = threading.Thread(target=spin)
        spinner.start()
        try:
            time.sleep(0.05)
            before = count
            with m.get("smollm2") as model:
                during = count - before
                assert model.info.architecture == "llama"
        finally:
            stop.set()
            spinner.join()
    # Holding the GIL for the whole load would freeze the counter; released, it races ahead.
    assert during > 10_000, during
