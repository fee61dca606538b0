"""Media made in the test: the one video writer, and an MJPG video whose frame i has grey
level STEP * i (so order and drops can be checked)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

STEP = 8  # grey level of frame i is STEP * i: survives MJPG within +-2


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    fourcc: str = "MJPG",
    size: tuple[int, int] | None = None,
) -> Path:
    """Write BGR ``frames`` (all ``size`` = (w, h), else the first's) to ``path`` with OpenCV:
    every test video. With ``size`` and no frames, a video of no frames."""
    writer: cv2.VideoWriter | None = None

    def opened(wh: tuple[int, int]) -> cv2.VideoWriter:
        w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, wh)
        assert w.isOpened(), f"cannot write {path}"
        return w

    if size is not None:
        writer = opened(size)
    for frame in frames:
        if writer is None:
            writer = opened((frame.shape[1], frame.shape[0]))
        writer.write(frame)
    assert writer is not None, f"no frames and no size for {path}"
    writer.release()
    return Path(path)


def noise_frames(n: int, size: tuple[int, int] = (64, 48), seed: int = 0) -> list[np.ndarray]:
    """``n`` frames of random pixels (each one different; large when JPEG-coded)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size[1], size[0], 3), np.uint8) for _ in range(n)]


def make_video(path: Path, n: int = 12, fps: float = 25.0, size=(64, 48)) -> Path:
    """Write ``n`` uniform frames (frame i has grey level ``STEP * i``) to an MJPG ``.avi``."""
    frames = (np.full((size[1], size[0], 3), STEP * i, np.uint8) for i in range(n))
    return write_video(path, frames, fps, size=size)


def grey_index(image: np.ndarray) -> int:
    """The frame number encoded by :func:`make_video`."""
    return round(float(image.mean()) / STEP)


def image_folder(folder: Path, images: Iterable[np.ndarray], suffix: str = ".png") -> Path:
    """``folder`` (made) holding each BGR image as ``<i><suffix>`` (``000.png``, ``001.png``...)."""
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        assert cv2.imwrite(str(folder / f"{i:03d}{suffix}"), image), f"cannot write into {folder}"
    return folder
