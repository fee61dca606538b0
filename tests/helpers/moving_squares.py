"""Moving coloured squares: a synthetic video and a detector that finds them from the pixels.

The detector knows each square's colour (as a model knows its classes) but reads where it is
from the frame, so compression, occlusion and a missed frame behave as with a real model.
Images are BGR ``uint8``; boxes pixel ``xyxy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.types import Detections, Frame


@dataclass(frozen=True)
class Square:
    """A square of ``size`` px moving at ``velocity_px`` per frame from ``start`` (top-left)."""

    color_bgr: tuple[int, int, int]
    class_id: int
    start: tuple[float, float]
    velocity_px: tuple[float, float]
    size: int = 40

    def box(self, index: float) -> np.ndarray:
        """The true ``xyxy`` box in frame ``index`` (fractional indices: between frames)."""
        x = self.start[0] + self.velocity_px[0] * index
        y = self.start[1] + self.velocity_px[1] * index
        return np.array([x, y, x + self.size, y + self.size], np.float32)


def crossing_squares() -> list[Square]:
    """Red and orange (both class 1) cross head-on 20 px apart; green (class 3) drifts."""
    return [
        Square((0, 0, 255), 1, (20, 90), (6, 0)),
        Square((0, 140, 255), 1, (260, 110), (-6, 0)),
        Square((0, 220, 0), 3, (40, 180), (3, -1)),
    ]


TEXTURE_STEP = 30  # dark blocks are the colour minus this (within the detector's tolerance)


def texture(sq: Square, block_px: int = 8) -> np.ndarray:
    """The square's pixels: its colour in a fixed random pattern of 8 px light and dark
    blocks that moves with it (so optical flow has corners to follow)."""
    rng = np.random.default_rng(sum(sq.color_bgr))
    blocks = -(-sq.size // block_px)
    dark = np.kron(rng.integers(0, 2, (blocks, blocks)), np.ones((block_px, block_px)))
    dark = dark[: sq.size, : sq.size, None].astype(np.int16)
    color = np.array(sq.color_bgr, np.int16)
    return (color - dark * TEXTURE_STEP * (color > 0)).clip(0, 255).astype(np.uint8)


def draw_squares(squares: Sequence[Square], index: int, size: tuple[int, int]) -> np.ndarray:
    """Frame ``index``: the textured squares on black, later squares drawn over earlier ones."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    for sq in squares:
        x1, y1 = (round(float(v)) for v in sq.box(index)[:2])
        tex = texture(sq)
        x2, y2 = min(w, x1 + sq.size), min(h, y1 + sq.size)  # the part inside the image
        cx, cy = max(x1, 0), max(y1, 0)
        if x2 > cx and y2 > cy:
            img[cy:y2, cx:x2] = tex[cy - y1 : y2 - y1, cx - x1 : x2 - x1]
    return img


def write_squares_video(
    path: Path,
    squares: Sequence[Square],
    frames: int,
    fps: float = 10.0,
    size: tuple[int, int] = (320, 240),
) -> Path:
    """An MJPG ``.avi`` of ``frames`` frames of ``squares``."""
    from helpers.media import write_video

    return write_video(
        path, (draw_squares(squares, i, size) for i in range(frames)), fps, size=size
    )


class ColourDetector:
    """Finds each square by its colour (light or dark blocks): the box around its visible
    pixels, score 0.9.

    Args:
        squares: The squares (their colours and class ids).
        missing: Frame indices on which it finds nothing (a detector's miss).
        tolerance: How far a pixel's channels may stray from the colour (compression).
    """

    def __init__(
        self, squares: Sequence[Square], missing: Sequence[int] = (), tolerance: int = 45
    ) -> None:
        self.squares = list(squares)
        self.missing = frozenset(missing)
        self.tolerance = tolerance
        self.calls = 0

    def __call__(self, frame: Frame) -> tuple[Detections, float]:
        self.calls += 1
        if frame.index in self.missing:
            return Detections.empty(), 1.0
        img = frame.image.astype(np.int16)
        boxes, classes = [], []
        for sq in self.squares:
            color = np.array(sq.color_bgr, np.int16)
            dark = color - TEXTURE_STEP * (color > 0)
            near = np.all(np.abs(img - color) <= self.tolerance, axis=2) | np.all(
                np.abs(img - dark) <= self.tolerance, axis=2
            )
            ys, xs = np.nonzero(near)
            if len(xs) < 20:  # hidden (or a few stray pixels)
                continue
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            classes.append(sq.class_id)
        n = len(boxes)
        return Detections(
            np.array(boxes, np.float32).reshape(-1, 4), np.full(n, 0.9), np.array(classes, np.int32)
        ), 1.0
