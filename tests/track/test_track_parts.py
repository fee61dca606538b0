"""Tracker parts: settings checks, track_ids on Detections, drawn #id labels, the metrics,
and a clear error when the tracking library is missing."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers.drawing import expected_box, label_size

from detector.boxes import iou_matrix
from detector.draw import DrawStyle, annotate, color_for
from detector.errors import ConfigError
from detector.labels import LabelMap
from detector.track import TrackSettings, TrackStage
from detector.track.metrics import covered, id_switches
from detector.types import Detections, SourceInfo, SourceKind


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"kind": "deepsort"}, ["unknown tracker 'deepsort'", "bytetrack, sort"]),
        ({"threshold": 1.5}, ["threshold 1.5"]),
        ({"threshold": 0.3, "low_threshold": 0.4}, ["low_threshold 0.4 is above"]),
        ({"lost_s": -1.0}, ["lost_s -1.0"]),
        ({"min_iou": 2.0}, ["min_iou 2.0"]),
    ],
)
def test_bad_settings_are_config_errors(kwargs, words):
    with pytest.raises(ConfigError) as err:
        TrackSettings(**kwargs)
    text = str(err.value) + str(getattr(err.value, "hint", ""))
    for w in words:
        assert w in text


def test_settings_defaults_follow_the_tracker():
    assert TrackSettings("bytetrack").match_iou == 0.1
    assert TrackSettings("sort").match_iou == 0.3
    assert TrackSettings("sort", min_iou=0.2).match_iou == 0.2
    # ByteTrack needs the low-score detections, SORT does not
    assert TrackSettings("bytetrack", threshold=0.6).detect_threshold == 0.1
    assert TrackSettings("sort", threshold=0.6).detect_threshold == 0.6


def test_detections_track_ids_checked_and_kept_by_select():
    d = Detections(np.zeros((3, 4)), [0.9, 0.2, 0.5], [1, 1, 2], [4, -1, 7])
    assert d.track_ids.dtype == np.int32
    assert d.select(np.array([2, 0])).track_ids.tolist() == [7, 4]
    assert d.filter(0.4).track_ids.tolist() == [4, 7]
    assert Detections(np.zeros((1, 4)), [1.0], [1]).track_ids is None
    with pytest.raises(ValueError, match="track_ids has 2 rows for 3"):
        Detections(np.zeros((3, 4)), [1, 1, 1], [1, 1, 1], [1, 2])


def test_tracked_label_shows_id_in_the_ids_colour():
    labels = LabelMap({1: "person"})
    box = (40, 60, 120, 200)
    d = Detections(np.array([box], np.float32), [0.87], [1], [7])
    got = annotate(np.full((240, 320, 3), 40, np.uint8), d, labels)
    text = "person #7 87%"
    origin = (box[0], box[1] - label_size(text)[1])  # above the box
    want = expected_box(np.full((240, 320, 3), 40, np.uint8), box, color_for(7), text, origin)
    assert np.array_equal(got, want)
    # an unconfirmed row (-1) is drawn as without a tracker; colour by class when asked
    plain = annotate(
        np.full((240, 320, 3), 40, np.uint8),
        Detections(np.array([box], np.float32), [0.87], [1]),
        labels,
    )
    unconfirmed = annotate(
        np.full((240, 320, 3), 40, np.uint8),
        Detections(np.array([box], np.float32), [0.87], [1], [-1]),
        labels,
    )
    assert np.array_equal(plain, unconfirmed)
    by_class = annotate(
        np.full((240, 320, 3), 40, np.uint8), d, labels, DrawStyle(color_by_track=False)
    )
    assert tuple(int(v) for v in by_class[box[1], box[0] + 10]) == color_for(1)


def test_iou_covered_and_id_switches():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    assert np.allclose(
        iou_matrix(a, a + np.array([5, 0, 5, 0], np.float32)), [[1 / 3, 0], [0, 1 / 3]]
    )
    ref = Detections(a, [0.9, 0.9], [1, 2])
    assert covered(ref, ref) == 2
    assert covered(ref, Detections(a, [0.9, 0.9], [2, 1])) == 0  # classes must agree
    assert covered(ref, Detections(a + 4, [0.9, 0.9], [1, 2])) == 0  # IoU 0.22 < 0.5
    f0 = Detections(a, [0.9, 0.9], [1, 1], [1, 2])
    same = Detections(a + 1, [0.9, 0.9], [1, 1], [1, 2])
    swapped = Detections(a + 2, [0.9, 0.9], [1, 1], [2, 1])
    fresh = Detections(a + 3, [0.9, 0.9], [1, 1], [-1, 1])
    assert id_switches([f0, same]) == 0
    assert id_switches([f0, same, swapped]) == 2
    assert id_switches([swapped, fresh]) == 0  # an unconfirmed id is not a switch
    with pytest.raises(ValueError, match="track_ids"):
        id_switches([ref, ref])


def test_missing_library_is_a_config_error_with_a_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "trackers", None)  # import trackers -> ImportError
    with pytest.raises(ConfigError) as err:
        TrackStage(TrackSettings(), SourceInfo("a.avi", SourceKind.VIDEO, False, fps=10.0))
    assert "trackers" in str(err.value)
    assert "detect.track: none" in err.value.hint


def test_importing_detector_track_leaves_the_library_unloaded():
    import subprocess

    code = (
        "import sys, detector, detector.track; "
        "print(sorted(m for m in ('trackers', 'supervision', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
