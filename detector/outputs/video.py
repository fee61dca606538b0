"""Annotated frames -> a video file through OpenCV (mp4v ``.mp4``, MJPG ``.avi``)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np

from detector.errors import SinkError
from detector.outputs.base import Sink, check_image
from detector.types import FrameResult

log = logging.getLogger(__name__)

FALLBACK_FPS = 30.0
# opencv-python wheels have no H.264 encoder (no x264): mp4v and MJPG are what they can write.
CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


class VideoSink(Sink):
    """Annotated frames → a video file, opened at the first frame's size.

    Args:
        path: ``.mp4`` (codec ``mp4v``) or ``.avi`` (codec ``MJPG``); other suffixes need
            ``codec``. The folder is created if missing.
        fps: Frame rate to write at: the source's. ``None``, 0 or nonsense (live sources
            often report 0) falls back to 30 fps, with a warning.
        codec: A FourCC overriding the suffix's default.

    Frames of a size other than the first are resized to it, with a warning:
    ``cv2.VideoWriter`` would silently drop them.
    """

    def __init__(self, path: str | Path, fps: float | None, codec: str | None = None) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if codec is None and suffix not in CODECS:
            raise SinkError(
                f"cannot choose a video codec for '{self.path}'",
                hint="use a .mp4 (mp4v) or .avi (MJPG) file name, or pass a codec",
            )
        self.codec = codec or CODECS[suffix]
        if len(self.codec) != 4:
            raise SinkError(
                f"video codec {self.codec!r} for '{self.path}' is not a 4-letter FourCC"
            )
        if fps is None or not math.isfinite(fps) or fps <= 0 or fps > 1000:
            log.warning(
                "source gives no usable frame rate (%r): writing '%s' at %g fps",
                fps,
                self.path,
                FALLBACK_FPS,
            )
            fps = FALLBACK_FPS
        self.fps = float(fps)
        self.size: tuple[int, int] | None = None  # (width, height) of the first frame
        self.frames_written = 0
        self.frames_resized = 0
        self._writer: cv2.VideoWriter | None = None

    def write(self, result: FrameResult | None, annotated: np.ndarray) -> None:
        """Append one frame (``result`` is only used to name the frame in warnings)."""
        self._check_open()
        check_image(annotated)
        h, w = annotated.shape[:2]
        if self._writer is None:
            self._open(w, h)
        if (w, h) != self.size:
            if not self.frames_resized:
                idx = result.frame.index if result is not None else self.frames_written
                log.warning(
                    "frame %d is %dx%d but video '%s' is %dx%d: resizing frames to fit",
                    idx,
                    w,
                    h,
                    self.path,
                    *self.size,
                )  # type: ignore[misc]
            self.frames_resized += 1
            annotated = cv2.resize(
                annotated,
                self.size,  # type: ignore[arg-type]
                interpolation=cv2.INTER_AREA,
            )
        assert self._writer is not None
        self._writer.write(annotated)
        self.frames_written += 1

    def _open(self, width: int, height: int) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create folder for video '{self.path}': {exc}") from exc
        writer = cv2.VideoWriter(
            str(self.path), cv2.VideoWriter.fourcc(*self.codec), self.fps, (width, height)
        )
        if not writer.isOpened():
            writer.release()
            raise SinkError(
                f"cannot open video writer for '{self.path}' (codec {self.codec}, "
                f"{width}x{height} at {self.fps:g} fps)",
                hint="check the folder is writable; use .mp4 (mp4v) or .avi (MJPG): "
                "opencv-python cannot encode H.264",
            )
        self._writer, self.size = writer, (width, height)
        log.info(
            "writing video %s (%s, %dx%d, %g fps)", self.path, self.codec, width, height, self.fps
        )

    def close(self) -> None:
        """Finalize the file (idempotent).

        Raises:
            SinkError: Frames went in but no file (or an empty one) came out.
        """
        if self.closed:
            return
        self.closed = True
        if self._writer is None:
            log.info("no frames: video '%s' not written", self.path)
            return
        self._writer.release()
        self._writer = None
        if self.frames_resized:
            log.warning("%d frames were resized to fit video '%s'", self.frames_resized, self.path)
        if not self.path.is_file() or self.path.stat().st_size == 0:
            raise SinkError(
                f"video '{self.path}' is missing or empty after writing "
                f"{self.frames_written} frames",
                hint="check free disk space",
            )
        log.info("video %s: %d frames", self.path, self.frames_written)
