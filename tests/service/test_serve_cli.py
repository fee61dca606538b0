"""`main.py serve` from the command line: refuses an open bind without a token, serves, stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_open_bind_without_a_token_is_refused_before_loading_anything():
    env = {k: v for k, v in os.environ.items() if k != "DETECTOR_API_TOKEN"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert "without an API token" in done.stderr and "--insecure" in done.stderr


@pytest.mark.e2e
@pytest.mark.tf
def test_serve_answers_and_stops_on_sigterm(default_graph, photos_dir, tmp_path):
    command = [sys.executable, str(ROOT / "main.py"), "serve", "--port", "0"]
    command += ["--model", str(default_graph), "--output", str(tmp_path)]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")))
    reader.start()
    try:
        url = None
        deadline = time.monotonic() + 180
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            found = [m for s in list(lines) if (m := re.search(r"detection service: (\S+)", s))]
            url = found[0].group(1) if found else None
            time.sleep(0.1)
        assert url, "".join(lines)[-3000:]
        with httpx.Client(timeout=60) as http:
            assert http.get(f"{url}readyz").json()["ready"] is True
            files = {"image": (photos_dir / "dog.jpg").read_bytes()}
            answer = http.post(f"{url}v1/vision/detection", files=files).json()
            assert "dog" in {p["label"] for p in answer["predictions"]}
            assert http.get(f"{url}docs").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)
