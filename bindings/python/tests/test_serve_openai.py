"""`uml serve` driven by the official `openai` Python package, unmodified: models, chat and text
completions (streamed and not, equal to each other and to llama.cpp's greedy fixtures),
JSON-schema output, embeddings, and errors as the client's exception classes.

The server is the release `uml` binary (built by cargo if missing) on a free loopback port."""

from __future__ import annotations

import json
from typing import Iterator

import openai
import pytest
from conftest import fixture, model_path, uml_serve

KEY = "test-key-12345"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    minilm = model_path("all-MiniLM-L6-v2.F32.gguf")
    with uml_serve("--api-key", KEY, "--model", f"smollm2={model_path()}", "--model", f"minilm={minilm}") as base:
        yield base

@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)


def test_models_are_listed(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert ids == {"smollm2", "minilm"}


def test_chat_streamed_and_not_equals_llama_cpp(client: openai.OpenAI) -> None:
    chat = fixture("smollm2_chat_greedy.json")
    reply = client.chat.completions.create(
        model="smollm2", messages=chat["messages"], temperature=0, max_tokens=chat["trusted_tokens"]
    )
    assert reply.choices[0].message.content == chat["trusted_completion"]
    assert reply.usage is not None and reply.usage.completion_tokens == chat["trusted_tokens"]
    pieces = []
    usage = None
    for chunk in client.chat.completions.create(
        model="smollm2",
        messages=chat["messages"],
        temperature=0,
        max_tokens=chat["trusted_tokens"],
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
    assert "".join(pieces) == chat["trusted_completion"]
    assert usage is not None and usage.completion_tokens == chat["trusted_tokens"]


def test_text_completion_equals_llama_cpp(client: openai.OpenAI) -> None:
    count = fixture("smollm2_count_greedy.json")
    reply = client.completions.create(
        model="smollm2", prompt=count["prompt"], temperature=0, max_tokens=count["trusted_tokens"]
    )
    assert reply.choices[0].text == count["trusted_completion"]
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="smollm2", prompt=count["prompt"], temperature=0, max_tokens=count["trusted_tokens"], stream=True
        )
        if c.choices
    )
    assert streamed == count["trusted_completion"]


def test_json_schema_output_parses(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Which city is the capital of France?"}],
        temperature=0,
        max_tokens=48,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
    )
    content = reply.choices[0].message.content
    assert content is not None
    assert isinstance(json.loads(content)["city"], str)


def test_embeddings(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="minilm", input=["I love cats", "I adore kittens"])
    assert len(result.data) == 2
    assert len(result.data[0].embedding) == 384
    a, b = result.data[0].embedding, result.data[1].embedding
    assert sum(x * y for x, y in zip(a, b)) > 0.5


def test_errors_are_the_clients_exceptions(base_url: str, client: openai.OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base_url, api_key="wrong-key-123", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "hi"}], temperature=-1)

