"""The exceptions uml raises: one class per core ``ErrorKind``, all under :class:`UmlError`.

Each also subclasses the builtin a Python user would reach for first, so
``except FileNotFoundError`` or ``except ValueError`` keep working. ``code`` is the stable
numeric kind (equal to the C ``uml_status``) and ``kind`` its name.
"""

from __future__ import annotations

from typing import ClassVar, Dict, Type


class UmlError(Exception):
    """Base class of every error uml raises. ``str(err)`` is core's message (what, value, fix)."""

    code: ClassVar[int] = 0
    kind: ClassVar[str] = ""


class InvalidArgumentError(UmlError, ValueError):
    """An option, parameter or argument is invalid (the message names it)."""

    code = 1
    kind = "INVALID_ARGUMENT"


class ModelNotFoundError(UmlError, FileNotFoundError):
    """The model path (or another named file) does not exist."""

    code = 2
    kind = "NOT_FOUND"


class UnsupportedFormatError(UmlError, ValueError):
    """The file is not a model format uml can load (e.g. legacy GGML), or no model at all."""

    code = 3
    kind = "UNSUPPORTED_FORMAT"


class InvalidModelError(UmlError, ValueError):
    """The file claims a known format but is corrupt, truncated or hostile."""

    code = 4
    kind = "INVALID_MODEL"


class OutOfMemoryError(UmlError, MemoryError):
    """Loading or running would need more memory than is available."""

    code = 5
    kind = "OUT_OF_MEMORY"


class CancelledError(UmlError):
    """The operation was cancelled (e.g. the load progress callback returned False).

    Not to be confused with :class:`asyncio.CancelledError`: a cancelled *generation* is not an
    error, it returns what was generated with ``finish_reason == "cancelled"``.
    """

    code = 6
    kind = "CANCELLED"


class BackendError(UmlError, RuntimeError):
    """The inference engine (llama.cpp) reported a failure."""

    code = 7
    kind = "BACKEND"


class IoError(UmlError, OSError):
    """An operating-system I/O error (permissions, read failure)."""

    code = 8
    kind = "IO"


class ContextOverflowError(UmlError, ValueError):
    """The prompt (plus the tokens to generate) does not fit in the context window."""

    code = 9
    kind = "CONTEXT_OVERFLOW"


class UnsupportedError(UmlError, NotImplementedError):
    """Valid, but not supported by this build or this model (e.g. no chat template)."""

    code = 10
    kind = "UNSUPPORTED"


class ModelClosedError(UmlError, ValueError):
    """The model was closed (like I/O on a closed file, a ``ValueError``)."""

    code = 11
    kind = "MODEL_CLOSED"


class InternalError(UmlError, RuntimeError):
    """A bug in uml (a caught panic, a broken invariant). Please report it."""

    code = 12
    kind = "INTERNAL"


class BufferTooSmallError(UmlError, ValueError):
    """A caller-provided output buffer is too small."""

    code = 13
    kind = "BUFFER_TOO_SMALL"


class BusyError(UmlError, RuntimeError):
    """Every generation slot of the model is running and the queue of callers waiting for one
    is full: try again later, or load with a larger ``max_parallel`` / ``max_queued``."""

    code = 14
    kind = "BUSY"


ERRORS_BY_CODE: Dict[int, Type[UmlError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        ModelNotFoundError,
        UnsupportedFormatError,
        InvalidModelError,
        OutOfMemoryError,
        CancelledError,
        BackendError,
        IoError,
        ContextOverflowError,
        UnsupportedError,
        ModelClosedError,
        InternalError,
        BufferTooSmallError,
        BusyError,
    )
}
"""Every error class by its stable code."""

# Tracebacks and pickles name the public path (uml.InvalidArgumentError), not this module.
for _cls in (UmlError, *ERRORS_BY_CODE.values()):
    _cls.__module__ = "uml"
