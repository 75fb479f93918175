"""Chat sessions on the real SmolLM2 model: history, the cache kept between turns, streaming,
asyncio, one turn at a time, reset, close, and a closed model."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

import uml

GREEDY: uml.GenerateOptions = {"temperature": 0, "max_tokens": 24}


def test_a_second_turn_evaluates_only_its_new_tokens(smollm2: uml.Model) -> None:
    with smollm2.session(system="You are a patient teacher.") as session:
        first = session.send("What are the first five prime numbers?", **GREEDY)
        second = session.send("And the next three?", **GREEDY)
        left = first.usage.prompt_tokens + first.usage.completion_tokens
        kept = second.usage.cached_prompt_tokens
        assert left - 1 <= kept < second.usage.prompt_tokens, (kept, left)
        assert session.messages == [
            {"role": "system", "content": "You are a patient teacher."},
            {"role": "user", "content": "What are the first five prime numbers?"},
            {"role": "assistant", "content": first.text},
            {"role": "user", "content": "And the next three?"},
            {"role": "assistant", "content": second.text},
        ]
        # That the reply equals a fresh chat over the conversation (up to near-ties, which
        # kept state can flip) is core's test: core/tests/smollm2.rs.
        assert second.text


def test_a_streamed_turn_yields_the_reply_and_records_it(smollm2: uml.Model) -> None:
    session = smollm2.session([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}])
    stream = session.stream("What is the capital of France?", **GREEDY)
    text = "".join(stream)
    assert "Paris" in text
    assert stream.completion is not None and stream.completion.text == text
    assert session.messages[-1] == {"role": "assistant", "content": text}
    assert len(session.messages) == 4
    session.close()
    assert session.closed
    session.close()  # idempotent
    with pytest.raises(uml.InvalidArgumentError, match="closed"):
        session.send("Again?")


def test_asyncio_turns(smollm2: uml.Model) -> None:
    async def main() -> str:
        session = smollm2.session()
        reply = await session.asend("Name a colour.", **GREEDY)
        pieces = [p async for p in session.astream("Another one?", **GREEDY)]
        assert len(session.messages) == 4
        return reply.text + "".join(pieces)

    assert asyncio.run(main())


def test_one_turn_at_a_time_and_reset(smollm2: uml.Model) -> None:
    session = smollm2.session()
    started = threading.Event()
    go = threading.Event()
    errors: list[BaseException] = []

    def first_turn() -> None:
        try:
            for _ in session.stream("Count to ten.", temperature=0, max_tokens=16):
                started.set()
                go.wait(30)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    thread = threading.Thread(target=first_turn)
    thread.start()
    assert started.wait(30)
    with pytest.raises(uml.BusyError, match="turn"):
        session.send("Interrupting!")
    with pytest.raises(uml.BusyError):
        session.reset()
    assert session.messages == []
    go.set()
    thread.join(30)
    assert not errors
    assert [m["role"] for m in session.messages] == ["user", "assistant"]
    session.reset([{"role": "system", "content": "Be brief."}])
    assert session.messages == [{"role": "system", "content": "Be brief."}]
    session.reset()
    assert session.messages == []


def test_a_failed_turn_changes_nothing(smollm2: uml.Model) -> None:
    session = smollm2.session(system="Be brief.")
    with pytest.raises(uml.InvalidArgumentError, match="temperature"):
        session.send("Hi", temperature=-1)
    with pytest.raises(uml.InvalidArgumentError):
        smollm2.session([{"role": 1}])
    with pytest.raises(uml.InvalidArgumentError, match="bogus"):
        session.send("Hi", bogus=1)  # type: ignore[call-arg]
    assert session.messages == [{"role": "system", "content": "Be brief."}]


def test_closing_the_model_ends_its_sessions(smollm2_path: Path) -> None:
    model = uml.load(smollm2_path, n_ctx=256, n_threads=1)
    session = model.session()
    session.send("Hello!", temperature=0, max_tokens=4)
    model.close()
    with pytest.raises(uml.ModelClosedError):
        session.send("Still there?")
    assert len(session.messages) == 2  # still readable
