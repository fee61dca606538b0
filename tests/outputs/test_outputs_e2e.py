"""End to end on the real model and the sample video: the default run's ``annotated.mp4`` is
H.264 and plays in headless Chromium with the right duration, the exports round-trip, run.json
counts every file, progress is logged off a terminal, and a SIGKILL leaves a playable video."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from helpers.browser import probe_video
from helpers.cli_run import RunningCli, run_cli
from pycocotools.coco import COCO

pytestmark = pytest.mark.e2e


def _h264(path: Path) -> tuple[str, int, float]:
    """(codec, frames decoded, container duration s)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        n = sum(1 for _ in c.decode(stream))
        return stream.codec_context.name, n, (c.duration or 0) / 1e6


def test_default_run_writes_h264_that_plays_and_exports_that_round_trip(
    tmp_path: Path, sample_video: Path, default_graph: Path, page: Any
) -> None:
    res = run_cli(
        "--output", str(tmp_path), "--name", "r", "--max-frames", "40",
        "--coco", "--csv", "--mot",
    )  # fmt: skip
    res.assert_ok()
    run_dir = tmp_path / "r"
    record = json.loads((run_dir / "run.json").read_text())
    outs = record["outputs"]
    # The video: H.264 at the source's 10 fps, index first, 4.0 s for 40 frames.
    assert _h264(run_dir / "annotated.mp4") == ("h264", 40, pytest.approx(4.0))
    assert outs["video"] | {"size": None} == {
        "path": "annotated.mp4", "frames": 40, "fps": 10.0, "codec": "h264", "size": None,
        "layout": "faststart", "duration_s": 4.0, "timestamps": "index / fps",
    }  # fmt: skip
    seen = probe_video(page, run_dir, "annotated.mp4")
    assert seen["error"] is None and seen["readyState"] >= 2, seen
    assert seen["duration"] == pytest.approx(4.0, abs=0.05)
    assert (seen["width"], seen["height"]) == (768, 576)
    # Exports: the JSON lines' detections, read back by their users' tools.
    lines = [json.loads(x) for x in (run_dir / "detections.jsonl").read_text().splitlines()]
    dets = [(ln["frame"], d) for ln in lines for d in ln["detections"]]
    assert len(lines) == 40 and len(dets) > 40  # people walk through every frame
    coco = COCO(str(run_dir / "coco_images.json")).loadRes(str(run_dir / "coco_results.json"))
    anns = [coco.anns[i] for i in sorted(coco.anns)]
    assert [(a["image_id"], a["category_id"], a["score"]) for a in anns] == [
        (f + 1, d["class_id"], d["score"]) for f, d in dets
    ]
    assert coco.loadImgs(1)[0]["file_name"] == "vtest_000000"
    rows = list(csv.DictReader((run_dir / "detections.csv").open(newline="")))
    assert [(int(r["frame"]), r["label"]) for r in rows] == [(f, d["label"]) for f, d in dets]
    mot = np.loadtxt(run_dir / "mot.txt", delimiter=",", ndmin=2)
    assert mot[:, 0].tolist() == [f + 1 for f, _ in dets]
    # run.json: every file with its count.
    assert outs["jsonl"] == {"path": "detections.jsonl", "lines": 40}
    assert outs["coco"]["detections"] == len(dets) and outs["coco"]["images"] == 40
    assert outs["csv"] == {"path": "detections.csv", "frames": 40, "rows": len(dets)}
    per_class = sorted(f"mot/{x.replace(' ', '_')}.txt" for x in {d["label"] for _, d in dets})
    assert outs["mot"] == {
        "path": "mot.txt", "frames": 40, "rows": len(dets), "kept": "confirmed, score >= 0.5",
        "rows_left_out": 0, "per_class": per_class,
    }  # fmt: skip
    assert outs["progress"] == {"mode": "log", "frames": 40, "total": 40}
    # Off a terminal: a progress line, no bar.
    assert "progress: 40/40 frames (100%)" in res.err and "|" not in res.err
    assert "coco_results.json" in res.out and "image id = frame index + 1" in res.out


def test_sigkill_mid_run_leaves_a_playable_h264_video(
    tmp_path: Path, sample_video: Path, default_graph: Path, page: Any
) -> None:
    cli = RunningCli("--output", str(tmp_path), "--name", "k", "--workers", "1")
    video = tmp_path / "k" / "annotated.mp4"

    def fragments() -> int:
        return video.read_bytes().count(b"moof") if video.exists() else 0

    try:
        cli.wait_for(lambda: fragments() >= 3, timeout_s=240, what="3 fragments (3 s of video)")
    finally:
        cli.kill()
        cli.finish()
    assert cli.proc.returncode == -signal.SIGKILL
    codec, frames, _ = _h264(video)
    assert codec == "h264" and frames >= 30  # every complete fragment decodes
    seen = probe_video(page, video.parent, video.name)
    assert seen["error"] is None and seen["readyState"] >= 2, seen
    assert seen["duration"] == pytest.approx(frames / 10, abs=0.15)
