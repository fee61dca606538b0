"""Sources added and removed over HTTP on a running service: frames, metrics, states, masking."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import av
import httpx
import pytest
from helpers.mjpeg_server import MjpegServer
from helpers.service_clients import metric, settle

pytestmark = [pytest.mark.e2e, pytest.mark.tf]


def _source(http: httpx.Client, key: str) -> dict:
    return http.get(f"sources/{key}").json()


def test_a_source_added_over_http_runs_stalls_recovers_and_is_finalized(service):
    with (
        MjpegServer(fps=15, size=(320, 240), user="admin", password="hunter2") as cam,
        httpx.Client(base_url=f"{service.url}api/", timeout=60) as http,
    ):
        made = http.post("sources", json={"uri": cam.url_with_credentials})
        assert made.status_code == 201, made.text
        src = made.json()
        key = src["id"]
        assert src["uri"].startswith("http://admin:***@127.0.0.1")
        assert settle(lambda: _source(http, key)["frames"]["processed"] >= 30)
        assert _source(http, key)["state"] == "running"
        metrics = http.get(f"{service.url}metrics").text
        assert metric(metrics, "detector_frames_processed_total", id=key) >= 30
        assert metric(metrics, "detector_source_state", id=key, state="running") == 1.0
        assert (metric(metrics, "detector_inference_seconds_count", id=key) or 0) > 0

        # a viewer that stops reading: the source stays running and keeps processing
        viewer = socket.create_connection(("127.0.0.1", service.port))
        viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        viewer.sendall(f"GET /stream/{key}.mjpg HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        done = _source(http, key)["frames"]["processed"]
        assert settle(lambda: _source(http, key)["frames"]["processed"] >= done + 45)
        assert _source(http, key)["state"] == "running"
        viewer.close()

        # the camera goes quiet: stalled (not blocked); back: running
        cam.stall()
        assert settle(lambda: _source(http, key)["state"] == "stalled", 20)
        ready = http.get(f"{service.url}readyz").json()
        assert ready["ready"] is True and key in ready["unwell"]
        cam.resume()
        assert settle(lambda: _source(http, key)["state"] == "running", 20)

        # no answer anywhere shows the password
        paths = ["sources", f"sources/{key}"]
        paths += [f"{service.url}{p}" for p in ("readyz", "api/status", "metrics")]
        for path in paths:
            assert "hunter2" not in http.get(path).text

        gone = http.delete(f"sources/{key}")
        assert gone.status_code == 200
        final = gone.json()
        assert final["state"] == "ended" and final["status"] == "interrupted"
    video = final["run_dir"] + "/" + final["outputs"]["video"]["path"]
    with av.open(video) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == final["outputs"]["video"]["frames"] >= 30
    record = json.loads(Path(final["run_dir"], "run.json").read_text())
    assert record["status"] == "interrupted" and "hunter2" not in json.dumps(record)


def test_bad_sources_are_refused_clearly(service):
    with httpx.Client(base_url=f"{service.url}api/", timeout=60) as http:
        missing = http.post("sources", json={"uri": "/nowhere/clip.mp4"})
        assert missing.status_code == 422 and "clip.mp4" in missing.json()["error"]
        bad = http.post("sources", json={"uri": "x.mp4", "options": {"output.serve": "1"}})
        assert bad.status_code == 400 and "cannot be set per source" in bad.json()["error"]
        typo = http.post("sources", json={"uri": "x.mp4", "options": {"detect.treshold": 1}})
        assert typo.status_code == 400 and "threshold" in typo.json()["hint"]
        assert http.post("sources", json={"url": "x"}).status_code == 422
        assert http.delete("sources/99").status_code == 404
