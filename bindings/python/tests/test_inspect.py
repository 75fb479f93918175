"""inspect / estimate / hardware: typed results with readable reprs and to_dict()."""

from __future__ import annotations

from pathlib import Path

import pytest

import uml


def test_inspect_reads_headers(smollm2_path: Path) -> None:
    info = uml.inspect(smollm2_path)
    assert isinstance(info, uml.ModelInfo)
    assert info.architecture == "llama"
    assert info.context_length and info.context_length >= 2048
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert 100_000_000 < info.parameter_count < 200_000_000
    text = repr(info)
    assert text.startswith("ModelInfo(") and "llama" in text and "\n" not in text
    d = info.to_dict()
    assert d["architecture"] == "llama" and isinstance(d["tensor_types"], dict)
    assert uml.inspect(str(smollm2_path)) == info


def test_estimate_grows_with_context(smollm2_path: Path) -> None:
    small = uml.estimate(smollm2_path, n_ctx=512)
    large = uml.estimate(smollm2_path, n_ctx=8192)
    assert isinstance(small, uml.MemoryEstimate)
    assert small.n_ctx == 512 and large.n_ctx == 8192
    assert large.kv_cache_bytes > small.kv_cache_bytes > 0
    assert small.weights_bytes == large.weights_bytes > 0
    assert small.fits is True  # a 94 MiB model at 512 tokens fits on any test machine
    assert small.backend == "llama.cpp" and small.available_memory_bytes > small.host_bytes
    assert "MiB" in repr(small) and "fits=True" in repr(small)
    q8 = uml.estimate(smollm2_path, n_ctx=8192, kv_cache_type="q8_0")
    assert q8.kv_cache_bytes < large.kv_cache_bytes
    with pytest.raises(uml.InvalidArgumentError, match="n_ctxx"):
        uml.estimate(smollm2_path, n_ctxx=512)  # type: ignore[call-arg]


def test_estimate_counts_a_draft_model(smollm2_path: Path) -> None:
    alone = uml.estimate(smollm2_path, n_ctx=1024)
    assert alone.draft is None and alone.load_host_bytes == alone.host_bytes
    paired = uml.estimate(smollm2_path, n_ctx=1024, draft_model=str(smollm2_path))
    assert isinstance(paired.draft, uml.MemoryEstimate)
    assert paired.draft.n_ctx == 1024 and paired.host_bytes == alone.host_bytes
    assert paired.load_host_bytes == alone.host_bytes + paired.draft.host_bytes
    with pytest.raises(uml.ModelNotFoundError, match="draft model"):
        uml.estimate(smollm2_path, draft_model=str(smollm2_path) + ".missing")


def test_hardware() -> None:
    hw = uml.hardware()
    assert hw.logical_cores >= 1 and hw.total_memory_bytes > 0
    assert hw.available_memory_bytes <= hw.total_memory_bytes
    assert all(g.free_memory_bytes <= g.total_memory_bytes for g in hw.gpus)
    assert "Hardware(" in repr(hw)
    assert hw.to_dict()["logical_cores"] == hw.logical_cores
    # This test build is native; a portable one names its variant.
    assert hw.cpu_kernels == "native"


def test_version() -> None:
    assert uml.__version__.count(".") == 2
