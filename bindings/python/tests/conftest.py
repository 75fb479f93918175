"""Shared fixtures: the real SmolLM2 model (fetched once by scripts/fetch-models) and its
greedy reference completions recorded from llama.cpp's own llama-simple."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

import uml

REPO = Path(__file__).resolve().parents[3]
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_path(name: str = SMOLLM2) -> Path:
    """A real model from $UML_MODELS or <repo>/models; fails (not skips) when it is missing."""
    folders = [Path(os.environ["UML_MODELS"])] if os.environ.get("UML_MODELS") else []
    folders.append(REPO / "models")
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    pytest.fail(f"{name} not found in {', '.join(map(str, folders))}; fetch it with: scripts/fetch-models")


def fixture(name: str) -> Dict[str, Any]:
    path = REPO / "tests" / "fixtures" / name
    if not path.is_file():
        pytest.fail(f"missing reference fixture {path} (see its recording script in tests/fixtures)")
    data: Dict[str, Any] = json.loads(path.read_text())
    if "tokens" in data:
        check_greedy_fixture(name, data)
    return data


def check_greedy_fixture(name: str, data: Dict[str, Any]) -> None:
    """Greedy fixtures hold llama.cpp's output on several CPU kernel paths with each position's
    margin over the runner-up; only the prefix before the first disagreement or near-tie
    (margin < margin_threshold) holds on every x86-64 CPU. Tests compare `trusted_completion`
    (`trusted_tokens` tokens): this re-derives both from the tokens, the same rule as
    uml_core::testing::GreedyFixture, so a hand-edited or too-weak fixture fails."""
    text, trusted = "", 0
    for token in data["tokens"]:
        if not token["same_on_all_paths"] or min(token["margins"].values()) < data["margin_threshold"]:
            break
        text += token["text"]
        trusted += 1
    if trusted < data["min_trusted_tokens"]:
        pytest.fail(f"{name}: only {trusted} tokens hold on every CPU path, fewer than min_trusted_tokens")
    if (trusted, text) != (data["trusted_tokens"], data["trusted_completion"]):
        pytest.fail(f"{name}: trusted_tokens / trusted_completion disagree with the tokens; record it again")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return model_path()


@pytest.fixture(scope="session")
def smollm2(smollm2_path: Path) -> Iterator[uml.Model]:
    """One SmolLM2 load shared by the tests that only read from it. One thread: on a machine
    whose cores are busy (parallel builds, or the tests' own spinning threads) a 2-thread
    OpenMP decode stalls at its barriers and the suite took minutes instead of seconds; the
    greedy output does not depend on the thread count."""
    with uml.Loader(smollm2_path, n_ctx=1024, n_threads=1) as m:
        yield m


@contextlib.contextmanager
def uml_serve(*args: str) -> Iterator[str]:
    """A release ``uml serve`` (built by cargo if missing) on a free loopback port with
    ``args`` added; yields its API's base URL (``http://127.0.0.1:PORT/v1``) and stops it."""
    exe = REPO / "target" / "release" / "uml"
    if not exe.exists():
        subprocess.run(["cargo", "build", "--release", "-p", "uml-cli"], cwd=REPO, check=True)
    command = [str(exe), "serve", "--port", "0", "--ctx", "1024", "--threads", "2", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    prefix = "uml serve: listening on "
    assert first.startswith(prefix), first
    out = proc.stdout
    # Read the rest of its output so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in out], daemon=True).start()
    try:
        yield first[len(prefix) :].strip() + "/v1"
    finally:
        proc.terminate()
        proc.wait(30)


@contextlib.contextmanager
def fake_hub(root: Path, *args: str) -> Iterator[str]:
    """``tests/hub/fake_hub.py`` serving ``root/<owner>/<name>/`` in the Hugging Face Hub's URL
    layout on a free loopback port, with ``args`` (``--token``, ``--drop-after``, ...); yields its
    base URL and stops it. No test reaches the real hub."""
    script = REPO / "tests" / "hub" / "fake_hub.py"
    proc = subprocess.Popen([sys.executable, str(script), str(root), *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), url
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
