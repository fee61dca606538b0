"""SSD post-processing in NumPy: TF's CombinedNonMaxSuppression reproduced, box for box."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.post_compare import assert_same, rgb_photos, tf_outputs
from helpers.tiny_ssd import build_tiny_ssd

from detector.model.backends.ssd_post import (
    NmsSettings,
    SsdPostprocess,
    decode_centre_size,
    iou_pairs,
)

F32 = np.float32


def _post(anchors: np.ndarray, **nms: float) -> SsdPostprocess:
    settings = {"iou_threshold": 0.5, "score_threshold": 0.1, "max_per_class": 10, "max_total": 10}
    settings.update(nms)
    return SsdPostprocess(
        anchors=anchors.astype(F32),
        scales=(10.0, 10.0, 5.0, 5.0),
        nms=NmsSettings(**settings),  # type: ignore[arg-type]
        score_fn="identity",
        background=1,
    )


def _logits(scores: list[list[float]]) -> np.ndarray:
    """Scores per anchor and class, with a zero background column in front."""
    s = np.asarray(scores, F32)
    return np.concatenate([np.zeros((len(s), 1), F32), s], axis=1)[None]


def test_zero_encodings_decode_to_the_anchors_and_scales_apply() -> None:
    anchors = np.array([[0.5, 0.5, 0.2, 0.4]], F32)
    box = decode_centre_size(np.zeros((1, 4), F32), anchors, (10, 10, 5, 5))
    np.testing.assert_allclose(box, [[0.4, 0.3, 0.6, 0.7]], atol=1e-7)
    moved = decode_centre_size(np.array([[10.0, 0, 5.0, 0]], F32), anchors, (10, 10, 5, 5))
    h = 0.2 * np.e
    np.testing.assert_allclose(moved, [[0.7 - h / 2, 0.3, 0.7 + h / 2, 0.7]], atol=1e-6)


def test_iou_as_tf_computes_it_flipped_corners_and_empty_boxes() -> None:
    boxes = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 0.5, 1], [0.2, 0.2, 0.2, 0.9]], F32)
    first, second = np.array([0, 0, 0]), np.array([1, 2, 3])
    np.testing.assert_allclose(iou_pairs(boxes, first, second), [1.0, 0.5, 0.0])


def test_suppression_is_greedy_per_class_a_suppressed_box_suppresses_nothing() -> None:
    # anchors 0, 1, 2 on a line: 0 overlaps 1, 1 overlaps 2, 0 and 2 do not overlap
    anchors = np.array([[0.5, 0.20, 0.2, 0.2], [0.5, 0.30, 0.2, 0.2], [0.5, 0.40, 0.2, 0.2]])
    post = _post(anchors, iou_threshold=0.3)
    logits = _logits([[0.9, 0.0], [0.8, 0.7], [0.6, 0.0]])
    boxes, scores, classes, num = post.run(np.zeros((1, 3, 4), F32), logits)
    assert int(num[0]) == 3
    # class 1: 0.9 kept, 0.8 suppressed by it, 0.6 kept (only the suppressed box overlapped it);
    # class 2: 0.7 kept (other classes never suppress)
    np.testing.assert_allclose(scores[0, :3], [0.9, 0.7, 0.6])
    np.testing.assert_array_equal(classes[0, :3], [1.0, 2.0, 1.0])
    np.testing.assert_allclose(boxes[0, 1], [0.4, 0.2, 0.6, 0.4], atol=1e-6)


def test_limits_threshold_clip_and_padding() -> None:
    anchors = np.array(
        [[0.1 * i + 0.05, 0.5, 0.05, 0.05] for i in range(8)] + [[0.99, 0.5, 0.1, 0.1]]
    )
    post = _post(anchors, max_per_class=3, max_total=5, score_threshold=0.25)
    scores = [[0.9 - 0.1 * i, 0.3] for i in range(8)] + [[0.95, 0.0]]
    boxes, out_scores, _, num = post.run(np.zeros((1, 9, 4), F32), _logits(scores))
    assert out_scores.shape == (1, 5) and int(num[0]) == 5
    # class 1 stops at 3 (0.95, 0.9, 0.8); class 2's 0.3s fill the rest; 0.25 itself is out
    np.testing.assert_allclose(out_scores[0], [0.95, 0.9, 0.8, 0.3, 0.3], atol=1e-6)
    assert boxes[0, 0, 2] == 1.0  # the anchor at the bottom edge, clipped to [0, 1]
    few = post.run(np.zeros((1, 9, 4), F32), _logits([[0.0, 0.0]] * 8 + [[0.5, 0.0]]))
    assert int(few[3][0]) == 1 and not few[1][0, 1:].any() and not few[0][0, 1:].any()


def test_min_score_keeps_exactly_the_rows_above_it() -> None:
    rng = np.random.default_rng(3)
    anchors = np.column_stack([rng.uniform(0.1, 0.9, (300, 2)), rng.uniform(0.05, 0.3, (300, 2))])
    post = SsdPostprocess(
        anchors=anchors.astype(F32),
        scales=(10.0, 10.0, 5.0, 5.0),
        nms=NmsSettings(0.5, 0.01, 100, 100),
        score_fn="sigmoid",
    )
    enc = rng.normal(0, 1, (1, 300, 4)).astype(F32)
    logits = rng.normal(-3, 2, (1, 300, 6)).astype(F32)
    full = post.run(enc, logits)
    part = post.run(enc, logits, min_score=0.8)
    n = int(part[3][0])
    assert 0 < n < int(full[3][0])
    np.testing.assert_array_equal(part[1][0, :n], full[1][0, :n])
    assert full[1][0, n] < 0.8 <= full[1][0, n - 1]


def test_save_and_load_give_the_same_post_processing(tmp_path: Path) -> None:
    anchors = np.array([[0.5, 0.5, 0.2, 0.2]], F32)
    post = SsdPostprocess(
        anchors=anchors,
        scales=(10.0, 10.0, 5.0, 5.0),
        nms=NmsSettings(0.6, 0.01, 100, 100, True, 1.0),
        score_clip=(0.0, 0.99609375),
        encoding_clip=((-16.3, -16.3, -16.3, -16.3), (6.9, 6.9, 6.9, 6.9)),
    )
    post.save(tmp_path / "p.npz")
    again = SsdPostprocess.load(tmp_path / "p.npz")
    assert {k: v for k, v in vars(again).items() if k != "anchors"} == {
        k: v for k, v in vars(post).items() if k != "anchors"
    }
    np.testing.assert_array_equal(again.anchors, anchors)


# ---------------------------------------------------------------- against TensorFlow


@pytest.mark.tf
@pytest.mark.e2e
def test_default_model_equals_tf_on_the_photos_and_300_video_frames(
    default_graph: Path, photos_dir: Path, sample_video: Path
) -> None:
    from detector.model.backends.openvino import prepare_graph
    from detector.model.backends.ssd_graph import post_roles, read_ssd_post

    prep = prepare_graph(default_graph)
    frames = rgb_photos(photos_dir)
    photos = len(frames)
    cap = cv2.VideoCapture(str(sample_video))
    while len(frames) < photos + 300:
        ok, bgr = cap.read()
        assert ok
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    results = tf_outputs(default_graph, prep, frames)
    roles = [list(prep.cut).index(r) for r in post_roles(prep)]
    post = read_ssd_post(prep, [(results[0][roles[0]], results[0][roles[1]])])
    assert post.score_fn == "sigmoid" and post.nms.max_total == 100
    for image, out in zip(frames, results, strict=True):
        got = post.run(out[roles[0]], out[roles[1]])
        assert_same(out[len(prep.cut) :], got, image.shape[1], image.shape[0])


@pytest.mark.tf
def test_tiny_ssd_settings_are_read_from_the_graph(tmp_path: Path) -> None:
    from detector.model.backends.openvino import prepare_graph
    from detector.model.backends.ssd_graph import post_roles, read_ssd_post

    graph = build_tiny_ssd(tmp_path / "tiny.pb", num_classes=4)
    prep = prepare_graph(graph)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    results = tf_outputs(graph, prep, images)
    roles = [list(prep.cut).index(r) for r in post_roles(prep)]
    post = read_ssd_post(prep, [(r[roles[0]], r[roles[1]]) for r in results])
    assert post.scales == (10.0, 10.0, 5.0, 5.0)
    assert post.nms == NmsSettings(0.5, float(F32(0.05)), 10, 10, True, 1.0)
    assert post.score_fn == "sigmoid" and post.background == 1 and post.encoding_clip is None
    for out in results:
        assert_same(out[len(prep.cut) :], post.run(out[roles[0]], out[roles[1]]), 32, 32)
