"""A live source's record on Ray: its segments (one per worker process) joined in one run.json.

Each segment folder (``part-001``, ...) holds the local engine's own outputs and record,
written by the worker. A segment whose worker died keeps the files written before the death
(JSON lines up to the last whole line, the fragmented MP4 up to its last fragment); the
driver marks its ``run.json`` ``error`` with the reason and counts its whole lines. The
source's own ``run.json`` lists every segment (where it ran, how it ended, its outputs),
every restart with its reason, and the numbers summed over the segments.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from detector.errors import SinkError
from detector.outputs.record import RUN_JSON, RunRecord
from detector.pipeline.many import sum_stats
from detector.types import RunStats

log = logging.getLogger(__name__)


def whole_lines(path: Path) -> int:
    """JSON lines in ``path`` that parse (a line cut by a killed writer does not count)."""
    count = 0
    try:
        with path.open("rb") as f:
            for raw in f:
                try:
                    json.loads(raw)
                    count += 1
                except ValueError:
                    continue
    except OSError:
        return 0
    return count


def waited_s(worker: dict[str, Any] | None, submitted: float) -> float | None:
    """Seconds from the driver asking for a segment to its worker starting it (a new worker:
    Ray placing it, the process starting, the model loading)."""
    started = (worker or {}).get("started")
    return round(float(started) - submitted, 3) if started and submitted else None


def segment_entry(
    part: int, folder: Path, data: dict[str, Any], submitted: float = 0.0
) -> dict[str, Any]:
    """A segment as the source's record lists it, from the segment's own record."""
    stats = data.get("stats") or {}
    return {
        "part": part,
        "run_dir": folder.name,
        "status": data.get("status"),
        "error": data.get("error"),
        "frames": stats.get("frames_processed"),
        "start_wait_s": waited_s(data.get("worker"), submitted),
        "worker": data.get("worker"),
        "outputs": data.get("outputs"),
        "stats": stats or None,
        "source": data.get("source"),
    }


def lost_segment(
    part: int, folder: Path, reason: str, last: dict[str, Any], submitted: float = 0.0
) -> dict[str, Any]:
    """The entry of a segment whose worker died; its ``run.json`` marked ``error``.

    ``last`` is the worker's last status report (its place, frames) when one came."""
    data: dict[str, Any] = {}
    try:
        data = json.loads((folder / RUN_JSON).read_text())
    except (OSError, ValueError):
        log.warning("segment %s has no readable %s", folder, RUN_JSON)
    lines = whole_lines(folder / "detections.jsonl")
    data.update(status="error", error=f"the worker was lost: {reason}")
    if folder.is_dir():
        record = RunRecord(folder, data)
        record.finish()
    worker = data.get("worker") or {k: last.get(k) for k in ("pid", "node_id", "node_ip")}
    frames = lines if (folder / "detections.jsonl").is_file() else last.get("frames_output")
    return {
        "part": part,
        "run_dir": folder.name,
        "status": "lost",
        "error": reason,
        "frames": frames,
        "start_wait_s": waited_s(data.get("worker"), submitted),
        "worker": worker,
        "outputs": {"jsonl": {"path": "detections.jsonl", "lines": lines}} if lines else None,
        "stats": None,
    }


def joined_outputs(segments: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Every segment's outputs by kind, paths relative to the source's folder."""
    joined: dict[str, list[dict[str, Any]]] = {}
    for seg in segments:
        for kind, out in (seg.get("outputs") or {}).items():
            if not isinstance(out, dict) or kind == "web":  # the web feed is the driver's page
                continue
            entry = dict(out)
            if entry.get("path"):
                entry["path"] = f"{seg['run_dir']}/{entry['path']}"
            joined.setdefault(kind, []).append(entry)
    return joined


def segment_stats(segments: list[dict[str, Any]], interrupted: bool) -> RunStats | None:
    """The numbers of every segment summed (lost segments: their whole lines as frames)."""
    done: list[RunStats] = []
    for seg in segments:
        if seg.get("stats"):
            done.append(RunStats(**seg["stats"]))
        elif seg.get("frames"):
            n = int(seg["frames"])
            done.append(RunStats(n, n, 0, 0, 0, None, None, 0.0, 0.0, True))
    if not done:
        return None
    if len(done) == 1:
        return replace(done[0], interrupted=interrupted or done[0].interrupted)
    total = sum_stats(done, interrupted)  # segments follow one another: rates do not add
    elapsed = sum(s.elapsed_s for s in done)
    fps = total.frames_processed / elapsed if elapsed > 0 else 0.0
    return replace(total, elapsed_s=round(elapsed, 3), fps=round(fps, 3))


def finish_source(
    record: RunRecord,
    segments: list[dict[str, Any]],
    restarts: list[dict[str, Any]],
    status: str,
    error: str | None,
) -> SinkError | None:
    """Write the source's record: its segments, restarts, joined outputs and summed numbers."""
    stats = segment_stats(segments, status == "interrupted")
    first = next((s for s in segments if s.get("source")), None)
    if first is not None:
        record.update(source=first["source"])
    record.update(
        segments=[{k: v for k, v in s.items() if k not in ("stats", "source")} for s in segments],
        restarts=restarts,
        outputs=joined_outputs(segments),
        stats=stats.to_dict() if stats is not None else None,
    )
    if error is not None:
        record.update(error=error)
    return record.finish({"ok": "ok", "interrupted": "interrupted"}.get(status, "error"))
