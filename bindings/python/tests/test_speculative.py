"""Speculative decoding from Python: SmolLM2 drafting for itself (the same vocabulary, so every
draft is kept) gives the greedy text it gives alone, reports drafted and accepted tokens, honours
draft_max=0, and a draft of another vocabulary (Gemma 3) is refused at load."""

from __future__ import annotations

import pytest

import uml
from conftest import model_path


def test_a_draft_gives_the_same_greedy_text_and_counts_its_tokens() -> None:
    prompt = "The capital of France is"
    with uml.Loader(model_path(), n_ctx=512) as alone:
        expected = alone.generate(prompt, max_tokens=32, temperature=0)
    with uml.Loader(model_path(), n_ctx=512, draft_model=str(model_path())) as m:
        out = m.generate(prompt, max_tokens=32, temperature=0)
        assert out.text == expected.text
        assert out.usage.drafted_tokens > 0
        assert 0 < out.usage.accepted_tokens <= out.usage.drafted_tokens
        streamed = "".join(m.stream(prompt, max_tokens=32, temperature=0, draft_max=4))
        assert streamed == expected.text
        off = m.generate(prompt, max_tokens=8, temperature=0, draft_max=0)
        assert off.usage.drafted_tokens == 0
    assert expected.usage.drafted_tokens == 0


def test_a_draft_of_another_vocabulary_is_refused() -> None:
    with pytest.raises(uml.InvalidArgumentError, match="vocabulary"):
        uml.load(model_path(), draft_model=str(model_path("gemma-3-270m-q4_k_m.gguf")))
    with pytest.raises(uml.InvalidArgumentError, match="draft_p_min"):
        with uml.Loader(model_path(), n_ctx=256, draft_model=str(model_path())) as m:
            m.generate("Hi", draft_p_min=2.0)
