"""asyncio: agenerate / astream never block the event loop; cancelling the task cancels the
generation."""

from __future__ import annotations

import asyncio
from typing import List

import uml
from conftest import fixture

COUNT = fixture("smollm2_count_greedy.json")


def test_agenerate_equals_generate(smollm2: uml.Model) -> None:
    async def main() -> uml.Completion:
        return await smollm2.agenerate(COUNT["prompt"], max_tokens=COUNT["trusted_tokens"], temperature=0)

    assert asyncio.run(main()).text == COUNT["trusted_completion"]


def test_astream_pieces_join_and_the_loop_stays_free(smollm2: uml.Model) -> None:
    async def main() -> List[str]:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        pieces = [p async for p in smollm2.astream(COUNT["prompt"], max_tokens=COUNT["trusted_tokens"], temperature=0)]
        reply = await smollm2.achat([{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0)
        done = True
        await task
        assert ticks > 3 and reply.text
        return pieces

    assert "".join(asyncio.run(main())) == COUNT["trusted_completion"]


def test_cancelling_the_task_cancels_the_generation(smollm2: uml.Model) -> None:
    token = uml.CancelToken()
    stream_token = uml.CancelToken()

    async def consume() -> None:
        async for _ in smollm2.astream("Once upon a time", max_tokens=2000, cancel=stream_token):
            pass

    async def main() -> None:
        gen = asyncio.create_task(smollm2.agenerate("Once upon a time", max_tokens=2000, cancel=token))
        stream = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        gen.cancel()
        stream.cancel()
        for task in (gen, stream):
            try:
                await task
            except asyncio.CancelledError:
                pass
        assert gen.cancelled() and stream.cancelled()

    asyncio.run(main())
    assert token.cancelled and stream_token.cancelled


def test_breaking_out_of_astream(smollm2: uml.Model) -> None:
    token = uml.CancelToken()

    async def main() -> List[str]:
        pieces: List[str] = []
        async with smollm2.astream("Once upon a time", max_tokens=2000, cancel=token) as stream:
            async for piece in stream:
                pieces.append(piece)
                if len(pieces) == 3:
                    break
        done = stream.completion
        assert done is not None and done.finish_reason == "cancelled"
        return pieces

    assert len(asyncio.run(main())) == 3
    assert token.cancelled
