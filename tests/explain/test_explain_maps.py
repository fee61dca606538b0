"""The NumPy side of explain: maps, peaks, shares, anchor matching, occlusion, overlays."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers.cli_run import ROOT

from detector.errors import ConfigError, ModelError
from detector.explain.anchors import match_anchor
from detector.explain.heatmaps import grad_x_activation, gradcam, heat_stats, to_image
from detector.explain.occlusion import occlusion_maps
from detector.explain.overlay import overlay


def test_gradcam_is_a_class_map_gradxact_an_instance_map() -> None:
    act = np.zeros((4, 4, 2), np.float32)
    act[0, 0, 0] = act[3, 3, 0] = 1.0  # two objects of the same kind
    grad = np.zeros_like(act)
    grad[3, 3, 0] = 1.0  # the explained anchor sees only the second one
    cam, gxa = gradcam(act, grad), grad_x_activation(act, grad)
    assert cam[0, 0] == cam[3, 3] > 0  # Grad-CAM lights both
    assert gxa[3, 3] > 0 and gxa[0, 0] == 0  # gradient x activation only its own
    assert gradcam(act[None], grad[None]).shape == (4, 4)
    with pytest.raises(ValueError, match="feature map"):
        gradcam(act[0], grad[0])


def test_peak_and_share_in_box() -> None:
    heat = np.zeros((40, 60), np.float32)
    heat[10:20, 30:40] = 1.0
    heat[35, 5] = 3.0
    s = heat_stats(heat, np.array([28, 8, 42, 22]))
    assert s.peak_xy == (5, 35) and not s.peak_in_box
    assert s.in_box_share == pytest.approx(100 / 103)
    z = heat_stats(np.zeros((5, 5), np.float32), np.array([0, 0, 5, 5]))
    assert z.peak_xy is None and z.in_box_share == 0.0 and not z.peak_in_box
    big = to_image(np.array([[0.0, 1.0]], np.float32), 20, 10)
    assert big.shape == (10, 20) and big.min() >= 0 and np.argmax(big[0]) >= 10


def test_anchor_match_needs_box_and_score() -> None:
    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9], [0.2, 0.2, 0.6, 0.6]], np.float32)
    scores = np.array([[0.1, 0.8], [0.8, 0.1], [0.3, 0.8]], np.float32)  # equal scores, two boxes
    m = match_anchor(boxes[2], 0.8, 2, boxes[:, None], scores)
    assert (m.anchor, m.column) == (2, 1)
    m = match_anchor(boxes[1], 0.8, 1, boxes, scores)
    assert (m.anchor, m.column) == (1, 0)
    with pytest.raises(ModelError, match="cannot map") as err:
        match_anchor(np.array([0.0, 0.0, 1.0, 1.0]), 0.8, 1, boxes, scores)
    assert "occlusion" in str(err.value)


def test_occlusion_finds_the_evidence() -> None:
    image = np.zeros((32, 48, 3), np.uint8)
    image[8:16, 24:32] = 255  # the "object"

    def score_fn(images: np.ndarray) -> np.ndarray:  # score = brightness of the object region
        bright = images[:, 8:16, 24:32].mean(axis=(1, 2, 3)) / 255.0
        return np.stack([bright, 1.0 - bright], axis=1)  # and a target that likes it covered

    maps = occlusion_maps(image, score_fn, grid=8, patch_cells=2, batch=5)
    assert maps.shape == (2, 8, 8) and maps.min() >= 0.0
    row, col = np.unravel_index(np.argmax(maps[0]), maps[0].shape)
    assert 8 <= (row + 0.5) * 4 <= 16 and 24 <= (col + 0.5) * 6 <= 32
    assert maps[1].max() == 0.0  # covering only raises its score: no evidence
    with pytest.raises(ValueError):
        occlusion_maps(image, score_fn, grid=4, patch_cells=5)


def test_overlay_blends_and_checks() -> None:
    image = np.full((20, 30, 3), 100, np.uint8)
    heat = np.zeros((20, 30), np.float32)
    out = overlay(image, heat, np.array([2, 2, 10, 10]), 1, alpha=0.0)
    assert out.shape == image.shape and out[15, 25].tolist() == [100, 100, 100]
    assert not np.array_equal(out[2, 2:10], image[2, 2:10])  # the box is drawn
    with pytest.raises(ConfigError, match="colour map"):
        overlay(image, heat, colormap="nope")
    with pytest.raises(ConfigError, match="alpha"):
        overlay(image, heat, alpha=1.5)


def test_explain_imports_no_tensorflow() -> None:
    code = (
        "import sys, detector.cli.explain, detector.explain.explainer, detector.explain.export;"
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
