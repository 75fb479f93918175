"""Typed, read-only views of the results core returns (as JSON-like dicts).

Every field core serialises becomes an attribute (new core fields appear without a change here);
the annotations below are the ones a type checker knows about. ``to_dict()`` gives back the plain
data, ``repr()`` a one-line summary.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple, Type


def _size(n: object) -> str:
    if not isinstance(n, int):
        return repr(n)
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _count(n: object) -> str:
    if not isinstance(n, int):
        return repr(n)
    for unit, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


class Record:
    """Base of the result types: attributes from a dict, ``to_dict()``, a short ``repr``."""

    # Fields shown by repr, with an optional formatter for each.
    _summary: ClassVar[Tuple[str, ...]] = ()
    _sizes: ClassVar[Tuple[str, ...]] = ()
    _counts: ClassVar[Tuple[str, ...]] = ()
    # Fields holding another record (or a list of them).
    _nested: ClassVar[Dict[str, Type[Record]]] = {}

    _data: Dict[str, Any]

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", dict(data))
        for key, value in data.items():
            kind = self._nested.get(key)
            if kind is not None and isinstance(value, Mapping):
                value = kind(value)
            elif kind is not None and isinstance(value, list):
                value = [kind(v) if isinstance(v, Mapping) else v for v in value]
            object.__setattr__(self, key, value)

    def to_dict(self) -> Dict[str, Any]:
        """The data as plain dicts, lists and scalars (a deep copy)."""
        return copy.deepcopy(self._data)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._data == other._data

    def _show(self, key: str) -> str:
        value = getattr(self, key, None)
        if key in self._sizes:
            return _size(value)
        if key in self._counts:
            return _count(value)
        if isinstance(value, float):
            return f"{value:.1f}"
        if isinstance(value, str) and len(value) > 60:
            return repr(value[:57] + "...")
        return repr(value)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={self._show(k)}" for k in self._summary if k in self._data)
        return f"{type(self).__name__}({fields})"


class ModelInfo(Record):
    """What a model file is, read from its headers (``uml.inspect``)."""

    path: str
    format: str
    architecture: Optional[str]
    name: Optional[str]
    parameter_count: int
    quantization: Optional[str]
    tensor_types: Dict[str, int]
    tensor_count: int
    context_length: Optional[int]
    block_count: Optional[int]
    embedding_length: Optional[int]
    feed_forward_length: Optional[int]
    mtp_layers: int
    recurrent: Optional[Dict[str, Any]]
    """For a model with a recurrent state (Mamba, RWKV, hybrids such as Qwen3.5 and LFM2;
    None for a transformer): per block whether it keeps a state (``recurrent``) and whether it
    has a KV cache (``attention``), the f32 elements of one block's state per sequence
    (``state_elements``), the prediction-head blocks whose cache the ``mtp`` heads' context
    holds (``head_blocks``), and whether llama.cpp can roll the state back for drafting
    (``rolls_back``). The memory estimate counts these."""
    head_count: Optional[int]
    head_count_kv: Optional[int]
    vocab_size: Optional[int]
    tokenizer_model: Optional[str]
    chat_template: Optional[str]
    bos_token: Optional[str]
    eos_token: Optional[str]
    file_size: int
    metadata: Dict[str, Any]

    _summary = (
        "path",
        "format",
        "architecture",
        "parameter_count",
        "quantization",
        "context_length",
        "file_size",
    )
    _sizes = ("file_size",)
    _counts = ("parameter_count",)


class MemoryEstimate(Record):
    """Memory a model needs (``uml.estimate``, ``Model.memory``); sizes in bytes."""

    n_ctx: int
    cache_type: str
    gpu_layers: int
    n_ubatch: int
    flash_attention: bool
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    compute_reserved_bytes: int
    private_contexts: int
    """Contexts each generation has of its own (1 with a ``draft_model``, 2 with ``mtp``; 0:
    they share the slots' context); ``compute_bytes`` counts a buffer for each, in every slot."""
    overhead_bytes: int
    adapters_bytes: int
    """The LoRA adapters loaded with the model (load option ``lora``), merged copy included."""
    host_bytes: int
    device_bytes: int
    total_bytes: int
    draft: Optional["MemoryEstimate"]
    """The draft model's memory (load option ``draft_model``), loaded beside the model; else
    ``None`` (``uml.estimate`` only)."""
    load_host_bytes: int
    """RAM the load needs: the model's and its draft's (``uml.estimate`` only)."""
    load_device_bytes: int
    """GPU memory the load needs: the model's and its draft's (``uml.estimate`` only)."""
    fits: bool
    """Whether ``load_host_bytes`` fit in the memory available when estimated (and
    ``load_device_bytes`` on the GPUs; ``uml.estimate`` only)."""
    backend: str
    """The backend whose memory model this is: the one a load would try first (``uml.estimate``
    only)."""
    available_memory_bytes: int
    """The memory available when estimated (``uml.estimate`` only)."""

    _summary = (
        "n_ctx",
        "weights_bytes",
        "kv_cache_bytes",
        "compute_bytes",
        "host_bytes",
        "device_bytes",
        "gpu_layers",
        "fits",
    )
    _sizes = ("weights_bytes", "kv_cache_bytes", "compute_bytes", "host_bytes", "device_bytes")


MemoryEstimate._nested = {"draft": MemoryEstimate}


class Gpu(Record):
    """One GPU a driver reports."""

    index: int
    name: str
    backend: str
    total_memory_bytes: int
    free_memory_bytes: int

    _summary = ("index", "name", "backend", "free_memory_bytes", "total_memory_bytes")
    _sizes = ("free_memory_bytes", "total_memory_bytes")


class Hardware(Record):
    """The machine as uml sees it (``uml.hardware``)."""

    cpu_model: str
    physical_cores: int
    logical_cores: int
    simd: List[str]
    total_memory_bytes: int
    available_memory_bytes: int
    gpus: List[Gpu]
    cpu_kernels: Optional[str]
    """llama.cpp's CPU kernels: ``"native"``, or the variant a portable build loaded for this
    CPU (``"haswell"``, ``"skylakex"``, ...)."""

    _summary = (
        "cpu_model",
        "physical_cores",
        "logical_cores",
        "total_memory_bytes",
        "available_memory_bytes",
        "gpus",
    )
    _sizes = ("total_memory_bytes", "available_memory_bytes")
    _nested = {"gpus": Gpu}


class Usage(Record):
    """Token counts and timings of one generation."""

    prompt_tokens: int
    cached_prompt_tokens: int
    """Prompt tokens kept from an earlier generation's context instead of evaluated again."""
    completion_tokens: int
    prompt_ms: float
    generation_ms: float
    prompt_tokens_per_second: float
    generation_tokens_per_second: float
    drafted_tokens: int
    """Speculative decoding: tokens the draft model proposed (0 without one)."""
    accepted_tokens: int
    """Of those, the ones the model kept (each saved a decode step)."""

    _summary = ("prompt_tokens", "completion_tokens", "generation_tokens_per_second")


class Completion(Record):
    """The result of ``generate`` / ``chat``. ``str(completion)`` is the generated text."""

    text: str
    finish_reason: str
    """"stop" (end of text or a stop string), "length" (max_tokens or the context is full),
    "cancelled" or "error"."""
    usage: Usage

    _summary = ("text", "finish_reason", "usage")
    _nested = {"usage": Usage}

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Completion(text={self.text!r}, finish_reason={self.finish_reason!r}, usage={self.usage!r})"


class BenchSeries(Record):
    """One benchmark test ("pp512", "tg128"): samples and median in tokens per second."""

    test: str
    tokens: int
    samples: List[float]
    median: float

    _summary = ("test", "median")


class BenchReport(Record):
    """Engine throughput as llama-bench measures it (``Model.bench``)."""

    threads: int
    n_batch: int
    tests: List[BenchSeries]

    _summary = ("threads", "n_batch", "tests")
    _nested = {"tests": BenchSeries}
