"""Run folders that never overwrite an earlier run, their default names, and JSON summaries."""

from __future__ import annotations

import csv
import errno
import json
import os
from collections.abc import Iterable, Sequence
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
        str(base / name).encode("utf-8")
    except UnicodeEncodeError:
        # OpenCV given such a path (a str with surrogate escapes) crashes the process.
        shown = os.fsencode(base / name).decode("utf-8", "backslashreplace")
        raise SinkError(
            f"run folder '{shown}' is not a valid UTF-8 path: OpenCV cannot write there",
            hint="set output.dir (--output) and output.name (--name) to UTF-8 names",
        ) from None
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


def write_json(path: str | Path, data: Any, *, reserve_bytes: int = 0) -> Path:
    """Write ``data`` as indented JSON atomically (a temp file renamed over ``path``).

    Args:
        path: The file to (re)write.
        data: JSON-ready data (other objects are written as ``str``).
        reserve_bytes: Pad the file with this many trailing spaces (still valid JSON), so a
            later, longer version can overwrite it in place when the disk is full.

    When the temp file cannot be written (a full disk) and the new text fits in the file
    already at ``path``, that file is overwritten in place: its blocks are already there.

    Raises:
        SinkError: The file cannot be written.
    """
    path = Path(path)
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    raw = text.encode("utf-8", "backslashreplace") + b" " * reserve_bytes
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(raw)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if not _overwrite_in_place(path, raw):
            raise SinkError(
                f"cannot write '{path}': {exc.strerror or exc}",
                hint="free some disk space or set output.dir (--output) to another disk"
                if exc.errno == errno.ENOSPC
                else "check the folder is writable",
            ) from exc
    return path


def _overwrite_in_place(path: Path, raw: bytes) -> bool:
    """Write ``raw`` over ``path`` if it fits in the file's current size (no new blocks)."""
    try:
        with open(path, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            if len(raw) > size:
                return False
            f.write(raw + b" " * (size - len(raw)))
            f.flush()
            os.fsync(f.fileno())
        return True
    except OSError:
        return False


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """Write a small CSV file (UTF-8; bytes that are not UTF-8 shown as ``\\xNN``).

    Raises:
        SinkError: The file cannot be written.
    """
    path = Path(path)
    try:
        with open(path, "w", encoding="utf-8", errors="backslashreplace", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        raise SinkError(f"cannot write '{path}': {exc.strerror or exc}") from exc
    return path
