"""Where the project's own folders are (the checkout with configs/, models/ and samples/), and
how any path is shown to the user."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = PROJECT_ROOT / "configs"
MODELS_DIR = PROJECT_ROOT / "models"
SAMPLES_DIR = PROJECT_ROOT / "samples"
CACHE_DIR = PROJECT_ROOT / ".cache"


def display_path(path: str | Path) -> str:
    """``path`` as printable UTF-8: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
