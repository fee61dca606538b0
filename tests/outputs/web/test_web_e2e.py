"""`main.py --source samples/vtest.avi --serve PORT`: the real boxes, live in Chromium."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers.browser import console_errors

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.e2e, pytest.mark.tf]


def test_sample_video_served_live_with_boxes(sample_video, default_graph, tmp_path, page):
    cmd = [
        sys.executable,
        str(ROOT / "main.py"),
        "--source",
        str(sample_video),
        "--serve",
        "0",
        "--output",
        str(tmp_path),
        "--name",
        "live",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    err: list[str] = []
    reader = threading.Thread(
        target=lambda: err.extend(line.decode() for line in iter(proc.stderr.readline, b"")),
        daemon=True,
    )
    reader.start()
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            found = [m for line in list(err) if (m := re.search(r"web view: (\S+)", line))]
            url = found[0].group(1) if found else None
            time.sleep(0.05)
        assert url, "".join(err)[-3000:]
        errors = console_errors(page)
        page.goto(url)
        page.wait_for_function(
            "document.querySelector('img[data-key=\"0\"]')"
            " && document.querySelector('img[data-key=\"0\"]')"
            ".naturalWidth === 768",
            timeout=60_000,
        )
        seen: set[str] = set()
        people = False
        while len(seen) < 10 and proc.poll() is None:
            seen.add(hashlib.sha1(page.locator("img").screenshot()).hexdigest())
            people = people or "person" in (page.text_content("td[data-field=detections]") or "")
        assert len(seen) >= 10, "the run ended before the page showed 10 frames"
        assert people
        assert errors == []
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, "".join(err)[-3000:]
    record = json.loads((tmp_path / "live" / "run.json").read_text())
    assert record["outputs"]["web"]["frames"] == record["stats"]["frames_processed"] == 795
