"""A source's state tells a slow pipeline from a silent camera: ``blocked`` while the camera
delivers and a slow model is the slow side (the source is never restarted for it), ``stalled``
when the camera goes quiet; a viewer that stops reading changes neither."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest
from helpers.mjpeg_server import MjpegServer
from helpers.service_clients import metric, settle
from helpers.slow_model import build_slow_frozen

from detector.config import load_config
from detector.service import Service

pytestmark = [pytest.mark.e2e, pytest.mark.tf]

QUIET_S = 0.5  # serve.stalled_after_s


@pytest.fixture(scope="module")
def slow_service(tmp_path_factory):
    """A service whose model takes several times ``QUIET_S`` per frame (real compute)."""
    folder = tmp_path_factory.mktemp("slow-service")
    graph = build_slow_frozen(folder / "slow.pb", rounds=400)
    config = load_config(
        None,
        {
            "model.path": str(graph),
            "model.labels": None,
            "model.backend": "tf",
            "output.dir": str(folder / "runs"),
            "output.progress": "off",
            "output.video": False,
            "serve.stalled_after_s": QUIET_S,
            "source.stall_timeout_s": 60,
        },
    )
    with Service(config, "127.0.0.1", 0) as svc:
        yield svc


def test_a_slow_pipeline_is_blocked_and_a_quiet_camera_stalled(slow_service):
    svc = slow_service
    with (
        MjpegServer(fps=10, size=(160, 120)) as cam,
        httpx.Client(base_url=f"{svc.url}api/", timeout=60) as http,
    ):
        key = http.post("sources", json={"uri": cam.url}).json()["id"]

        def source() -> dict:
            return http.get(f"sources/{key}").json()

        def scraped(state: str) -> bool:
            text = http.get(f"{svc.url}metrics").text
            return metric(text, "detector_source_state", id=key, state=state) == 1.0

        # frames come in, the model is the slow side: blocked (unwell), the link kept
        assert settle(lambda: source()["state"] == "blocked", 120), source()
        read = source()["frames"]["read"]
        assert settle(lambda: source()["frames"]["read"] >= read + 20)
        assert source()["frames"]["processed"] < 20  # the model lags far behind
        assert settle(lambda: key in http.get(f"{svc.url}readyz").json()["unwell"])
        assert settle(lambda: scraped("blocked"))

        # the camera goes quiet: stalled, whatever the pipeline does; back: blocked again
        cam.stall()
        assert settle(lambda: source()["state"] == "stalled", 30), source()
        assert settle(lambda: scraped("stalled"))
        cam.resume()
        assert settle(lambda: source()["state"] == "blocked", 60), source()

        # a viewer that stops reading: the model still sets the pace, the camera is never
        # called stalled
        viewer = socket.create_connection(("127.0.0.1", svc.port))
        viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        viewer.sendall(f"GET /stream/{key}.mjpg HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        read, deadline = source()["frames"]["read"], time.monotonic() + 60
        states = set()
        while source()["frames"]["read"] < read + 30 and time.monotonic() < deadline:
            states.add(source()["state"])
        viewer.close()
        assert source()["frames"]["read"] >= read + 30
        assert "stalled" not in states and "blocked" in states
        final = http.delete(f"sources/{key}").json()
    assert final["state"] == "ended"
    record = json.loads((Path(final["run_dir"]) / "run.json").read_text())
    assert record["source_health"]["stalls"] == 0  # never restarted for being slow
