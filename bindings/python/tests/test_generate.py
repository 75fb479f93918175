"""Generation against the real SmolLM2 model, compared with llama.cpp's own greedy output."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Tuple

import pytest

import uml
from conftest import fixture

COUNT = fixture("smollm2_count_greedy.json")
CODE = fixture("smollm2_code_greedy.json")
CHAT = fixture("smollm2_chat_greedy.json")


@pytest.mark.parametrize("ref", [COUNT, CODE], ids=["count", "code"])
def test_greedy_generate_equals_llama_cpp(smollm2: uml.Model, ref: Dict[str, Any]) -> None:
    out = smollm2.generate(ref["prompt"], max_tokens=ref["trusted_tokens"], temperature=0)
    assert isinstance(out, uml.Completion)
    assert out.text == ref["trusted_completion"]
    assert str(out) == ref["trusted_completion"]
    assert out.finish_reason == "length"
    assert out.usage.completion_tokens == ref["trusted_tokens"]
    assert out.usage.prompt_tokens == len(smollm2.tokenize(ref["prompt"]))
    assert out.usage.generation_tokens_per_second > 0


def test_stream_pieces_join_to_the_same_text(smollm2: uml.Model) -> None:
    stream = smollm2.stream(COUNT["prompt"], max_tokens=COUNT["trusted_tokens"], temperature=0)
    pieces = list(stream)
    assert len(pieces) > 3 and all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == COUNT["trusted_completion"]
    done = stream.completion
    assert done is not None and done.text == COUNT["trusted_completion"] and done.finish_reason == "length"


def test_stop_strings(smollm2: uml.Model) -> None:
    # " 5, 6, 7, 8, ...": both stops lie inside the part of the reference that holds on every
    # CPU path.
    text, n = COUNT["trusted_completion"], COUNT["trusted_tokens"]
    assert text.startswith(" 5, 6, 7, 8,")
    out = smollm2.generate(COUNT["prompt"], max_tokens=n, temperature=0, stop=[","])
    assert out.text == " 5"
    assert out.finish_reason == "stop"
    pieces = list(smollm2.stream(COUNT["prompt"], max_tokens=n, temperature=0, stop=[" 8"]))
    assert "".join(pieces) == text.split(" 8")[0] == " 5, 6, 7,"


def test_max_tokens(smollm2: uml.Model) -> None:
    out = smollm2.generate(COUNT["prompt"], max_tokens=3, temperature=0)
    assert out.usage.completion_tokens == 3 and out.finish_reason == "length"
    assert COUNT["trusted_completion"].startswith(out.text)


def test_chat_equals_llama_cpp_on_the_rendered_template(smollm2: uml.Model) -> None:
    assert smollm2.render_chat(CHAT["messages"]) == CHAT["prompt"]
    reply = smollm2.chat(CHAT["messages"], max_tokens=CHAT["trusted_tokens"], temperature=0)
    assert reply.text == CHAT["trusted_completion"]
    assert "".join(smollm2.chat_stream(CHAT["messages"], max_tokens=CHAT["trusted_tokens"], temperature=0)) == reply.text


def test_chat_answers_with_a_system_prompt(smollm2: uml.Model) -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    prompt = smollm2.render_chat(messages)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    reply = smollm2.chat(messages, max_tokens=24, temperature=0)
    assert "Paris" in reply.text
    assert "<|im_end|>" not in reply.text and "<|im_start|>" not in reply.text
    streamed = "".join(smollm2.chat_stream(messages, max_tokens=24, temperature=0))
    assert streamed == reply.text


def test_invalid_parameters_raise_invalid_argument(smollm2: uml.Model) -> None:
    cases: List[Tuple[Dict[str, Any], str]] = [
        ({"max_token": 3}, "max_token"),
        ({"temperature": -1.0}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"top_p": "high"}, "top_p"),
        ({"stop": "."}, "stop"),
        ({"temperature": math.nan}, "temperature"),
        ({"seed": object()}, "seed"),
    ]
    for bad, needle in cases:
        with pytest.raises(uml.InvalidArgumentError, match=needle):
            smollm2.generate("Hi", **bad)
        with pytest.raises(ValueError, match=needle):
            smollm2.stream("Hi", **bad)
    with pytest.raises(uml.InvalidArgumentError, match="role"):
        smollm2.chat([{"role": "", "content": "hi"}])
    with pytest.raises(uml.InvalidArgumentError):
        smollm2.chat([])
    with pytest.raises(uml.InvalidArgumentError, match="chat messages"):
        smollm2.chat(["What is the capital of France?"])  # type: ignore[list-item]


def test_context_overflow(smollm2: uml.Model) -> None:
    with pytest.raises(uml.ContextOverflowError, match="n_ctx"):
        smollm2.generate("word " * 3000, max_tokens=4)


def test_tokenize_roundtrip(smollm2: uml.Model) -> None:
    tokens = smollm2.tokenize("The capital of France is", add_special=False)
    assert all(isinstance(t, int) for t in tokens) and len(tokens) >= 5
    assert smollm2.detokenize(tokens) == "The capital of France is"
    with pytest.raises(uml.InvalidArgumentError, match="vocabulary"):
        smollm2.detokenize([10**8])


def test_seeded_sampling_is_reproducible(smollm2: uml.Model) -> None:
    a = smollm2.generate("Once upon a time", max_tokens=12, temperature=0.9, seed=42)
    b = smollm2.generate("Once upon a time", max_tokens=12, temperature=0.9, seed=42)
    assert a.text == b.text


def test_info_and_repr(smollm2: uml.Model) -> None:
    assert smollm2.info.architecture == "llama"
    assert smollm2.plan["n_ctx"] == 1024
    assert smollm2.backend
    assert "SmolLM2" in repr(smollm2)
    assert smollm2.memory.host_bytes > 0


def test_grammar_and_json_schema_constrain_the_output(smollm2: uml.Model) -> None:
    out = smollm2.generate("Is the sky blue? Answer:", grammar='root ::= "yes" | "no"', temperature=0)
    assert out.text in ("yes", "no") and out.finish_reason == "stop"
    # Bounded (no other properties, at most 3 digits): the sampled object ends within max_tokens.
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 999}},
        "required": ["n"],
        "additionalProperties": False,
    }
    out = smollm2.generate("A number as JSON:", json_schema=schema, max_tokens=32, temperature=0.7, seed=3)
    assert out.finish_reason == "stop", out.text
    assert 0 <= json.loads(out.text)["n"] <= 999
    with pytest.raises(uml.InvalidArgumentError, match="line 1"):
        smollm2.generate("x", grammar='root ::= "unterminated')


def test_backend_option_names_the_engine_and_the_skipped_ones(smollm2_path: Any) -> None:
    with uml.Loader(smollm2_path, n_ctx=256, backend="llamacpp") as m:
        assert m.backend == "llama.cpp"
        assert m.skipped_backends == []
    with pytest.raises(uml.InvalidArgumentError, match="backend"):
        with uml.Loader(smollm2_path, n_ctx=256, backend="tensorrt"):  # type: ignore[arg-type]  # a wrong value on purpose
            pass


def test_a_hugging_face_folder_runs_on_candle_with_the_same_tokens_as_llama_cpp(tmp_path: Any) -> None:
    from uml import _uml

    folder = tmp_path / "tiny-hf"
    _uml._write_tiny_hf_folder(folder)
    gguf = tmp_path / "tiny.gguf"
    _uml._write_tiny_llama_gguf(gguf, 0)
    with uml.Loader(folder, n_ctx=128, n_threads=1) as hf, uml.Loader(
        gguf, n_ctx=128, n_threads=1, kv_cache_type="f32", flash_attention=False
    ) as ref:
        assert hf.backend == "candle" and ref.backend == "llama.cpp"
        assert [s["backend"] for s in hf.skipped_backends] == ["llama.cpp"]
        assert hf.skipped_backends[0]["stage"] == "check"
        assert hf.tokenize("the cat sat") == ref.tokenize("the cat sat")
        a = hf.generate("the cat sat", max_tokens=16, temperature=0)
        b = ref.generate("the cat sat", max_tokens=16, temperature=0)
        assert a.text == b.text
        seeded = dict(max_tokens=16, temperature=0.8, top_p=0.9, seed=42)
        assert hf.generate("the dog", **seeded).text == ref.generate("the dog", **seeded).text  # type: ignore[arg-type]


def test_dtype_halves_a_folders_weights_in_candle_and_is_refused_for_a_gguf(tmp_path: Any) -> None:
    from uml import _uml

    folder = tmp_path / "tiny-hf"
    _uml._write_tiny_hf_folder(folder)
    with uml.Loader(folder, n_ctx=128, n_threads=1) as full, uml.Loader(
        folder, n_ctx=128, n_threads=1, dtype="bf16"
    ) as half:
        assert half.backend == "candle"
        assert half.memory.weights_bytes * 2 == full.memory.weights_bytes
        out = half.generate("the cat sat", max_tokens=4, temperature=0)
        assert out.usage.completion_tokens > 0
    gguf = tmp_path / "tiny.gguf"
    _uml._write_tiny_llama_gguf(gguf, 0)
    with pytest.raises(uml.InvalidArgumentError, match="dtype"):
        with uml.Loader(gguf, n_ctx=128, dtype="f16"):
            pass


def test_the_same_prompt_again_evaluates_only_its_last_token(smollm2_path: Any) -> None:
    with uml.Loader(smollm2_path, n_ctx=512) as m:
        first = m.generate(COUNT["prompt"], max_tokens=COUNT["trusted_tokens"], temperature=0)
        again = m.generate(COUNT["prompt"], max_tokens=COUNT["trusted_tokens"], temperature=0)
    assert first.usage.cached_prompt_tokens == 0
    assert again.usage.cached_prompt_tokens == again.usage.prompt_tokens - 1
    assert first.text == again.text == COUNT["trusted_completion"]
