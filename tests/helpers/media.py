"""Media made in the test: an MJPG video whose frame i has grey level STEP * i."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

STEP = 8  # grey level of frame i is STEP * i: survives MJPG within +-2


def make_video(path: Path, n: int = 12, fps: float = 25.0, size=(64, 48)) -> Path:
    """Write ``n`` uniform frames (frame i has grey level ``STEP * i``) to an MJPG ``.avi``."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), STEP * i, np.uint8))
    writer.release()
    return path


def grey_index(image: np.ndarray) -> int:
    """The frame number encoded by :func:`make_video`."""
    return round(float(image.mean()) / STEP)
