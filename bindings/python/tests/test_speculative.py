"""Speculative decoding from Python: SmolLM2 drafting for itself (the same vocabulary, so every
draft is kept) gives the greedy text it gives alone, reports drafted and accepted tokens, honours
draft_max=0 and draft_margin_min, and a draft of another vocabulary (Gemma 3) is refused at load."""

from __future__ import annotations

from pathlib import Path

import pytest

import uml
from uml import _uml
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
        # Every token is a "near-tie" under a margin of 1000 logits: nothing is drafted.
        ties = m.generate(prompt, max_tokens=32, temperature=0, draft_margin_min=1000.0)
        assert ties.usage.drafted_tokens == 0
        assert ties.text == expected.text
        through = m.generate(prompt, max_tokens=32, temperature=0, draft_margin_min=0.0)
        assert through.usage.drafted_tokens >= out.usage.drafted_tokens
        assert through.text == expected.text
    assert expected.usage.drafted_tokens == 0


def test_a_draft_of_another_vocabulary_is_refused() -> None:
    with pytest.raises(uml.InvalidArgumentError, match="vocabulary"):
        uml.load(model_path(), draft_model=str(model_path("gemma-3-270m-q4_k_m.gguf")))
    with pytest.raises(uml.InvalidArgumentError, match="draft_p_min"):
        with uml.Loader(model_path(), n_ctx=256, draft_model=str(model_path())) as m:
            m.generate("Hi", draft_p_min=2.0)
        with pytest.raises(uml.InvalidArgumentError, match="draft_margin_min"):
            m.generate("Hi", draft_margin_min=-1.0)


def test_mtp_drafts_with_the_models_own_heads(tmp_path: Path) -> None:
    """The ``mtp`` load option on a tiny Qwen3.5 with one prediction head (written by core's
    test support; its "echo" head drafts what the model mostly does): the same greedy text as
    without it, drafted and accepted tokens in the usage."""
    path = tmp_path / "tiny-qwen35-mtp.gguf"
    _uml._write_tiny_qwen35_mtp_gguf(path, 7, True)
    info = uml.inspect(path)
    assert info.mtp_layers == 1
    assert info.recurrent is not None
    assert info.recurrent["recurrent"] == [True, False, False]
    assert info.recurrent["state_elements"] > 0
    assert info.recurrent["rolls_back"] is True
    assert uml.inspect(model_path()).recurrent is None
    prompt = "once upon a time"
    with uml.Loader(path, n_ctx=256) as plain:
        expected = plain.generate(prompt, max_tokens=48, temperature=0)
    with uml.Loader(path, n_ctx=256, mtp=True) as m:
        out = m.generate(prompt, max_tokens=48, temperature=0)
        assert out.text == expected.text
        assert 0 < out.usage.accepted_tokens <= out.usage.drafted_tokens
        assert "".join(m.stream(prompt, max_tokens=48, temperature=0)) == expected.text
    with pytest.raises(uml.InvalidArgumentError, match="no multi-token-prediction heads"):
        uml.load(model_path(), mtp=True)
