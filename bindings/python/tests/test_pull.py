"""Manager.pull against tests/hub/fake_hub.py (a local server in the Hugging Face Hub's URL
layout; nothing reaches the internet): the real SmolLM2 GGUF picked by tag with a token, through a
dropped connection, reported by progress, registered and generating; cancelled by the progress
callback and by an exception in it; the errors naming their fix."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import List, Tuple

import pytest

import uml
from conftest import SMOLLM2, fake_hub, model_path


def hub_root(tmp_path: Path) -> Path:
    root = tmp_path / "hub"
    repo = root / "test" / "SmolLM2-GGUF"
    repo.mkdir(parents=True)
    (repo / SMOLLM2).symlink_to(model_path().resolve())
    (repo / "README.md").write_text("# SmolLM2\n")
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pull_fetches_registers_and_the_model_generates(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    log = tmp_path / "requests.log"
    reports: List[Tuple[str, int, int]] = []
    with fake_hub(hub_root(tmp_path), "--token", "hf_secret", "--drop-after", "3000000", "--log", str(log)) as url:
        with uml.Manager(folders=[folder]) as mgr:
            info = mgr.pull(
                "test/SmolLM2-GGUF:Q4_1",
                endpoint=url,
                token="hf_secret",
                progress=lambda f, done, total: reports.append((f, done, total)),
                n_ctx=512,
            )
            assert info["id"] == SMOLLM2[: -len(".gguf")]
            assert Path(info["path"]) == folder / SMOLLM2
            assert sha256(folder / SMOLLM2) == sha256(model_path())
            size = (folder / SMOLLM2).stat().st_size
            assert info["downloaded_bytes"] == size and info["reused_bytes"] == 0
            assert reports[-1] == (SMOLLM2, size, size)
            assert all(a[1] <= b[1] for a, b in zip(reports, reports[1:]))
            # The connection dropped after 3,000,000 bytes and the pull resumed there.
            assert "range=bytes=3000000-" in log.read_text()
            assert [s["id"] for s in mgr.list()] == [info["id"]]
            with mgr.get(info["id"]) as model:
                assert model.generate("The capital of France is", max_tokens=4, temperature=0).text

            # Again: checked, not fetched.
            again = mgr.pull("test/SmolLM2-GGUF:Q4_1", endpoint=url, token="hf_secret")
            assert (again["id"], again["downloaded_bytes"]) == (info["id"], 0)


def test_pull_is_cancelled_by_its_progress_callback_and_resumes_after(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    with fake_hub(hub_root(tmp_path)) as url, uml.Manager(folders=[folder]) as mgr:
        with pytest.raises(uml.CancelledError):
            mgr.pull("test/SmolLM2-GGUF:Q4_1", endpoint=url, progress=lambda f, done, total: done < 8 << 20)
        part = folder / (SMOLLM2 + ".part")
        assert part.exists() and not (folder / SMOLLM2).exists()
        assert mgr.list() == []

        def fail(f: str, done: int, total: int) -> None:
            raise KeyError("from the callback")

        with pytest.raises(KeyError, match="from the callback"):
            mgr.pull("test/SmolLM2-GGUF:Q4_1", endpoint=url, progress=fail)

        kept = part.stat().st_size
        info = mgr.pull("test/SmolLM2-GGUF:Q4_1", endpoint=url)
        assert info["downloaded_bytes"] == (folder / SMOLLM2).stat().st_size - kept
        assert sha256(folder / SMOLLM2) == sha256(model_path())


def test_pull_errors_name_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    with fake_hub(hub_root(tmp_path), "--token", "hf_secret") as url, uml.Manager(folders=[folder]) as mgr:
        with pytest.raises(uml.InvalidArgumentError, match="HF_TOKEN"):
            mgr.pull("test/SmolLM2-GGUF:Q4_1", endpoint=url, token="hf_wrong")
        with pytest.raises(uml.ModelNotFoundError, match="HF_ENDPOINT"):
            mgr.pull("test/Nope", endpoint=url, token="hf_secret")
        with pytest.raises(uml.ModelNotFoundError, match="no GGUF file tagged Q2_K"):
            mgr.pull("test/SmolLM2-GGUF:Q2_K", endpoint=url, token="hf_secret")
        with pytest.raises(uml.InvalidArgumentError, match="owner/name"):
            mgr.pull("SmolLM2", endpoint=url)
        with pytest.raises(uml.IoError, match="cannot reach the hub"):
            mgr.pull("test/SmolLM2-GGUF:Q4_1", endpoint="http://127.0.0.1:9")
    with uml.Manager() as bare, pytest.raises(uml.InvalidArgumentError, match="no model folder"):
        bare.pull("test/SmolLM2-GGUF:Q4_1", endpoint=url)
