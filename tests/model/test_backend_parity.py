"""The parity figures between two models' detections: pairing, ratio and gate (NumPy only)."""

from __future__ import annotations

import numpy as np
import pytest

from detector.model.backends.parity import ParityReport, compare_models


class _Fixed:
    """A model that gives the same detections for every image (normalized yxyx boxes)."""

    def __init__(self, boxes: list[list[float]], scores: list[float], classes: list[int]) -> None:
        k = 5
        self.out = (
            np.zeros((1, k, 4), np.float32),
            np.zeros((1, k), np.float32),
            np.zeros((1, k), np.float32),
            np.array([len(scores)], np.float32),
        )
        self.out[0][0, : len(boxes)] = boxes
        self.out[1][0, : len(scores)] = scores
        self.out[2][0, : len(classes)] = classes

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, ...]:
        assert images.shape == (1, 8, 8, 3)
        return self.out


IMAGES = [np.zeros((8, 8, 3), np.uint8)] * 3


def test_identical_models_pass() -> None:
    m = _Fixed([[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9]], [0.9, 0.8], [1, 3])
    report = compare_models(m, m, IMAGES)
    assert (report.reference, report.candidate, report.matched) == (6, 6, 6)
    assert report.ratio == 1.0 and report.passed
    assert "6/6 matched" in report.summary() and "pass" in report.summary()


def test_wrong_class_moved_box_and_extra_box_fail_with_figures() -> None:
    ref = _Fixed([[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9]], [0.9, 0.8], [1, 3])
    cand = _Fixed(
        [[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9], [0.0, 0.0, 0.2, 0.2]],
        [0.9, 0.8, 0.7],
        [2, 3, 1],  # the first box changed class; the third is new
    )
    report = compare_models(ref, cand, IMAGES)
    assert (report.reference, report.candidate, report.matched) == (6, 9, 3)
    assert report.ratio == pytest.approx(3 / 9)
    assert not report.passed
    assert "FAIL" in report.summary()
    sides = {m["side"] for m in report.misses}
    assert sides == {"reference", "candidate"}
    doc = report.to_dict()
    assert doc["passed"] is False and doc["matched"] == 3


def test_scores_below_threshold_are_not_compared() -> None:
    ref = _Fixed([[0.1, 0.1, 0.5, 0.5]], [0.9], [1])
    cand = _Fixed([[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]], [0.9, 0.3], [1, 1])
    assert compare_models(ref, cand, IMAGES).passed


def test_gate_is_at_least_not_more_than() -> None:
    assert ParityReport(1, 20, 20, 19, min_ratio=0.95).passed  # 95% exactly passes
    assert not ParityReport(1, 21, 20, 19, min_ratio=0.95).passed  # 90.5%
    assert ParityReport(1, 0, 0, 0).ratio == 1.0
