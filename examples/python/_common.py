"""Shared by the examples: the model path from argv[1], else the SmolLM2 test model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def model_path() -> str:
    if len(sys.argv) > 1:
        return sys.argv[1]
    folder = Path(os.environ.get("UML_MODELS", REPO / "models"))
    return str(folder / "SmolLM2-135M-Instruct.Q4_1.gguf")
