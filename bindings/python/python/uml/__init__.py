"""uml: the Universal Model Loader for Python.

Load local GGUF models and run them in-process (llama.cpp inside, through the uml Rust engine)::

    import uml

    info = uml.inspect("model.gguf")               # headers only, no weights read
    with uml.Loader("model.gguf", n_ctx=4096) as m:
        print(m.generate("Once upon a time", max_tokens=64, temperature=0.7))
        for piece in m.stream("Tell me a joke"):
            print(piece, end="", flush=True)
        reply = m.chat([{"role": "user", "content": "Hi"}])

    with uml.remote("http://10.0.0.5:8080/v1", "llama") as m:  # served elsewhere (OpenAI API)
        print(m.generate("Hi"))

    with uml.Manager(memory_budget_bytes=4 << 30, folders=["models"]) as mgr:
        mgr.scan()                                 # several models by id, loaded on demand
        with mgr.get("SmolLM2-135M-Instruct.Q4_1") as m:
            print(m.generate("Hi"))

The GIL is released while the engine works, Ctrl-C cancels a generation, and every error is a
subclass of :class:`UmlError`.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import TYPE_CHECKING, Union

# libgomp (llama.cpp's OpenMP) reads its spin budget once, when the native module loads it:
# set uml's (core's hardware::OPENMP_SPIN; see its comment for the measurements) first, unless
# the user chose an OpenMP wait policy. Without it, a busy machine made generation spin for
# seconds at llama.cpp's barriers.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"

from . import _uml  # noqa: E402
from ._errors import (
    ERRORS_BY_CODE,
    BackendError,
    BufferTooSmallError,
    BusyError,
    CancelledError,
    ContextOverflowError,
    InternalError,
    InvalidArgumentError,
    InvalidModelError,
    IoError,
    ModelClosedError,
    ModelNotFoundError,
    OutOfMemoryError,
    UmlError,
    UnsupportedError,
    UnsupportedFormatError,
)
from ._manager import Manager
from ._model import AsyncStream, CancelToken, ChatSession, Loader, Model, Stream, load, remote
from ._options import BenchOptions, GenerateOptions, LoadOptions, LoraAdapter, LoraScale, Message, ProgressCallback
from ._types import BenchReport, BenchSeries, Completion, Gpu, Hardware, MemoryEstimate, ModelInfo, Record, Usage

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__version__: str = _uml.__version__

# Generations still running when the interpreter exits are cancelled and waited for (one decode
# step) before llama.cpp's static destructors run.
atexit.register(_uml._shutdown)

__all__ = [
    "AsyncStream",
    "BackendError",
    "BenchOptions",
    "BenchReport",
    "BenchSeries",
    "BufferTooSmallError",
    "BusyError",
    "CancelToken",
    "CancelledError",
    "ChatSession",
    "Completion",
    "ContextOverflowError",
    "ERRORS_BY_CODE",
    "GenerateOptions",
    "Gpu",
    "Hardware",
    "InternalError",
    "InvalidArgumentError",
    "InvalidModelError",
    "IoError",
    "LoadOptions",
    "LoraAdapter",
    "LoraScale",
    "Loader",
    "Manager",
    "MemoryEstimate",
    "Message",
    "Model",
    "ModelClosedError",
    "ModelInfo",
    "ModelNotFoundError",
    "OutOfMemoryError",
    "ProgressCallback",
    "Record",
    "Stream",
    "UmlError",
    "UnsupportedError",
    "UnsupportedFormatError",
    "Usage",
    "__version__",
    "estimate",
    "hardware",
    "inspect",
    "load",
    "remote",
]


def inspect(path: Union[str, "os.PathLike[str]"]) -> ModelInfo:
    """What the model at ``path`` is: format, architecture, parameters, quantization, context
    length, chat template... Reads headers only, so it takes milliseconds on any size."""
    return ModelInfo(_uml.inspect(path))


def estimate(path: Union[str, "os.PathLike[str]"], **options: Unpack[LoadOptions]) -> MemoryEstimate:
    """The memory the model at ``path`` needs when loaded with ``options`` (the same keywords as
    :class:`Loader`; ``n_ctx`` defaults to the model's trained context): weights, KV cache,
    compute buffers, LoRA adapters, a draft model, host and device totals, and ``fits``. Reads
    headers only."""
    return MemoryEstimate(_uml.estimate(path, dict(options)))


def hardware() -> Hardware:
    """The CPU, SIMD features, memory and GPUs uml sees."""
    return Hardware(_uml.hardware())
