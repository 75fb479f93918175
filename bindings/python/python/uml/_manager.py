"""Several models by id within a memory budget: the Python face of core's model manager."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Union

from . import _uml
from ._model import Model, StrPath, _ClosedOnExit
from ._options import LoadOptions

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack


class Manager(_ClosedOnExit):
    """Models by id (and aliases), loaded on demand within a memory budget::

        with uml.Manager(memory_budget_bytes=4 << 30, keep_alive=300, folders=["models"]) as mgr:
            mgr.scan(n_ctx=4096)                     # each .gguf and Hugging Face folder, by name
            with mgr.get("SmolLM2-135M-Instruct.Q4_1") as model:
                print(model.generate("Hi", max_tokens=16))

    :meth:`get` loads a model when needed; a load that would exceed the budget first unloads
    the least recently used idle models. A model is *in use* while a :class:`uml.Model` handle
    from :meth:`get` is open (or a call runs on it) and is never unloaded for another (the load
    then raises :class:`uml.OutOfMemoryError`), so close handles when done. With ``folders``
    set, only models inside them load (``..`` and symlinks are followed first). Loads run with
    the GIL released. Thread-safe.

    ``memory_budget_bytes``: the most the loaded models' memory estimates may add up to (None:
    80% of the RAM available now). ``keep_alive``: seconds a model may stay idle before it is
    unloaded (None: until it is evicted). ``folders``: where models load from and
    :meth:`scan` looks (one path or several; empty: any path).
    """

    def __init__(
        self,
        *,
        memory_budget_bytes: Optional[int] = None,
        keep_alive: Optional[float] = None,
        folders: Union[StrPath, Sequence[StrPath]] = (),
    ) -> None:
        paths = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
        self._native = _uml.Manager(
            memory_budget_bytes, None if keep_alive is None else float(keep_alive), [os.fspath(p) for p in paths]
        )

    def register(self, id: str, path: StrPath, **options: Unpack[LoadOptions]) -> None:
        """Register the model at ``path`` (a GGUF file or a Hugging Face folder) as ``id``, to
        load with ``options`` (the keywords of :class:`uml.Loader`) when first used. Reads its
        headers only. :class:`uml.InvalidArgumentError` for an id already taken or a path
        outside the folders, :class:`uml.ModelNotFoundError` for a missing path."""
        self._native.register(id, path, dict(options))

    def register_remote(
        self, id: str, url: str, model: str, api_key: Optional[str] = None, **options: Unpack[LoadOptions]
    ) -> None:
        """Register ``model`` served by the OpenAI-compatible endpoint at ``url`` as ``id`` (see
        :func:`uml.remote`); it takes nothing from the memory budget. The endpoint is first
        asked by :meth:`get`, which raises :class:`uml.ModelNotFoundError` or
        :class:`uml.BackendError` as :func:`uml.remote` does. :class:`uml.InvalidArgumentError`
        for an id already taken or a URL that is not http(s)."""
        self._native.register_remote(id, url, model, api_key, dict(options))

    def set_fallback(self, name: str, url: str, model: str, api_key: Optional[str] = None) -> None:
        """Give the model ``name`` a remote fallback: when loading its local model fails (a
        missing or broken file, too little memory), :meth:`get` returns ``model`` at ``url``
        instead (see :func:`uml.remote`), with the local failure in
        :attr:`uml.Model.skipped_backends`. :class:`uml.ModelNotFoundError` for an unknown
        name."""
        self._native.set_fallback(name, url, model, api_key)

    def alias(self, alias: str, id: str) -> None:
        """Make ``alias`` another name for the model ``id``."""
        self._native.alias(alias, id)

    def scan(self, **options: Unpack[LoadOptions]) -> List[str]:
        """Register every model in the folders not registered yet (each ``.gguf`` file as its
        name without ``.gguf``, each Hugging Face folder as its name), to load with ``options``.
        Returns the new ids, sorted."""
        return self._native.scan(dict(options))

    def pull(
        self,
        spec: str,
        *,
        revision: Optional[str] = None,
        files: Optional[Sequence[str]] = None,
        endpoint: Optional[str] = None,
        token: Optional[str] = None,
        progress: Optional[Callable[[str, int, int], Optional[bool]]] = None,
        **options: Unpack[LoadOptions],
    ) -> Dict[str, Any]:
        """Download a model from the Hugging Face Hub into the first of the manager's folders
        and register it, to load with ``options``; returns ``{"id", "repo", "commit", "path",
        "files", "downloaded_bytes", "reused_bytes"}``::

            info = mgr.pull("bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M")
            with mgr.get(info["id"]) as model: ...

        ``spec`` is ``owner/name`` or ``owner/name:QUANT`` (a GGUF repo's file by quantization,
        ``Q4_K_M`` when it holds several; a repo without GGUF files gives the Hugging Face folder
        files uml reads). It is registered as :meth:`scan` names it. Each file is resumed from a
        ``.part`` an earlier pull left, and kept only when its hash matches what the hub lists;
        a model already there is checked, not fetched again. ``revision``: branch, tag or commit
        (default "main"); ``files``: exact repo paths instead; ``endpoint`` and ``token``
        override ``HF_ENDPOINT`` and ``HF_TOKEN``. ``progress(file, bytes, total)`` is called
        about every MiB; returning False cancels (:class:`uml.CancelledError`), as does Ctrl-C.
        Blocks with the GIL released. :class:`uml.InvalidArgumentError` for a bad spec or a
        missing or refused token (it names ``HF_TOKEN``), :class:`uml.ModelNotFoundError` for
        an unknown repo, revision or tag, :class:`uml.InvalidModelError` for a download that
        does not match its hash, :class:`uml.IoError` when the hub cannot be reached."""
        pull_options: Dict[str, Any] = {"revision": revision, "endpoint": endpoint, "token": token}
        if files is not None:
            pull_options["files"] = list(files)
        return self._native.pull(spec, pull_options, dict(options), progress)

    def get(self, name: str) -> Model:
        """The model ``name`` (an id or an alias) as a :class:`uml.Model`, loaded first if
        needed (blocking; the GIL is released). Closing it (``with``, :meth:`uml.Model.close`)
        lets go of this handle only: the manager keeps the model loaded, now idle, until it is
        unloaded or evicted. :class:`uml.ModelNotFoundError` for an unknown name,
        :class:`uml.OutOfMemoryError` when it does not fit beside the models in use."""
        return Model(self._native.get(name))

    def swap(self, name: str, path: StrPath, **options: Unpack[LoadOptions]) -> None:
        """Hot-swap: load the file at ``path`` under the existing ``name``. Once loaded, new
        :meth:`get` calls return it; handles to the old model keep working until closed. If the
        load fails, the old model stays."""
        self._native.swap(name, path, dict(options))

    def unload(self, name: str) -> int:
        """Unload ``name`` (its memory is freed once no handle holds it); it loads again on the
        next :meth:`get`. Returns the bytes the budget counted for it, 0 if it was not loaded."""
        return self._native.unload(name)

    def remove(self, name: str) -> int:
        """Unregister ``name`` and its aliases, unloading it; returns the bytes as :meth:`unload`."""
        return self._native.remove(name)

    def list(self) -> List[Dict[str, Any]]:
        """Every registered model, by id: ``id``, ``aliases``, ``path``, ``state``
        ("unloaded", "loading", "idle" or "in_use"), ``backend`` (None while unloaded),
        ``memory_bytes`` (what the budget counts while loaded), ``idle_ms`` (since it was last
        handed out; None: never) and ``activity`` (``{"running", "queued"}``)."""
        models: List[Dict[str, Any]] = self._native.list()
        return models

    @property
    def budget_bytes(self) -> int:
        """The memory budget in bytes."""
        return self._native.budget_bytes

    @property
    def used_bytes(self) -> int:
        """What the loaded models' memory estimates add up to (what the budget counts)."""
        return self._native.used_bytes

    @property
    def keep_alive(self) -> Optional[float]:
        """Seconds a model may stay idle before it is unloaded (None: until evicted)."""
        return self._native.keep_alive

    def close(self) -> None:
        """Let go of every model: those no open :class:`uml.Model` holds are freed now, the
        others when their handles close. Idempotent; any later call raises
        :class:`uml.InvalidArgumentError`."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return self._native.closed

    def __repr__(self) -> str:
        if self.closed:
            return "<uml.Manager closed>"
        return f"<uml.Manager {len(self.list())} models, {self.used_bytes} of {self.budget_bytes} bytes used>"
