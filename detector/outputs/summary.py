"""The summary printed at the end of a run, read from its record (either engine, one source or
several)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from detector.outputs.record import masked


def print_summary(out: TextIO, record: dict[str, Any]) -> None:
    """A few lines saying how the run ended, how fast it went and what it wrote (masked)."""
    record = masked(record)
    if "sources" in record:
        lines = _many_lines(record)
    else:
        lines = _one_lines(record, Path(record.get("run_dir", ".")))
    if record.get("engine") == "ray" and "ray" in record:
        lines += _ray_lines(record["ray"])
    print("\n".join(lines), file=out, flush=True)


def _one_lines(record: dict[str, Any], run_dir: Path) -> list[str]:
    def ms(v: float | None) -> str:
        return f"{v:.1f} ms" if v is not None else "-"

    lines = [f"run {record['status']}: {record.get('source', {}).get('uri', '?')}"]
    stats = record.get("stats")
    if stats:
        lines += [
            f"  frames: {stats['frames_read']} read, {stats['frames_processed']} processed, "
            f"{stats['frames_dropped']} dropped, {stats['frames_skipped']} skipped",
            f"  inference: {stats['inferences']} runs, mean {ms(stats['inference_ms_mean'])}, "
            f"p50 {ms(stats['inference_ms_p50'])} on {record.get('model', {}).get('device', '?')}",
            f"  speed: {stats['fps']:.1f} FPS (warm-up excluded), "
            f"{stats['elapsed_s']:.1f} s elapsed",
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
    parts = _output_parts(record.get("outputs") or {})
    parts.append("run.json")
    lines.append(f"  outputs in {run_dir}/: {', '.join(parts)}")
    return lines


def _output_parts(outs: dict[str, Any]) -> list[str]:
    """Each output file with what it holds."""
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
    return parts


def _many_lines(record: dict[str, Any]) -> list[str]:
    """A run of several sources: a line per source, then what failed."""
    entries = record["sources"]
    ok = sum(1 for e in entries if e["status"] == "ok")
    lines = [f"run {record['status']}: {len(entries)} sources ({ok} ok) → {record['run_dir']}/"]
    for e in entries:
        if e["error"]:
            what = e["error"]
        elif e["frames"] is not None:
            what = f"{e['frames']} frames, {e['fps']:.1f} FPS → {e['run_dir']}/"
        else:
            what = "not started (the run was stopped)"
        lines.append(f"  {e['status']:<11} {e['source']}: {what}")
    if record.get("failed"):
        lines.append("  failed: " + ", ".join(record["failed"]))
    return lines


def _ray_lines(ray: dict[str, Any]) -> list[str]:
    """The Ray engine's cluster, start-up and per-actor throughput; live sources' workers."""
    if "live" in ray:
        return _live_lines(ray)
    first = ray.get("first_result_s")
    lines = [
        f"  ray: {ray.get('actors_seen', 0)} actors on {ray.get('nodes', '?')} "
        f"node(s) ({ray.get('address')}); start {ray.get('ray_start_s', 0.0):.1f} s, "
        + (f"first result after {first:.1f} s" if first is not None else "no result")
    ]
    for a in ray.get("per_actor", []):
        rate = a["items_per_busy_s"]
        lines.append(
            f"    actor {a['actor']}: {a['items']} items, "
            f"{rate if rate is not None else '-'} per busy second"
        )
    return lines


def _live_lines(ray: dict[str, Any]) -> list[str]:
    """Cameras and streams on Ray: a worker each, its segments, restarts and nodes."""
    lines = [
        f"  ray: {len(ray['live'])} camera worker(s) on {ray.get('nodes', '?')} node(s) "
        f"({ray.get('address')}); start {ray.get('ray_start_s', 0.0):.1f} s"
    ]
    for w in ray["live"]:
        nodes = sorted({str(n)[:8] for n in w.get("nodes", []) if n})
        lines.append(
            f"    {w['source']}: {w['segments']} segment(s), {w['restarts']} restart(s), "
            f"node(s) {', '.join(nodes) or '-'}"
        )
    return lines
