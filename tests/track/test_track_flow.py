"""Boxes moved by sparse optical flow: a textured patch shifted by a known amount."""

from __future__ import annotations

import numpy as np

from detector.track.flow import BoxFlow


def scene(shift: tuple[int, int]) -> np.ndarray:
    """Grey 240x320 frame: flat background, a textured 60x80 patch at (100, 80) + shift."""
    rng = np.random.default_rng(1)
    patch = np.kron(rng.integers(40, 220, (10, 8)), np.ones((8, 8))).astype(np.uint8)
    img = np.full((240, 320), 90, np.uint8)
    x, y = 100 + shift[0], 80 + shift[1]
    img[y : y + 80, x : x + 64] = patch
    return img


def test_box_follows_its_pixels():
    box = np.array([[100, 80, 164, 160]], np.float32)
    moved, found = BoxFlow().shift(scene((0, 0)), scene((6, -4)), box)
    assert found.tolist() == [True]
    assert np.allclose(moved[0], box[0] + [6, -4, 6, -4], atol=0.5), moved


def test_flat_box_is_left_to_the_caller():
    flat = np.array([[10, 10, 60, 60]], np.float32)  # background only: no corners
    two = np.vstack([flat, [[100, 80, 164, 160]]]).astype(np.float32)
    moved, found = BoxFlow().shift(scene((0, 0)), scene((3, 0)), two)
    assert found.tolist() == [False, True]
    assert np.array_equal(moved[0], flat[0])  # returned unmoved
    assert abs(moved[1, 0] - 103) < 0.5
    # no boxes, and boxes outside the image
    assert BoxFlow().shift(scene((0, 0)), scene((0, 0)), np.zeros((0, 4)))[0].shape == (0, 4)
    out = np.array([[400, 300, 450, 350]], np.float32)
    assert BoxFlow().shift(scene((0, 0)), scene((0, 0)), out)[1].tolist() == [False]
