"""A real Prometheus server (Debian's) scrapes the service and answers a source's frame count."""

from __future__ import annotations

import shutil
import socket
import subprocess

import httpx
import pytest
from helpers.mjpeg_server import MjpegServer
from helpers.service_clients import settle

pytestmark = [pytest.mark.e2e, pytest.mark.tf]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prometheus_scrapes_the_frame_counters(service, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus is not installed (bash .ci/setup installs it as root)")
    port = _free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: detector\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{service.port}']\n"
    )
    with MjpegServer(fps=10, size=(320, 240)) as cam, httpx.Client(timeout=30) as http:
        key = http.post(f"{service.url}api/sources", json={"uri": cam.url}).json()["id"]
        server = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            api = f"http://127.0.0.1:{port}/api/v1/query"

            def frames() -> float:
                try:
                    got = http.get(
                        api, params={"query": f'detector_frames_processed_total{{id="{key}"}}'}
                    ).json()
                except (httpx.HTTPError, ValueError):
                    return 0.0
                result = got.get("data", {}).get("result", [])
                return float(result[0]["value"][1]) if result else 0.0

            assert settle(lambda: frames() >= 10, 60)
            first = frames()
            assert settle(lambda: frames() > first, 30)  # the counter grows scrape by scrape
            up = http.get(api, params={"query": 'up{job="detector"}'}).json()
            assert up["data"]["result"][0]["value"][1] == "1"
            info = http.get(api, params={"query": "detector_model_info"}).json()
            backend = info["data"]["result"][0]["metric"]["backend"]
            assert backend == service.hub.model["backend"] and backend in ("tf", "openvino")
        finally:
            server.terminate()
            server.wait(timeout=30)
            http.delete(f"{service.url}api/sources/{key}")
