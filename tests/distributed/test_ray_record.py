"""``run.json`` of a Ray run: the local engine's schema, per source, and credentials masked.

One folder of two videos runs on each engine with a config value holding a password; the
records of both runs are read back and compared key by key.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.media import make_video

from detector.cli.main import main

pytestmark = pytest.mark.e2e

PASSWORD = "hunter2-secret"


def _records(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Every ``run.json`` under ``run_dir``, by folder relative to it (``.``: the top)."""
    return {
        str(p.parent.relative_to(run_dir)): json.loads(p.read_text())
        for p in sorted(run_dir.rglob("run.json"))
    }


@pytest.fixture(scope="module")
def video_runs(
    tmp_path_factory: pytest.TempPathFactory, local_ray: Any
) -> dict[str, tuple[int, Path]]:
    tmp = tmp_path_factory.mktemp("video_runs")
    clips = tmp / "clips"
    clips.mkdir()
    make_video(clips / "a.avi", n=10)
    make_video(clips / "b.avi", n=8)
    config = tmp / "secret.yml"
    # any config value holding credentials (a SavedModel signature never read for a .pb)
    config.write_text(f'model:\n  signature: "http://admin:{PASSWORD}@models.local/ssd"\n')
    runs = {}
    for engine in ("local", "ray"):
        args = ["run", "--config", str(config), "--source", str(clips), "--no-video"]
        args += ["--engine", engine, "--output", str(tmp / "runs"), "--name", engine]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "argv", ["main.py", *args])
            runs[engine] = (main(args), tmp / "runs" / engine)
    return runs


def test_a_ray_run_json_masks_credentials_in_every_record(
    video_runs: dict[str, tuple[int, Path]],
) -> None:
    for engine, (code, run_dir) in video_runs.items():
        assert code == 0, engine
        records = _records(run_dir)
        assert set(records) == {".", "a", "b"}, engine
        for folder, record in records.items():
            text = (run_dir / folder / "run.json").read_text()
            assert PASSWORD not in text, (engine, folder)
            assert record["config"]["model"]["signature"] == "http://admin:***@models.local/ssd"


def test_a_folder_of_videos_gives_the_same_record_keys_on_both_engines(
    video_runs: dict[str, tuple[int, Path]],
) -> None:
    local, ray = (_records(video_runs[e][1]) for e in ("local", "ray"))
    assert local["."]["engine"] == "local" and ray["."]["engine"] == "ray"
    # the top record: the same keys, and the Ray engine's own section
    assert set(ray["."]) - {"ray"} == set(local["."])
    assert set(ray["."]["ray"]) >= {"actors", "address", "per_actor", "ranges"}
    # each source: the same entry in the top record, the same keys in its own record
    for name in ("a", "b"):
        assert set(ray[name]) == set(local[name]), name
        assert ray[name]["status"] == local[name]["status"] == "ok"
        assert ray[name]["stats"]["frames_processed"] == local[name]["stats"]["frames_processed"]
        assert set(ray[name]["stats"]) == set(local[name]["stats"])
    assert [set(e) for e in ray["."]["sources"]] == [set(e) for e in local["."]["sources"]]
    assert [(e["run_dir"], e["frames"]) for e in ray["."]["sources"]] == [("a", 10), ("b", 8)]
    assert [(e["run_dir"], e["frames"]) for e in local["."]["sources"]] == [("a", 10), ("b", 8)]
    assert ray["."]["status"] == local["."]["status"] == "ok"
