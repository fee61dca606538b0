"""Detection filters before anything else: per-class score floors, box area, ignore masks — in
the filter itself, on tracked squares (a masked object never counts) and from the command line
with the real model (detections.jsonl agrees with the flags)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.cli_run import only_run_folder, run_cli
from helpers.event_scenes import run_scene
from helpers.moving_squares import Square

from detector.events.filters import DetectionFilter
from detector.events.spec import LineSpec, MaskSpec
from detector.fetch.assets import SAMPLE_VIDEO
from detector.types import Detections

PERSON, CAR, DOG = 1, 3, 18


def _dets(rows) -> Detections:
    boxes, scores, classes = zip(*rows, strict=True)
    return Detections(np.array(boxes, np.float32), np.array(scores), np.array(classes))


def test_class_floors_area_and_masks():
    d = _dets([
        ([10, 10, 30, 30], 0.55, PERSON),  # under the person floor
        ([10, 10, 30, 30], 0.65, PERSON),
        ([40, 40, 60, 60], 0.45, CAR),
        ([40, 40, 60, 60], 0.35, CAR),  # under the car floor
        ([70, 10, 90, 30], 0.30, DOG),  # the engine's floor for the rest
        ([0, 0, 4, 4], 0.9, DOG),  # 16 px²: under min_area 0.01 of 100x100
        ([0, 0, 100, 90], 0.9, DOG),  # 9000 px²: over max_area 0.5
        ([60, 70, 80, 95], 0.9, PERSON),  # bottom centre (70, 95) in the mask
        ([60, 70, 80, 95], 0.9, CAR),  # the mask is for persons only
    ])  # fmt: skip
    mask = MaskSpec(((0.5, 0.8), (1.0, 0.8), (1.0, 1.0), (0.5, 1.0)))
    f = DetectionFilter(0.3, {PERSON: 0.6, CAR: 0.4}, 0.01, 0.5, [(mask, frozenset({PERSON}))])
    kept = f.apply(d, 100, 100)
    assert kept.scores.tolist() == pytest.approx([0.65, 0.45, 0.3, 0.9])
    assert kept.class_ids.tolist() == [PERSON, CAR, DOG, CAR]
    assert f.summary() == {"score": 2, "area": 2, "mask": 1}
    assert DetectionFilter(0.3).apply(d, 100, 100) is d  # nothing configured: untouched


def test_a_masked_object_never_counts(tmp_path):
    # a car crossing x = 160 along y = 10..50; the mask covers the top band where it drives
    squares = [Square((0, 0, 255), CAR, (22, 10), (5, 0))]
    mask = MaskSpec(((0, 0), (319, 0), (319, 60), (0, 60)))
    line = LineSpec("mid", (160, 0), (160, 239))
    f = DetectionFilter(0.0, masks=[(mask, None)])
    scene = run_scene(tmp_path, squares, 40, lines=[line], prefilter=f)
    assert scene.sink.events == []
    assert all(len(r.detections) == 0 for r in scene.results)
    scene = run_scene(tmp_path, squares, 40, lines=[line])  # the same without the mask
    assert len(scene.sink.of("cross")) == 1


@pytest.mark.e2e
@pytest.mark.usefixtures("default_graph", "sample_video")  # skipped until fetched
def test_flags_filter_what_the_outputs_hold(tmp_path):
    result = run_cli(
        "--source", SAMPLE_VIDEO, "--max-frames", "20", "--output", tmp_path, "--no-video",
        "--threshold", "0.3", "--thresholds", "person=0.8", "--min-area", "2000",
    )  # fmt: skip
    result.assert_ok()
    folder = only_run_folder(tmp_path)
    dets = [
        d
        for line in (folder / "detections.jsonl").read_text().splitlines()
        for d in json.loads(line)["detections"]
    ]
    assert dets, "the sample has people in view"
    for d in dets:
        x1, y1, x2, y2 = d["box_xyxy"]
        assert (x2 - x1) * (y2 - y1) >= 2000 - 1
        assert d["score"] >= (0.8 if d["label"] == "person" else 0.3)
    run = json.loads((folder / "run.json").read_text())
    assert run["filtered"]["score"] > 0 and run["filtered"]["area"] > 0
    assert run["config"]["detect"]["thresholds"] == {"person": 0.8}


def test_bad_zone_line_and_class_flags_exit_2(tmp_path):
    run_cli("--zone", "door", "--output", tmp_path).assert_failed(
        2, "zones[0]", "NAME:X,Y X,Y X,Y", hint=False
    )
    run_cli("--line", "road:0,0 1,1 2,2", "--output", tmp_path).assert_failed(
        2, "lines[0]", hint=False
    )
    run_cli("--thresholds", "persn=0.6", "--output", tmp_path).assert_failed(
        2, "detect.thresholds", "persn", "did you mean 'person'"
    )
    run_cli("--zone", "d:0,0 1,0 1,1", "--engine", "ray", "--output", tmp_path).assert_failed(
        2, "cannot run with run.engine 'ray'", "--engine local"
    )
