"""``--track`` from the command line with the real default model on the sample video."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.cli_run import RunOutputs, only_run_folder, run_cli


@pytest.mark.e2e
@pytest.mark.usefixtures("default_graph", "sample_video")  # skipped until fetched
def test_track_flag_gives_ids_and_moving_boxes(tmp_path):
    frames = 48
    result = run_cli(
        "--track", "--detect-every", "4", "--max-frames", str(frames),
        "--output", tmp_path, "--name", "tracked", "--mot",
    )  # fmt: skip
    result.assert_ok()
    run = RunOutputs.read(only_run_folder(tmp_path))
    assert run.run["track"]["tracker"] == "bytetrack"
    assert run.run["track"]["clock"] == "media"
    assert run.run["track"]["carried_boxes_moved_by_flow"] > 0
    assert run.video_frames == frames
    assert [rec["frame"] for rec in run.lines] == list(range(frames))
    ids_class: dict[int, int] = {}
    for rec in run.lines:
        assert rec["fresh"] == (rec["frame"] % 4 == 0)
        for d in rec["detections"]:
            assert "track_id" in d
            if d["track_id"] is not None:
                assert ids_class.setdefault(d["track_id"], d["class_id"]) == d["class_id"]
    assert len(ids_class) >= 5  # the sample has several walkers in view
    # between model runs the boxes move: a tracked box differs from its last fresh box
    by_frame = {rec["frame"]: rec for rec in run.lines}
    moved = 0
    for rec in run.lines:
        if rec["fresh"]:
            continue
        fresh = {
            d["track_id"]: d["box_xyxy"] for d in by_frame[rec["detected_frame"]]["detections"]
        }
        for d in rec["detections"]:
            if d["track_id"] is not None and d["box_xyxy"] != fresh.get(d["track_id"]):
                moved += 1
    assert moved > frames
    # the MOT file holds the confirmed tracks scoring at least the threshold, frame by frame
    # (1-based frames); unconfirmed boxes and ByteTrack's low-score matches stay out of it
    mot = np.loadtxt(run.folder / "mot.txt", delimiter=",", ndmin=2)
    want = [
        (rec["frame"] + 1, d["track_id"])
        for rec in run.lines
        for d in rec["detections"]
        if d["track_id"] is not None and d["score"] >= 0.5
    ]
    assert [(int(f), int(i)) for f, i in mot[:, :2]] == want
    left_out = [d for r in run.lines for d in r["detections"]]
    assert any(d["track_id"] is None or d["score"] < 0.5 for d in left_out)


def test_bad_track_settings_exit_2(tmp_path):
    run_cli("--track", "deepsort", "--output", tmp_path).assert_failed(
        2, "deepsort", hint=False
    )  # argparse's own usage error
    config = tmp_path / "c.yml"
    config.write_text("detect:\n  track: bytetrack\n  track_motion: optical\n")
    run_cli("--config", config, "--output", tmp_path).assert_failed(
        2, "detect.track_motion", "expected flow or kalman", "optical", hint=False
    )


def test_track_with_the_ray_engine_is_refused(tmp_path):
    run_cli("--track", "--engine", "ray", "--output", tmp_path).assert_failed(
        2, "detect.track 'bytetrack' cannot run with run.engine 'ray'", "--engine local"
    )
