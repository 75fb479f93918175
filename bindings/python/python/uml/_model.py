"""The Python face of a loaded model: context management, typed results, numpy, asyncio.

The engine work happens in the native module ``uml._uml`` with the GIL released; this file only
adapts calling conventions (keyword arguments, ``with``, ``await``, iterators).
"""

from __future__ import annotations

import array
import asyncio
import functools
import os
import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Sequence, Type, TypeVar, Union

from . import _uml
from ._options import BenchOptions, GenerateOptions, LoadOptions, Message, ProgressCallback
from ._types import BenchReport, Completion, MemoryEstimate, ModelInfo

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

StrPath = Union[str, "os.PathLike[str]"]

CancelToken = _uml.CancelToken


def load(path: StrPath, *, progress: Optional[ProgressCallback] = None, **options: Unpack[LoadOptions]) -> Model:
    """Load the model at ``path`` (blocking; the GIL is released). Prefer ``with uml.Loader(...)``
    or ``with uml.load(...) as m:`` so the memory is freed when you are done."""
    return Model(_uml.Model(path, dict(options), progress))


def remote(url: str, model: str, api_key: Optional[str] = None, **options: Unpack[LoadOptions]) -> Model:
    """A remote model: ``model`` served by the OpenAI-compatible endpoint at ``url`` (vLLM,
    llama-server, Ollama, another ``uml serve``; the base URL up to and including ``/v1``),
    ``api_key`` sent as ``Authorization: Bearer``. Its :meth:`Model.generate`, ``stream``,
    ``chat``, sessions and ``embed`` go to the endpoint with the same parameters, cancellation
    and results as a local model; ``tokenize`` and ``render_chat`` raise
    :class:`uml.UnsupportedError`, and :attr:`Model.backend` is ``"remote"``. Of ``options``
    (the keywords of :class:`Loader`), ``max_parallel`` (default 16), ``max_queued``,
    ``embeddings`` and ``normalize_embeddings`` apply.

    Blocks (with the GIL released) while it asks the endpoint whether it serves the model:
    :class:`uml.ModelNotFoundError` when it does not, :class:`uml.BackendError` when it cannot
    be reached, :class:`uml.InvalidArgumentError` for a URL that is not http(s). Like
    :func:`load`, it returns a :class:`Model`: ``with uml.remote(url, "llama") as m:``."""
    return Model(_uml.Model.remote(url, model, api_key, dict(options)))


_C = TypeVar("_C", bound="_ClosedOnExit")


class _ClosedOnExit:
    """``with`` support for the objects that hold engine resources: leaving the block calls
    ``close()``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


class Loader:
    """``with uml.Loader(path, n_ctx=4096) as model:`` loads on entry and closes on exit, even
    when the body raises."""

    def __init__(
        self, path: StrPath, *, progress: Optional[ProgressCallback] = None, **options: Unpack[LoadOptions]
    ) -> None:
        self.path = path
        self.progress = progress
        self.options: Dict[str, Any] = dict(options)
        self._model: Optional[Model] = None

    def __enter__(self) -> Model:
        self._model = Model(_uml.Model(self.path, self.options, self.progress))
        return self._model

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._model is not None:
            self._model.close()
            self._model = None


class Model(_ClosedOnExit):
    """A loaded model. Thread-safe: several threads may generate at once (each generation has
    its own context). Use it as a context manager, or call :meth:`close`."""

    def __init__(self, native: _uml.Model) -> None:
        self._native = native
        described = native.describe()
        self._info = ModelInfo(described["model"])
        self._memory = MemoryEstimate(described["memory"])
        self._plan: Dict[str, Any] = described["plan"]
        self._backend: str = described["backend"]
        self._skipped: List[Dict[str, str]] = described["skipped_backends"]

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Cancel running generations, wait for them (one decode step), free the weights and
        the KV caches. Idempotent; any later use raises :class:`uml.ModelClosedError`. A model
        from :meth:`uml.Manager.get`: cancel this handle's generations and let go of it; the
        manager keeps the model loaded (now idle, so it may be evicted)."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return self._native.closed

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"n_ctx={self._plan.get('n_ctx')}, backend={self._backend!r}"
        return f"<uml.Model {os.fspath(self._native.path)!r} {state}>"

    # -- what it is ---------------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        """The model's headers, as ``uml.inspect`` reports them."""
        return self._info

    @property
    def memory(self) -> MemoryEstimate:
        """The memory estimate the load was checked against."""
        return self._memory

    @property
    def plan(self) -> Dict[str, Any]:
        """The resolved load settings (n_ctx, threads, batch sizes, GPU layers, ...)."""
        return dict(self._plan)

    @property
    def backend(self) -> str:
        """The engine running the model ("llama.cpp")."""
        return self._backend

    @property
    def skipped_backends(self) -> List[Dict[str, str]]:
        """Backends passed over before :attr:`backend`, each with ``backend``, ``stage``
        ("check", "estimate" or "load"), ``kind`` (the error kind) and ``reason``."""
        return [dict(s) for s in self._skipped]

    @property
    def path(self) -> str:
        return os.fspath(self._native.path)

    # -- generation ---------------------------------------------------------------------------

    def generate(
        self, prompt: str, *, cancel: Optional[CancelToken] = None, **params: Unpack[GenerateOptions]
    ) -> Completion:
        """Continue ``prompt``. Blocks the calling thread only (the GIL is released); Ctrl-C
        cancels and raises KeyboardInterrupt. ``str(result)`` is the text."""
        return Completion(self._native.generate(prompt, dict(params), cancel))

    def stream(self, prompt: str, *, cancel: Optional[CancelToken] = None, **params: Unpack[GenerateOptions]) -> Stream:
        """Continue ``prompt``, yielding text pieces as they are generated. Leaving the loop
        early (``break``), ``close()`` or Ctrl-C cancels the generation."""
        return Stream(self._native.stream(prompt, dict(params), cancel))

    def chat(
        self, messages: Sequence[Message], *, cancel: Optional[CancelToken] = None, **params: Unpack[GenerateOptions]
    ) -> Completion:
        """Reply to OpenAI-style ``messages`` (``[{"role": "user", "content": "Hi"}]``), rendered
        with the model's own chat template."""
        return Completion(self._native.chat(_messages(messages), dict(params), cancel))

    def chat_stream(
        self, messages: Sequence[Message], *, cancel: Optional[CancelToken] = None, **params: Unpack[GenerateOptions]
    ) -> Stream:
        """:meth:`chat`, streamed like :meth:`stream`."""
        return Stream(self._native.chat_stream(_messages(messages), dict(params), cancel))

    def render_chat(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        """The prompt :meth:`chat` generates from."""
        return self._native.render_chat(_messages(messages), add_generation_prompt)

    def session(self, messages: Optional[Sequence[Message]] = None, *, system: Optional[str] = None) -> ChatSession:
        """A conversation that keeps its history, and its place in the model's cache, between
        turns, so each :meth:`ChatSession.send` evaluates only the tokens it adds. It starts
        from ``messages`` (earlier turns), after a ``system`` prompt if one is given."""
        start = [{"role": "system", "content": system}] if system is not None else []
        start += _messages(messages or [])
        return ChatSession(self._native.session(start))

    # -- asyncio ------------------------------------------------------------------------------

    async def agenerate(
        self, prompt: str, *, cancel: Optional[CancelToken] = None, **params: Unpack[GenerateOptions]
    ) -> Completion:
        """:meth:`generate` without blocking the event loop; cancelling the task cancels the
        generation."""
        token = cancel if cancel is not None else CancelToken()
        call = functools.partial(self._native.generate, prompt, dict(params), token)
        return Completion(await _in_thread(call, token))

    async def achat(
        self, messages: Sequence[Message], *, cancel: Optional[CancelToken] = None, **params: Unpack[GenerateOptions]
    ) -> Completion:
        """:meth:`chat` without blocking the event loop."""
        token = cancel if cancel is not None else CancelToken()
        call = functools.partial(self._native.chat, _messages(messages), dict(params), token)
        return Completion(await _in_thread(call, token))

    def astream(
        self, prompt: str, *, cancel: Optional[CancelToken] = None, **params: Unpack[GenerateOptions]
    ) -> AsyncStream:
        """``async for piece in model.astream(prompt)``: :meth:`stream` for asyncio."""
        return AsyncStream(self.stream(prompt, cancel=cancel, **params))

    def achat_stream(
        self, messages: Sequence[Message], *, cancel: Optional[CancelToken] = None, **params: Unpack[GenerateOptions]
    ) -> AsyncStream:
        """``async for piece in model.achat_stream(messages)``."""
        return AsyncStream(self.chat_stream(messages, cancel=cancel, **params))

    # -- embeddings and tokens ----------------------------------------------------------------

    def embed(self, texts: Union[str, Sequence[str]]) -> Any:
        """One vector per text: a ``numpy.ndarray`` of shape (len(texts), width) and dtype
        float32 when numpy is installed, else a list of lists of floats. A single ``str`` gives
        a single vector. Load with ``embeddings=True`` for pooled sentence embeddings."""
        single = isinstance(texts, str)
        raw, width = self._native.embed([texts] if isinstance(texts, str) else list(texts))
        try:
            import numpy
        except ImportError:
            vectors = _to_lists(raw, width)
            return vectors[0] if single else vectors
        matrix = numpy.frombuffer(bytearray(raw), dtype="<f4").reshape(-1, width)
        return matrix[0] if single else matrix

    def embed_lists(self, texts: Sequence[str]) -> List[List[float]]:
        """:meth:`embed` as plain lists whether or not numpy is installed."""
        raw, width = self._native.embed(list(texts))
        return _to_lists(raw, width)

    def tokenize(self, text: str, add_special: bool = True) -> List[int]:
        """Token ids of ``text``; ``add_special`` adds BOS etc. as the model wants."""
        return self._native.tokenize(text, add_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._native.detokenize(list(tokens))

    def bench(self, **options: Unpack[BenchOptions]) -> BenchReport:
        """Prompt (pp) and generation (tg) tokens/s, measured as llama-bench does."""
        return BenchReport(self._native.bench(dict(options)))


class ChatSession(_ClosedOnExit):
    """A conversation with a model: each :meth:`send` adds a message, generates the reply over
    the whole conversation with the model's chat template (as :meth:`Model.chat`), and adds the
    reply. The model keeps the conversation's cache between turns, so a turn evaluates only
    what it added (``usage.cached_prompt_tokens`` counts the rest). One turn at a time: a send
    while another runs raises :class:`uml.BusyError`. A failed turn leaves the conversation as
    it was. Closing the model ends the session (:class:`uml.ModelClosedError`). Use it as a
    context manager, or call :meth:`close`."""

    def __init__(self, native: _uml.ChatSession) -> None:
        self._native = native

    def send(
        self,
        content: str,
        *,
        role: str = "user",
        cancel: Optional[CancelToken] = None,
        **params: Unpack[GenerateOptions],
    ) -> Completion:
        """One turn: add ``content`` as a ``role`` message and return the reply. Blocks the
        calling thread only; Ctrl-C cancels."""
        return Completion(self._native.send(content, role, dict(params), cancel))

    def stream(
        self,
        content: str,
        *,
        role: str = "user",
        cancel: Optional[CancelToken] = None,
        **params: Unpack[GenerateOptions],
    ) -> Stream:
        """:meth:`send`, yielding the reply's pieces as they are generated."""
        return Stream(self._native.send_stream(content, role, dict(params), cancel))

    async def asend(
        self,
        content: str,
        *,
        role: str = "user",
        cancel: Optional[CancelToken] = None,
        **params: Unpack[GenerateOptions],
    ) -> Completion:
        """:meth:`send` without blocking the event loop; cancelling the task cancels the turn."""
        token = cancel if cancel is not None else CancelToken()
        call = functools.partial(self._native.send, content, role, dict(params), token)
        return Completion(await _in_thread(call, token))

    def astream(
        self,
        content: str,
        *,
        role: str = "user",
        cancel: Optional[CancelToken] = None,
        **params: Unpack[GenerateOptions],
    ) -> AsyncStream:
        """``async for piece in session.astream(content)``: :meth:`stream` for asyncio."""
        return AsyncStream(self.stream(content, role=role, cancel=cancel, **params))

    @property
    def messages(self) -> List[Dict[str, str]]:
        """The conversation so far: the starting messages, then each turn's message and reply
        (a running turn's appear when it ends)."""
        return self._native.messages()

    def reset(self, messages: Optional[Sequence[Message]] = None) -> None:
        """Start over from ``messages`` (none by default). :class:`uml.BusyError` while a turn
        runs."""
        self._native.reset(_messages(messages or []))

    def close(self) -> None:
        """End the session: what the model kept for it goes to other callers. Idempotent."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return self._native.closed

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.messages)} messages"
        return f"<uml.ChatSession {state}>"


def _messages(messages: Sequence[Message]) -> List[Dict[str, Any]]:
    # Plain dicts for the native side; anything else is passed on for core to refuse by name.
    return [dict(m) if isinstance(m, Mapping) else m for m in messages]


def _to_lists(raw: bytes, width: int) -> List[List[float]]:
    values = array.array("f")
    values.frombytes(raw)
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    if width == 0:
        return []
    return [values[i : i + width].tolist() for i in range(0, len(values), width)]


async def _in_thread(call: functools.partial[Any], token: CancelToken) -> Any:
    """Run a blocking native call on the default executor; cancel ``token`` if the awaiting
    task is cancelled (the worker then ends within one decode step)."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, call)
    try:
        return await future
    except asyncio.CancelledError:
        token.cancel()
        raise


class Stream(Iterator[str]):
    """Text pieces of a running generation. After it ends, :attr:`completion` holds the finish
    reason and usage. Use ``with model.stream(...) as s:`` to cancel on leaving the block."""

    def __init__(self, native: _uml.Stream) -> None:
        self._native = native

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        return self._native.__next__()

    def cancel(self) -> None:
        """Ask the generation to stop; returns at once. Safe from any thread."""
        self._native.cancel()

    def close(self) -> None:
        """Cancel and wait for the generation to end; unread pieces are dropped."""
        self._native.close()

    @property
    def completion(self) -> Optional[Completion]:
        """The result once the stream has ended or was closed (else None)."""
        data = self._native.completion()
        return None if data is None else Completion(data)

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _pump(native: _uml.Stream, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[object]) -> None:
    # Holds no reference to the AsyncStream, so dropping that object cancels the generation.
    def put(item: object) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
            return True
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            native.cancel()
            return False

    try:
        for piece in native:
            if not put(piece):
                return
        put(_END)
    except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
        put(_Failure(e))


class AsyncStream:
    """``async for piece in model.astream(prompt)``. Cancelling the task, ``break``-ing out of
    the loop or :meth:`aclose` cancels the generation."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._done = False
        native = stream._native
        self._thread = threading.Thread(
            target=_pump, args=(native, asyncio.get_running_loop(), self._queue), name="uml-astream", daemon=True
        )
        self._thread.start()

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._queue.get()
        except asyncio.CancelledError:
            self.cancel()
            raise
        if item is _END:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.error
        assert isinstance(item, str)
        return item

    def cancel(self) -> None:
        """Ask the generation to stop; returns at once."""
        self._stream.cancel()

    async def aclose(self) -> None:
        """Cancel and wait (without blocking the loop) for the generation to end."""
        self.cancel()
        self._done = True
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    @property
    def completion(self) -> Optional[Completion]:
        """The result once the stream has ended (else None)."""
        return self._stream.completion

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        stream: Optional[Stream] = getattr(self, "_stream", None)
        if stream is not None:
            stream.cancel()
