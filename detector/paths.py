"""Where the app's files are (a checkout's folders or the user cache); how a path is shown.

The one place that decides. A *checkout* is the package sitting in a source tree (beside
``pyproject.toml`` and ``main.py``, also an editable install): the default model is in
``models/``, the sample media in ``samples/``, downloads in ``.cache/``, run folders in
``runs/``. An *installed* package (a wheel in site-packages) keeps the model, the samples and
the downloads in a user cache, ``$DETECTOR_HOME`` or ``$XDG_CACHE_HOME/detector`` or
``~/.cache/detector``, and writes run folders into ``runs/`` of the current directory.
``DETECTOR_HOME``, when set, is used by a checkout too. The environment is read at import.

Config values name these folders with ``${models}``, ``${samples}`` and ``${runs}`` (see
:func:`homes`), so the packaged default config (``detector/default.yml``) works in both.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The environment variable naming the folder for the model, samples and downloads.
HOME_ENV = "DETECTOR_HOME"

PACKAGE_DIR = Path(__file__).resolve().parent
#: The folder holding the package: the checkout's root, or site-packages when installed.
PROJECT_ROOT = PACKAGE_DIR.parent
#: True when the package runs from a source tree (not from an installed wheel).
IS_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "main.py").is_file()

#: The default config, shipped inside the package: every key, its default and a comment.
DEFAULT_CONFIG = PACKAGE_DIR / "default.yml"
#: Ready-made configs (webcam, video, images): a checkout's ``configs/``.
CONFIGS_DIR = PROJECT_ROOT / "configs"


def user_home() -> Path:
    """The user cache folder: ``$DETECTOR_HOME``, ``$XDG_CACHE_HOME/detector`` or
    ``~/.cache/detector`` (relative values resolve against the current directory)."""
    explicit = os.environ.get(HOME_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return (base / "detector").resolve()


_IN_TREE = IS_CHECKOUT and not os.environ.get(HOME_ENV, "").strip()
_HOME = PROJECT_ROOT if _IN_TREE else user_home()

#: The default model's folder lives in here (``ssd_mobilenet_v2_coco/``).
MODELS_DIR = _HOME / "models"
#: The sample video and photos (``vtest.avi``, ``photos/``).
SAMPLES_DIR = _HOME / "samples"
#: Downloads and other caches (``fetch/``, ``bench/``).
CACHE_DIR = _HOME / ".cache" if _IN_TREE else _HOME
#: The command that fetches the default model and samples, as users type it here.
FETCH_COMMAND = "python main.py fetch" if IS_CHECKOUT else "detector fetch"


def runs_dir() -> Path:
    """Where run folders go by default: a checkout's ``runs/``, else ``./runs``."""
    return PROJECT_ROOT / "runs" if IS_CHECKOUT else Path.cwd() / "runs"


def homes() -> dict[str, Path]:
    """The folders a config value may start with, as ``${name}``: ``models``, ``samples``,
    ``runs``."""
    return {"models": MODELS_DIR, "samples": SAMPLES_DIR, "runs": runs_dir()}


def display_path(path: str | Path) -> str:
    """``path`` as printable UTF-8: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
