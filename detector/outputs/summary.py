"""The run's record (``run.json``) helpers and the summary printed at the end of a run."""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from detector import __version__
from detector.types import RunStats


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


def print_summary(
    out: TextIO, record: dict[str, Any], stats: RunStats | None, run_dir: Path
) -> None:
    """A few lines saying how the run ended, how fast it went and what it wrote."""

    def ms(v: float | None) -> str:
        return f"{v:.1f} ms" if v is not None else "-"

    lines = [f"run {record['status']}: {record.get('source', {}).get('uri', '?')}"]
    if stats is not None:
        lines += [
            f"  frames: {stats.frames_read} read, {stats.frames_processed} processed, "
            f"{stats.frames_dropped} dropped, {stats.frames_skipped} skipped",
            f"  inference: {stats.inferences} runs, mean {ms(stats.inference_ms_mean)}, "
            f"p50 {ms(stats.inference_ms_p50)} on {record.get('model', {}).get('device', '?')}",
            f"  speed: {stats.fps:.1f} FPS (warm-up excluded), {stats.elapsed_s:.1f} s elapsed",
        ]
    source_notes = []
    if record.get("source_end"):
        source_notes.append(record["source_end"])
    health = record.get("source_health")
    if health and (health.get("outages") or health.get("state") not in ("connected", "closed")):
        source_notes.append(
            f"{health['reconnects']} reconnect(s), {health['stalls']} stall(s), "
            f"{health['offline_s']:.1f} s offline, {health['state']}"
        )
    if source_notes:
        lines.append(f"  source: {'; '.join(source_notes)}")
    unknown = record.get("labels", {}).get("unknown_class_ids")
    if unknown:
        listed = ", ".join(f"{cid} ({n}x)" for cid, n in unknown.items())
        lines.append(f"  labels: class ids not in the label map: {listed}")
    if record.get("error"):
        lines.append(f"  error: {str(record['error']).splitlines()[0]}")
    outs = record.get("outputs", {})
    parts = []
    if "video" in outs and outs["video"].get("path") is None:
        parts.append("no video (not written)")
    elif "video" in outs:
        v = outs["video"]
        parts.append(f"{v['path']} ({v['frames']} frames, {v['fps']:g} fps)")
    if "jsonl" in outs:
        parts.append(f"{outs['jsonl']['path']} ({outs['jsonl']['lines']} lines)")
    if "images" in outs:
        parts.append(f"{outs['images']['path']}/ ({outs['images']['count']} images)")
    if "coco" in outs:
        c = outs["coco"]
        parts.append(
            f"{c['path']} ({c['detections']} detections; image id = frame index + 1, "
            f"file names in {c['images_file']})"
        )
    for name in ("csv", "mot"):
        if name in outs:
            parts.append(f"{outs[name]['path']} ({outs[name]['rows']} rows)")
    if "skipped" in outs:
        parts.append(f"{outs['skipped']['path']} ({outs['skipped']['count']} skipped)")
    parts.append("run.json")
    lines.append(f"  outputs in {run_dir}/: {', '.join(parts)}")
    print("\n".join(lines), file=out, flush=True)
