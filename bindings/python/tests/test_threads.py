"""The GIL is released while the engine works; streams cancel when abandoned; close() is
deterministic; several threads can generate from one model."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import List

import pytest

import uml
from conftest import fixture

COUNT = fixture("smollm2_count_greedy.json")


def test_other_python_threads_run_during_generate(smollm2: uml.Model) -> None:
    count = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal count
        while not stop.is_set():
            count += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        time.sleep(0.05)
        before = count
        out = smollm2.generate("Once upon a time", max_tokens=48, temperature=0)
        during = count - before
    finally:
        stop.set()
        spinner.join()
    assert out.usage.completion_tokens > 0
    # Holding the GIL for the whole call would freeze the counter; released, it races ahead.
    assert during > 10_000, during


def test_breaking_out_of_a_stream_cancels_it(smollm2: uml.Model) -> None:
    token = uml.CancelToken()
    pieces: List[str] = []
    for piece in smollm2.stream("Once upon a time", max_tokens=400, temperature=0, cancel=token):
        pieces.append(piece)
        if len(pieces) == 3:
            break
    assert token.cancelled  # the abandoned iterator was dropped and cancelled its generation
    # The model is usable at once.
    out = smollm2.generate(COUNT["prompt"], max_tokens=COUNT["trusted_tokens"], temperature=0)
    assert out.text == COUNT["trusted_completion"]


def test_closing_a_stream_reports_cancelled(smollm2: uml.Model) -> None:
    with smollm2.stream("Once upon a time", max_tokens=400, temperature=0) as stream:
        first = [next(stream) for _ in range(3)]
    done = stream.completion
    assert done is not None and done.finish_reason == "cancelled"
    assert done.text.startswith("".join(first))
    assert 3 <= done.usage.completion_tokens < 400


def test_threads_generate_concurrently_from_one_model(smollm2: uml.Model) -> None:
    results: List[str] = []

    def work() -> None:
        out = smollm2.generate(COUNT["prompt"], max_tokens=COUNT["trusted_tokens"], temperature=0)
        results.append(out.text)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [COUNT["trusted_completion"]] * 3


def test_a_full_line_raises_busy_error(smollm2_path: Path) -> None:
    # One slot, no line: a second caller is refused at once while the first one runs.
    with uml.Loader(smollm2_path, n_ctx=512, n_threads=1, max_parallel=1, max_queued=0) as m:
        with m.stream("Once upon a time", max_tokens=200, temperature=0) as stream:
            next(stream)
            with pytest.raises(uml.BusyError, match="max_queued") as caught:
                m.generate("Hello", max_tokens=4, temperature=0)
            assert isinstance(caught.value, RuntimeError)
        # The slot is free again.
        assert m.generate("Hello", max_tokens=4, temperature=0).usage.completion_tokens > 0


def test_deterministic_generations_equal_the_fixture_while_batched_ones_run(
    smollm2: uml.Model,
) -> None:
    results: List[str] = []

    def work(deterministic: bool) -> None:
        out = smollm2.generate(
            COUNT["prompt"],
            max_tokens=COUNT["trusted_tokens"],
            temperature=0,
            deterministic=deterministic,
        )
        results.append(out.text)

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [COUNT["trusted_completion"]] * 4


def test_with_block_closes_even_when_the_body_raises(smollm2_path: Path) -> None:
    loader = uml.Loader(smollm2_path, n_ctx=256)
    with pytest.raises(RuntimeError, match="boom"):
        with loader as m:
            assert not m.closed
            raise RuntimeError("boom")
    assert m.closed
    with pytest.raises(uml.ModelClosedError, match="closed"):
        m.generate("Hi")
    for call in (lambda: m.tokenize("x"), lambda: m.stream("x"), lambda: m.embed(["x"])):
        with pytest.raises(uml.ModelClosedError):
            call()
    m.close()  # idempotent


def test_close_cancels_running_streams(smollm2_path: Path) -> None:
    m = uml.load(smollm2_path, n_ctx=512, n_threads=1)
    stream = m.stream("Once upon a time", max_tokens=500, temperature=0)
    first = next(stream)
    m.close()  # cancels the stream's generation and waits for it
    assert m.closed
    rest = list(stream)
    done = stream.completion
    assert done is not None and done.finish_reason == "cancelled"
    # Cancelled, not run to the end; and no piece was lost on the way.
    assert done.usage.completion_tokens < 500
    assert first + "".join(rest) == done.text


def test_load_progress(smollm2_path: Path) -> None:
    seen: List[str] = []

    def progress(stage: str, fraction: float) -> None:
        assert 0.0 <= fraction <= 1.0
        seen.append(stage)

    with uml.Loader(smollm2_path, n_ctx=256, progress=progress):
        pass
    assert seen[0] == "inspect" and seen[-1] == "ready" and "weights" in seen

    with pytest.raises(uml.CancelledError):
        uml.load(smollm2_path, n_ctx=256, progress=lambda stage, f: stage != "weights")

    def boom(stage: str, fraction: float) -> None:
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        uml.load(smollm2_path, n_ctx=256, progress=boom)


def test_context_shift_goes_past_a_full_context(smollm2_path: Path) -> None:
    with uml.Loader(smollm2_path, n_ctx=64, n_threads=1) as m:
        banned = {t: -1000.0 for t in m.tokenize("<|im_end|><|endoftext|>", add_special=False)}
        stopped = m.generate("Once upon a time", max_tokens=200, temperature=0, logit_bias=banned)
        assert stopped.finish_reason == "length" and stopped.usage.completion_tokens < 64
        out = m.generate(
            "Once upon a time", max_tokens=200, temperature=0, logit_bias=banned, context_shift=True
        )
        assert out.usage.completion_tokens == 200
        assert out.text.startswith(stopped.text)
