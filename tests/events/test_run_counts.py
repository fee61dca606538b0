"""The whole app with zones and a line, in process: the run returns the counts run.json holds,
and the annotated video shows the zones."""

from __future__ import annotations

import io
import json

import pytest
from helpers.cli_run import only_run_folder

from detector.app import run_app
from detector.config import load_config
from detector.fetch.assets import SAMPLE_VIDEO


@pytest.mark.e2e
@pytest.mark.usefixtures("default_graph", "sample_video")  # skipped until fetched
def test_the_run_returns_its_counts(tmp_path):
    config = load_config(
        None,
        {
            "source.uri": str(SAMPLE_VIDEO),
            "run.max_frames": 60,
            "output.dir": str(tmp_path),
            "output.video": "false",
            "zones": [{"name": "left", "polygon": [[0, 0.3], [0.4, 0.3], [0.4, 1], [0, 1]]}],
            "lines": ["middle:0.5,0 0.5,1"],
        },
    )
    stats = run_app(config, out=io.StringIO())
    run = json.loads((only_run_folder(tmp_path) / "run.json").read_text())
    assert stats.counts == {"lines": run["events"]["lines"], "zones": run["events"]["zones"]}
    assert run["stats"]["counts"] == stats.counts
    assert run["track"]["tracker"] == "bytetrack"  # switched on by the zones
    assert stats.counts["zones"]["left"]["entered"]  # people walk into the left third
