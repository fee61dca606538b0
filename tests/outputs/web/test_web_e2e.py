"""`main.py --source samples/vtest.avi --serve PORT`: the real boxes, live in Chromium."""

from __future__ import annotations

import hashlib
import json

import pytest
from helpers.browser import console_errors
from helpers.cli_run import RunningCli

pytestmark = [pytest.mark.e2e, pytest.mark.tf]


def test_sample_video_served_live_with_boxes(sample_video, default_graph, tmp_path, page):
    run = RunningCli(
        "--source", sample_video, "--serve", "0", "--output", tmp_path, "--name", "live"
    )
    try:
        url = run.wait_for_line(r"web view: (\S+)").group(1)
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
        while len(seen) < 10 and run.proc.poll() is None:
            seen.add(hashlib.sha1(page.locator("img").screenshot()).hexdigest())
            people = people or "person" in (page.text_content("td[data-field=detections]") or "")
        assert len(seen) >= 10, "the run ended before the page showed 10 frames"
        assert people
        assert errors == []
        result = run.finish(600)  # the whole sample video, on a loaded machine too
    finally:
        run.kill()
    assert result.code == 0, result.err[-3000:]
    record = json.loads((tmp_path / "live" / "run.json").read_text())
    assert record["outputs"]["web"]["frames"] == record["stats"]["frames_processed"] == 795
