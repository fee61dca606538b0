"""Engine: BGR frame → RGB batch of one → pixel-box Detections, filtered; on tiny models."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from detector.engine import Engine
from detector.types import Frame


class RecordingModel:
    """A stand-in with fixed outputs that records what it was fed (no TF needed)."""

    def __init__(self, boxes, scores, classes, num, input_size=None):
        self.out = (
            np.asarray([boxes], np.float32),
            np.asarray([scores], np.float32),
            np.asarray([classes], np.float32),
            np.asarray([num], np.float32),
        )
        self.input_size = input_size
        self.fed: list[np.ndarray] = []

    def predict(self, images_rgb):
        self.fed.append(images_rgb.copy())
        return self.out


def bgr_frame(width=40, height=20, index=0) -> Frame:
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 30  # B, G, R
    return Frame(index, 0.0, img)


def test_feeds_rgb_batch_of_one_and_maps_boxes_to_pixels():
    model = RecordingModel([[0.1, 0.2, 0.5, 1.0], [0, 0, 1, 1]], [0.9, 0.3], [1, 3], 2)
    dets, ms = Engine(model, threshold=0.5)(bgr_frame())
    fed = model.fed[0]
    assert fed.shape == (1, 20, 40, 3) and fed.dtype == np.uint8
    assert tuple(fed[0, 0, 0]) == (30, 20, 10)  # RGB
    assert len(dets) == 1
    np.testing.assert_allclose(dets.xyxy[0], [0.2 * 40, 0.1 * 20, 1.0 * 40, 0.5 * 20])
    assert dets.class_ids.tolist() == [1] and dets.scores[0] == pytest.approx(0.9)
    assert ms >= 0.0


def test_threshold_classes_max_boxes_and_num_detections():
    boxes = [[0, 0, 0.5, 0.5]] * 5
    model = RecordingModel(boxes, [0.6, 0.95, 0.7, 0.8, 0.99], [1, 2, 1, 1, 3], 4)
    # The 5th row (0.99) is beyond num_detections and must be ignored.
    dets, _ = Engine(model, threshold=0.65, class_ids=frozenset({1, 2}), max_boxes=2)(bgr_frame())
    assert dets.scores.tolist() == pytest.approx([0.95, 0.8])
    assert dets.class_ids.tolist() == [2, 1]
    none, _ = Engine(model, threshold=1.0)(bgr_frame())
    assert len(none) == 0


def test_fixed_input_size_gets_resized_frames_and_boxes_map_back():
    model = RecordingModel([[0.25, 0.25, 0.75, 0.75]], [0.9], [1], 1, input_size=(30, 30))
    dets, _ = Engine(model)(bgr_frame(width=80, height=60))
    assert model.fed[0].shape == (1, 30, 30, 3)
    np.testing.assert_allclose(dets.xyxy[0], [20, 15, 60, 45])


def test_bad_threshold_is_refused():
    with pytest.raises(ValueError):
        Engine(RecordingModel([], [], [], 0), threshold=1.5)


@pytest.mark.tf
def test_engine_on_a_tiny_frozen_graph_sees_red_in_rgb_order(tmp_path):
    from helpers.tiny_models import build_frozen

    from detector.model.loader import load_model

    with load_model(build_frozen(tmp_path / "g.pb"), device="cpu") as model:
        engine = Engine(model, threshold=0.1)
        frame = bgr_frame(width=50, height=40)
        frame.image[..., 2] = 204  # red in BGR's last channel → score 0.8 (w picks RGB red)
        frame.image[..., 0] = 255  # blue must not count
        dets, ms = engine(frame)
        assert ms > 0.0
        assert dets.scores.tolist() == pytest.approx([0.8, 0.4], rel=1e-4)
        np.testing.assert_allclose(
            dets.xyxy[0], [0.2 * 50, 0.1 * 40, 0.6 * 50, 0.5 * 40], rtol=1e-5
        )
        np.testing.assert_allclose(dets.xyxy[1], [0, 0, 50, 40])
        assert dets.class_ids.tolist() == [1, 2]


@pytest.mark.tf
def test_engine_is_thread_safe_on_one_session(tmp_path):
    from helpers.tiny_models import build_frozen

    from detector.model.loader import load_model

    with load_model(build_frozen(tmp_path / "g.pb"), device="cpu") as model:
        engine = Engine(model, threshold=0.0)
        results: dict[int, float] = {}
        errors: list[BaseException] = []

        def work(level: int) -> None:
            try:
                for _ in range(10):
                    f = bgr_frame()
                    f.image[..., 2] = level
                    results[level] = float(engine(f)[0].scores[0])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(lv,)) for lv in (51, 102, 153)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors and not any(t.is_alive() for t in threads)
        assert results == pytest.approx({51: 0.2, 102: 0.4, 153: 0.6}, rel=1e-4)
