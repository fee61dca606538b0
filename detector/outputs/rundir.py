"""Run folders that never overwrite an earlier run, their default names, and JSON summaries."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from detector.errors import SinkError


def make_run_dir(base: str | Path, name: str) -> Path:
    """Create and return a new run folder ``base/name``, or ``name2``, ``name3``, … if taken.

    Each candidate is created with a plain ``mkdir`` (no ``exist_ok``), so two runs started
    at once can never get the same folder and an earlier run is never written into.

    Raises:
        SinkError: ``name`` is not a plain folder name, or ``base`` cannot be created.
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise SinkError(
            f"run name {name!r} is not a plain folder name",
            hint="use letters, digits, '-', '_' or '.'",
        )
    base = Path(base)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SinkError(
            f"cannot create runs folder '{base}': {exc}",
            hint="set output.dir (or --output) to a writable folder",
        ) from exc
    n = 1
    while True:
        candidate = base / (name if n == 1 else f"{name}{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
        except OSError as exc:
            raise SinkError(f"cannot create run folder '{candidate}': {exc}") from exc


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically (a temp file renamed over ``path``).

    Raises:
        SinkError: The file cannot be written.
    """
    path = Path(path)
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SinkError(f"cannot write '{path}': {exc}") from exc
    return path
