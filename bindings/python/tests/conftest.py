"""Shared fixtures: the real SmolLM2 model (fetched once by scripts/fetch-models) and its
greedy reference completions recorded from llama.cpp's own llama-simple."""

from __future__ import annotations

import json
import os
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
        pytest.fail(f"missing reference fixture {path} (recorded from llama.cpp's llama-simple)")
    data: Dict[str, Any] = json.loads(path.read_text())
    return data


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
