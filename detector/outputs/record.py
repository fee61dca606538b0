"""The run record (``run.json``): one schema for both engines, masked always, written from here.

A run folder's record is written when the run starts (``status: running``, padded so its
final version fits in place on a full disk) and once more when it ends. Every write goes
through :func:`masked`, so a password in a stream URL, an argument or a config value never
reaches the file. A run of several sources (or a folder of videos, on either engine) keeps a
record per sub-folder and one on top listing each source with :data:`SOURCE_KEYS`.
"""

from __future__ import annotations

import logging
import platform
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector import __version__
from detector.errors import DetectorError, SinkError, SourceError, redact
from detector.outputs.rundir import write_csv, write_json

log = logging.getLogger(__name__)

RUN_JSON = "run.json"
SKIPPED_CSV = "skipped.csv"
#: The first write is padded by this much, so the final version can replace it in place
#: when the disk is full (no new blocks needed).
RESERVE_BYTES = 16384
#: What every record starts with; a sub-folder's record copies them from the run's.
HEADER_KEYS = (
    "status",
    "started",
    "engine",
    "argv",
    "config_file",
    "config",
    "labels",
    "class_filter",
    "model",
    "versions",
)
#: Each source of a run of several, in the top record's ``sources`` (both engines).
SOURCE_KEYS = ("source", "status", "error", "run_dir", "frames", "fps", "outputs")


def masked(data: Any) -> Any:
    """``data`` with every ``scheme://user:password@`` in its strings masked (paths as text)."""
    if isinstance(data, dict):
        return {k: masked(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [masked(v) for v in data]
    if isinstance(data, Path):
        data = str(data)
    return redact(data) if isinstance(data, str) else data


def versions() -> dict[str, str]:
    """Versions of the libraries that shaped the run (TensorFlow if it was imported)."""
    found = {
        "detector": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        found["tensorflow"] = getattr(tf, "__version__", "?")
    return found


def now_iso() -> str:
    """The wall-clock time now, UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def failure(exc: BaseException) -> tuple[str, str | None]:
    """``(status, error)`` for how a run ended with ``exc``."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", None
    if isinstance(exc, DetectorError):
        return "error", str(exc)
    return "error", f"{type(exc).__name__}: {exc}"


def header(
    *,
    engine: str,
    config: dict[str, Any],
    config_file: Path | None,
    labels_path: Path | None,
    label_count: int,
    class_ids: Iterable[int] | None,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The fields every run's record starts with (``model`` and ``versions`` come with the
    model)."""
    return {
        "status": "running",
        "started": now_iso(),
        "engine": engine,
        "argv": list(sys.argv[1:] if argv is None else argv),
        "config_file": str(config_file) if config_file else None,
        "config": config,
        "labels": {"path": str(labels_path) if labels_path else None, "classes": label_count},
        "class_filter": sorted(class_ids) if class_ids else None,
    }


class RunRecord:
    """One run folder's ``run.json``: the record's data, and the only writer of the file.

    Args:
        run_dir: The run (or source) folder.
        data: The record so far (usually :func:`header`'s fields); kept and completed.
    """

    def __init__(self, run_dir: Path, data: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.data = data
        self.data["run_dir"] = str(self.run_dir)

    def child(self, run_dir: Path, **fields: Any) -> RunRecord:
        """The record of a source's sub-folder: this run's header, then ``fields``."""
        data = {k: self.data[k] for k in HEADER_KEYS if k in self.data}
        data.update(status="running", started=now_iso(), **fields)
        return RunRecord(run_dir, data)

    def update(self, **fields: Any) -> None:
        self.data.update(fields)

    def start(self) -> None:
        """Write the record as it is (``running``), so a killed run still has one."""
        write_json(self.run_dir / RUN_JSON, masked(self.data), reserve_bytes=RESERVE_BYTES)

    def fail(self, exc: BaseException) -> None:
        """Record how ``exc`` ended the run (a status already set stays for an interrupt)."""
        status, error = failure(exc)
        self.data["status"] = status
        if error is not None:
            self.data["error"] = error

    def finish(self, status: str | None = None) -> SinkError | None:
        """Write the final record (``status`` if given); on failure log it and return the
        error (never raised over the run's own outcome, which the summary still reports)."""
        if status is not None:
            self.data["status"] = status
        self.data["finished"] = now_iso()
        try:
            write_json(self.run_dir / RUN_JSON, masked(self.data))
            return None
        except SinkError as exc:
            log.error("%s", exc)
            return exc

    def not_started(self, uri: str, kind: str, why: BaseException | str) -> SinkError | None:
        """Write the record of a source that failed before its run began."""
        status, error = failure(why) if isinstance(why, BaseException) else ("error", why)
        self.update(source={"uri": uri, "kind": kind}, stats=None, status=status)
        if error is not None:
            self.update(error=error)
        return self.finish()

    def skipped(self, skips: Sequence[tuple[str, str]]) -> None:
        """List files a source skipped (``path, reason``) in ``skipped.csv`` and the record."""
        if not skips:
            return
        try:
            write_csv(self.run_dir / SKIPPED_CSV, ("path", "reason"), skips)
            outputs = self.data.setdefault("outputs", {})
            outputs["skipped"] = {"path": SKIPPED_CSV, "count": len(skips)}
        except SinkError as exc:
            log.error("%s", exc)


def source_entry(
    name: str, status: str, error: str | None, sub: RunRecord | None, run_dir: Path
) -> dict[str, Any]:
    """One source of a run of several, for the top record's ``sources`` (:data:`SOURCE_KEYS`)."""
    data = sub.data if sub is not None else {}
    stats = data.get("stats") or None
    return {
        "source": name,
        "status": status,
        "error": error,
        "run_dir": str(sub.run_dir.relative_to(run_dir)) if sub is not None else None,
        "frames": stats["frames_processed"] if stats else None,
        "fps": round(stats["fps"], 2) if stats else None,
        "outputs": data.get("outputs"),
    }


def list_sources(
    top: RunRecord, entries: list[dict[str, Any]], interrupted: bool
) -> SourceError | None:
    """The top record of a run of several sources: each one's entry (:func:`source_entry`),
    which failed, and the run's status (``interrupted``, else ``failed`` if any failed, else
    ``ok``). Returns the error the run ends with when any failed (exit 1), else None."""
    statuses = [e["status"] for e in entries]
    failed = [e["source"] for e in entries if e["status"] == "failed"]
    status = "interrupted" if interrupted or "interrupted" in statuses else "ok"
    top.update(
        sources=entries, failed=failed, status="failed" if failed and status == "ok" else status
    )
    if not failed:
        return None
    names = ", ".join(f"'{name}'" for name in failed)
    return SourceError(
        f"{len(failed)} of {len(entries)} sources failed: {names}",
        hint="the others completed; each failure's reason is in the summary above and "
        f"in its folder's {RUN_JSON}",
    )
