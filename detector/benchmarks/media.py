"""Bench media: the sample video and 720p / 1080p videos made from its real frames, cached."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.errors import SourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchVideo:
    """A video file the bench reads.

    Attributes:
        label: Short name used as the table column (``576p``, ``720p``, ``1080p``).
        path: The file.
        width: Frame width, pixels.
        height: Frame height, pixels.
        fps: Nominal frame rate of the file.
        frames: Frames in the file.
    """

    label: str
    path: Path
    width: int
    height: int
    fps: float
    frames: int


def probe(path: Path, label: str | None = None) -> BenchVideo:
    """Open ``path`` and read its size, rate and frame count."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise SourceError(
                f"cannot open bench video '{path}'",
                hint="run `python main.py fetch` for the sample video, or pass --video PATH",
            )
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or 25.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    return BenchVideo(label or f"{h}p", Path(path), w, h, fps, n)


def decode_frames(path: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of ``path`` as BGR uint8 arrays (fewer if the file is shorter)."""
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while len(frames) < count:
            ok, img = cap.read()
            if not ok:
                break
            frames.append(img)
    finally:
        cap.release()
    if not frames:
        raise SourceError(
            f"bench video '{path}' gave no frames",
            hint="check the file plays: `python main.py --source FILE`",
        )
    return frames


def make_scaled(src: BenchVideo, height: int, count: int, cache_dir: Path) -> BenchVideo:
    """A 16:9 video of ``height`` lines made from the first ``count`` frames of ``src``.

    The source frames are centre-cropped to 16:9 and upscaled (bicubic), then written as
    MPEG-4 part 2 (``mp4v``, the codec the opencv-python wheels encode). Cached in
    ``cache_dir`` by source name, size and frame count: a second bench run reuses the file.
    """
    width = round(height * 16 / 9 / 2) * 2
    st = src.path.stat()
    out = cache_dir / f"{src.path.stem}_{width}x{height}_{count}_{st.st_size}.mp4"
    if out.exists() and out.stat().st_size > 0:
        have = probe(out, f"{height}p")
        if have.frames >= min(count, src.frames or count):
            return have
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), src.fps, (width, height))
    if not writer.isOpened():
        raise SourceError(f"cannot write bench video '{tmp}'", hint="check the cache directory")
    cap = cv2.VideoCapture(str(src.path))
    crop_h = min(src.height, round(src.width * 9 / 16))
    top = (src.height - crop_h) // 2
    written = 0
    try:
        while written < count:
            ok, img = cap.read()
            if not ok:
                break
            img = cv2.resize(
                img[top : top + crop_h], (width, height), interpolation=cv2.INTER_CUBIC
            )
            writer.write(img)
            written += 1
    finally:
        cap.release()
        writer.release()
    tmp.replace(out)
    log.info("bench: made %s (%d frames of %dx%d)", out, written, width, height)
    return probe(out, f"{height}p")
