"""A plain run with ``--serve`` serves what ``detector serve`` serves, on the run's own model:
DeepStack's route, /api/detect and sources added next to the run's own, in one app."""

from __future__ import annotations

import json
import signal

import av
import httpx
import pytest
from deepstack.core import DeepstackObject
from helpers.cli_run import RunningCli
from helpers.mjpeg_server import MjpegServer
from helpers.service_clients import metric, settle

pytestmark = [pytest.mark.e2e, pytest.mark.tf]


def test_a_run_with_serve_answers_detections_and_takes_sources(
    default_graph, photos_dir, sample_video, tmp_path
):
    with MjpegServer(fps=8, size=(320, 240)) as cam:
        run = RunningCli(
            "--source", cam.url, "--serve", "0", "--model", default_graph,
            "--output", tmp_path, "--name", "cam", "--progress", "off",
        )  # fmt: skip
        try:
            url = run.wait_for_line(r"web view: (\S+)").group(1)
            port = int(url.rstrip("/").rsplit(":", 1)[1])
            with httpx.Client(base_url=url, timeout=60) as http:
                run.wait_for(lambda: http.get("readyz").status_code == 200, 240, "the model")
                dog = (photos_dir / "dog.jpg").read_bytes()
                found = DeepstackObject("127.0.0.1", port, timeout=60).detect(dog)
                assert {p["label"] for p in found} >= {"dog", "bicycle", "car"}
                own = http.post("api/detect", content=dog).json()
                assert "dog" in {d["label"] for d in own["detections"]}
                paths = http.get("openapi.json").json()["paths"]
                assert {"/v1/vision/detection", "/api/detect", "/api/sources"} <= set(paths)

                options = {"run.max_frames": 30, "output.video": True}
                made = http.post("api/sources", json={"uri": str(sample_video), "options": options})
                assert made.status_code == 201, made.text
                key = made.json()["id"]
                assert key == "1"  # the run's camera is 0: one hub, one page
                assert settle(
                    lambda: http.get(f"api/sources/{key}").json()["state"] == "ended", 240
                )
                added = http.get(f"api/sources/{key}").json()
                listed = http.get("api/sources").json()["sources"]
                assert [(s["id"], s["added"]) for s in listed] == [("0", False), ("1", True)]
                assert listed[0]["state"] == "running"
                assert http.delete("api/sources/0").status_code == 409  # stops with the run
                text = http.get("metrics").text
                assert metric(text, "detector_frames_processed_total", id="1") == 30
                assert (metric(text, "detector_frames_processed_total", id="0") or 0) > 0
                page = http.get("api/status").json()
                assert [s["key"] for s in page["sources"]] == ["0", "1"]
            run.signal(signal.SIGINT)
            result = run.finish(120)
        finally:
            run.kill()
    assert result.code == 130, result.err[-3000:]
    assert added["status"] == "ok" and added["frames"]["processed"] == 30
    folder = tmp_path / "cam"
    assert json.loads((folder / "run.json").read_text())["status"] == "interrupted"
    sub = json.loads((folder / added["name"] / "run.json").read_text())
    assert sub["status"] == "ok" and sub["stats"]["frames_processed"] == 30
    with av.open(str(folder / added["name"] / sub["outputs"]["video"]["path"])) as video:
        assert sum(1 for _ in video.decode(video=0)) == 30
