"""Where llama.cpp's own tools are: ../shared/tools/llama-reference builds them once (cached) and
prints their folder; an explicit path wins."""
import os
import subprocess
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tool(name: str, explicit: Optional[str] = None) -> str:
    if explicit:
        return explicit
    builder = os.path.join(ROOT, "..", "shared", "tools", "llama-reference")
    out = subprocess.run([builder], check=True, capture_output=True, text=True).stdout
    return os.path.join(out.strip().splitlines()[-1], name)
