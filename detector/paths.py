"""Where the project's own folders are: the checkout with configs/, models/ and samples/."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = PROJECT_ROOT / "configs"
MODELS_DIR = PROJECT_ROOT / "models"
SAMPLES_DIR = PROJECT_ROOT / "samples"
CACHE_DIR = PROJECT_ROOT / ".cache"
