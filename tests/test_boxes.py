"""Box geometry and matching: areas, IoU in both box orders, greedy and optimal pairing."""

from __future__ import annotations

import numpy as np
import pytest

from detector.boxes import (
    area,
    best_overlaps,
    class_iou,
    iou_matrix,
    match,
    normalized_to_xyxy,
    pair_greedy,
    pair_optimal,
)


def test_area_is_zero_for_empty_or_inverted_boxes() -> None:
    boxes = np.array([[0, 0, 2, 3], [1, 1, 1, 5], [4, 4, 2, 2]], np.float32)
    assert area(boxes).tolist() == [6.0, 0.0, 0.0]


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 1, 1], [0, 0, 0.5, 0.5]])
    b = np.array([[0, 0, 1, 1], [0.5, 0.5, 1, 1], [0, 0, 0.5, 1]])
    got = iou_matrix(a, b)
    assert got.shape == (2, 3)
    assert got[0] == pytest.approx([1.0, 0.25, 0.5])
    assert got[1] == pytest.approx([0.25, 0.0, 0.5])


def test_iou_is_the_same_in_either_box_order() -> None:
    xyxy = np.array([[0, 0, 10, 20], [5, 5, 15, 30]], np.float32)
    yxyx = xyxy[:, [1, 0, 3, 2]]
    np.testing.assert_allclose(iou_matrix(xyxy, xyxy), iou_matrix(yxyx, yxyx))
    assert iou_matrix(xyxy[:1], xyxy[1:])[0, 0] == pytest.approx(75 / (200 + 250 - 75))


def test_iou_of_degenerate_boxes_is_zero_and_empty_sets_have_no_rows() -> None:
    point = np.array([[1, 1, 1, 1]], np.float32)
    assert iou_matrix(point, point).tolist() == [[0.0]]
    assert iou_matrix(np.zeros((0, 4)), point).shape == (0, 1)


def test_match_is_one_to_one_same_class_best_first() -> None:
    ref = np.array([[0, 0, 1, 1], [0, 0, 0.9, 0.9]])
    got = np.array([[0, 0, 0.9, 0.9], [0, 0, 1, 1], [0, 0, 1, 1]])
    pairs = match(ref, np.array([1, 1]), got, np.array([1, 1, 1]))
    assert sorted(pairs) == [(0, 1), (1, 0)]
    # a different class never pairs, however well the boxes overlap
    assert match(ref, np.array([1, 1]), got, np.array([2, 2, 2])) == []
    assert match(ref, np.array([1, 1]), got[:0], np.array([], int)) == []


def test_optimal_pairs_beat_greedy_where_best_first_blocks_a_pair() -> None:
    # row 0 overlaps both columns, row 1 only column 0: best-first takes (0, 0) and strands row 1
    ious = np.array([[0.9, 0.8], [0.85, 0.0]])
    assert pair_greedy(ious, 0.5) == [(0, 0)]
    assert sorted(pair_optimal(ious, 0.5)) == [(0, 1), (1, 0)]
    assert pair_optimal(np.zeros((0, 3)), 0.5) == []


def test_class_iou_and_best_overlaps() -> None:
    a = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    b = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], np.float32)
    ious = class_iou(a, [1, 1], b, [2, 1])
    assert ious[0].tolist() == [0.0, 0.5]
    value, index = best_overlaps(a, [1, 1], b, [2, 1])
    assert value.tolist() == [0.5, 0.0] and index.tolist() == [1, -1]
    value, index = best_overlaps(a, [1, 1], b[:0], [])
    assert value.tolist() == [0.0, 0.0] and index.tolist() == [-1, -1]


def test_normalized_to_xyxy_swaps_axes_scales_and_clips() -> None:
    norm = np.array([[0.1, 0.2, 0.5, 1.2]], np.float32)  # ymin, xmin, ymax, xmax
    got = normalized_to_xyxy(norm, width=200, height=100)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [[40, 10, 200, 50]], rtol=1e-6)
    assert normalized_to_xyxy(np.zeros((0, 4)), 10, 10).shape == (0, 4)
