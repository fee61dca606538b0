"""``detector.run``: the whole app from Python, and the command line going through it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from helpers.media import make_video

import detector
import detector.api
from detector.cli import main
from detector.config import Config
from detector.errors import ConfigError


def test_run_writes_a_run_folder_and_returns_stats(tmp_path: Path, default_model_dir) -> None:
    video = make_video(tmp_path / "clip.avi", n=12)
    out = io.StringIO()
    stats = detector.run(
        source=video, output=tmp_path / "runs", name="api", video=False, csv=True, out=out
    )
    assert isinstance(stats, detector.RunStats)
    assert stats.frames_processed == 12 and not stats.interrupted
    folder = tmp_path / "runs" / "api"
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "ok"
    assert record["config"]["output"]["csv"] is True
    assert record["stats"]["frames_processed"] == 12
    assert (folder / "detections.csv").is_file() and (folder / "detections.jsonl").is_file()
    assert str(folder) in out.getvalue()  # the summary names the run folder


def test_run_refuses_unknown_settings_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        detector.run(source=tmp_path, cocoo=True)
    assert err.value.exit_code == 2 and "did you mean 'coco'" in str(err.value)
    with pytest.raises(ConfigError, match=r"detect\.threshold"):
        detector.run(threshold=2.0)


def test_cli_run_goes_through_the_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Config] = []

    def fake_run_app(config: Config, *, out: Any = None) -> None:
        seen.append(config)

    monkeypatch.setattr(detector.api, "run_app", fake_run_app)  # what detector.run calls
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yml").write_text("detect:\n  max_boxes: 7\n")
    code = main(["--source", "a.mp4", "--threshold", "0.3", "--coco", "--config", "c.yml"])
    assert code == 0 and len(seen) == 1
    config = seen[0]
    assert config.path == tmp_path / "c.yml" and config.detect.max_boxes == 7
    assert config.source.uri == str(tmp_path / "a.mp4")
    assert config.detect.threshold == 0.3 and config.output.coco
