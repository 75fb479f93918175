"""Keyword arguments as type checkers see them. Core owns the defaults and the validation: an
unknown key or a bad value raises :class:`uml.InvalidArgumentError` naming it."""

from __future__ import annotations

from typing import Any, Callable, List, Literal, Mapping, Optional, Tuple, TypedDict, Union


class _LoraAdapterRequired(TypedDict):
    path: str
    """The adapter: a GGUF file (as llama.cpp's convert_lora_to_gguf.py writes them) or a
    Hugging Face PEFT adapter folder (adapter_config.json + adapter_model.safetensors),
    converted as it loads."""


class LoraAdapter(_LoraAdapterRequired, total=False):
    """One LoRA adapter of :attr:`LoadOptions.lora`."""

    scale: float
    """Its scale for generations that do not choose (default 1; 0: loaded but off)."""
    name: str
    """The name generations choose it by (default: the file name without ``.gguf``)."""


class _LoraScaleRequired(TypedDict):
    name: str


class LoraScale(_LoraScaleRequired, total=False):
    """One adapter of :attr:`GenerateOptions.lora`."""

    scale: float
    """Default 1 (as trained); 0 is the base model."""


class LoadOptions(TypedDict, total=False):
    """How to load a model (``uml.Loader(path, **options)``)."""

    n_ctx: Optional[int]
    """Context length in tokens (default: the model's, capped by available memory)."""
    n_threads: Optional[int]
    """Generation threads (default: the physical cores)."""
    n_threads_batch: Optional[int]
    """Prompt-processing threads (default: n_threads)."""
    n_batch: int
    """Tokens per decode call (default 512)."""
    n_ubatch: int
    """Physical batch, <= n_batch (default 512)."""
    gpu_layers: Union[int, Literal["auto"]]
    """Layers offloaded to a GPU: a count or "auto" (default)."""
    use_mmap: bool
    use_mlock: bool
    kv_cache_type: Literal["f32", "f16", "q8_0", "q4_0"]
    seed: Optional[int]
    """Seed for generations that give none (default: random)."""
    embeddings: bool
    """Load for sentence embeddings."""
    normalize_embeddings: bool
    """L2-normalise embeddings (default True)."""
    chat_template: Optional[str]
    """A Jinja chat template replacing the model's own."""
    backend: Literal["auto", "llamacpp", "candle"]
    """The engine: "auto" (default: the preferred one for the format, falling back to the next
    when one fails; :attr:`Model.skipped_backends` says why), "llamacpp" (GGUF) or "candle"
    (Hugging Face folders, and llama-architecture GGUFs through its quantized kernels)."""
    flash_attention: Optional[bool]
    """llama.cpp's flash attention: None (default) lets llama.cpp decide."""
    dtype: Optional[Literal["f32", "f16", "bf16"]]
    """A Hugging Face folder's weight type in candle: None (default) = f32 on the CPU; f16 and
    bf16 take half the memory. A GGUF keeps its stored types (asking for a dtype is an error)."""
    control_tokens_in_messages: bool
    """False (default): control-token text inside chat message contents (``<|im_start|>``)
    stays plain text, so no message can forge a turn. True: it becomes the control token, as
    in llama.cpp's server and transformers."""
    max_parallel: Optional[int]
    """Most generations and embedding calls running on the model at once. With llama.cpp these
    are the slots of one shared context, each with ``n_ctx`` KV cells (allocated at load and
    counted in the estimate), and their decodes are batched; a load that drafts
    (``draft_model``, ``mtp``) runs each in private contexts instead. More wait in line, in
    arrival order, and leave it when cancelled. None (default): up to 4, fewer when memory is
    short."""
    max_queued: Optional[int]
    """Most callers waiting in that line; one more raises :class:`uml.BusyError` at once.
    None (default): 512."""
    draft_model: Optional[str]
    """A small model of the same vocabulary that drafts tokens for this one to verify in one
    decode (speculative decoding: faster, the same greedy text); a draft whose vocabulary
    differs raises :class:`uml.InvalidArgumentError`. llama.cpp only."""
    mtp: bool
    """Draft with the model's own multi-token-prediction heads (speculative decoding without a
    second model: faster, the same text). Qwen3.5, GLM-4.5 and DeepSeek-V3 GGUFs carry them;
    ``inspect(path).mtp_layers`` says how many. A model without them raises
    :class:`uml.InvalidArgumentError`. llama.cpp only; not with ``draft_model``."""
    lora: List[LoraAdapter]
    """LoRA adapters to load (llama.cpp only), each on at its ``scale`` for generations that do
    not choose; several at a nonzero scale run together (merged into one adapter at load, as
    llama.cpp's repeated ``--lora-scaled`` applies them). An adapter made for another architecture or model
    raises :class:`uml.InvalidArgumentError` naming the tensor and shapes."""


class GenerateOptions(TypedDict, total=False):
    """Sampling and stopping (``Model.generate(prompt, **params)``)."""

    max_tokens: int
    """Most tokens to generate (default 256)."""
    temperature: float
    """0 = greedy (default 0.8)."""
    top_k: int
    top_p: float
    min_p: float
    repeat_penalty: float
    repeat_last_n: int
    frequency_penalty: float
    presence_penalty: float
    seed: Optional[int]
    stop: Union[List[str], Tuple[str, ...]]
    """Stop when any of these strings appears (it is not part of the output)."""
    logit_bias: Mapping[int, float]
    """Token id -> bias added to its logit."""
    grammar: Optional[str]
    """A grammar constraining the output: GBNF (llama.cpp's syntax) or llguidance Lark."""
    json_schema: Optional[Mapping[str, Any]]
    """A JSON schema constraining the output."""
    deterministic: bool
    """Run alone in a context of its own, never batched with other generations: the same
    logits bit for bit as a lone caller gets (default False)."""
    context_shift: bool
    """When the context is full, drop the older half after the first token and go on instead
    of stopping with finish reason "length" (default False). Models whose memory cannot shift
    (sliding-window attention, recurrent state) raise :class:`uml.UnsupportedError`."""
    draft_max: int
    """With a draft model: the most tokens drafted per step (default 16; 0: no drafting)."""
    draft_min: int
    """With a draft model: drafts shorter than this are not verified (default 0)."""
    draft_p_min: float
    """With a draft model: drafting stops at a token the draft gives less probability (default 0)."""
    draft_margin_min: float
    """With a draft model: drafting stops at a near-tie, a token whose logit leads the draft's
    runner-up by less than this (default 0.25; 0: draft through ties). The model breaks such
    ties its own way more often than not, and the drafts after a rejected one are wasted."""
    lora: Optional[List[LoraScale]]
    """The LoRA adapters this generation runs with, by name, each with its scale; those not
    listed are off (``[]``: the base model). None (default): the scales the model was loaded
    with. Several may be on only at the scales they were loaded with (else
    :class:`uml.UnsupportedError`)."""


class BenchOptions(TypedDict, total=False):
    """llama-bench's parameters (``Model.bench(**options)``)."""

    n_prompt: int
    n_gen: int
    repetitions: int


ProgressCallback = Callable[[str, float], Optional[bool]]
"""``progress(stage, fraction)``: stage is "inspect", "weights" or "ready"; return False to
cancel the load (raises :class:`uml.CancelledError`)."""

Message = Mapping[str, Any]
"""An OpenAI-style chat message: ``{"role": "user", "content": "Hi"}``."""
