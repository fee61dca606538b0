"""A live stream's video is timed by the capture times: a real MJPEG camera on 127.0.0.1 through
the real model, stopped with SIGINT; each frame of ``annotated.mp4`` sits at its JSON line's
capture time, so the video lasts as long as the recording whatever was dropped."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import av
import pytest
from helpers.cli_run import RunningCli
from helpers.mjpeg_server import MjpegServer

pytestmark = pytest.mark.e2e


def test_live_video_frames_sit_at_their_capture_times(tmp_path: Path, default_graph: Path) -> None:
    with MjpegServer(fps=25, size=(320, 240)) as cam:
        cli = RunningCli("--source", cam.url, "--output", str(tmp_path), "--name", "live")
        jsonl = tmp_path / "live" / "detections.jsonl"

        def lines() -> int:
            return len(jsonl.read_text().splitlines()) if jsonl.exists() else 0

        try:
            cli.wait_for(lambda: lines() >= 50, timeout_s=240, what="50 frames out")
        finally:
            cli.signal(signal.SIGINT)
            res = cli.finish()
    assert res.code == 130, res.text
    records = [json.loads(x) for x in jsonl.read_text().splitlines()]
    stamps = [r["timestamp_s"] - records[0]["timestamp_s"] for r in records]
    with av.open(str(tmp_path / "live" / "annotated.mp4")) as c:
        stream = c.streams.video[0]
        times = [float(f.time) for f in c.decode(stream)]
        assert stream.codec_context.name == "h264"
    assert len(times) == len(records)
    assert times == pytest.approx(stamps, abs=0.0015)  # millisecond stamps
    run = json.loads((tmp_path / "live" / "run.json").read_text())
    video = run["outputs"]["video"]
    assert video["timestamps"] == "capture time" and video["layout"] == "faststart"
    assert video["duration_s"] == pytest.approx(stamps[-1] + 1 / video["fps"], abs=0.01)
