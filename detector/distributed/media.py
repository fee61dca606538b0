"""Reading media inside an actor: a video's frame range exactly (images: ``detector.imagefiles``).

Images are read by the one image reader (``detector.imagefiles.read_image``: any file name,
a file that cannot be used comes back with its reason, as a local run gives it). A video
range seeks to the frame before its first (``CAP_PROP_POS_FRAMES``), checks the position the
decoder reports, and hands out that frame's digest as a *probe*: the driver compares it with
the digest the previous range computed for the same frame, which proves the seek landed
exactly (see :mod:`detector.distributed.ranges`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

SEEK_FAST = "seek"
SEEK_SEQUENTIAL = "sequential"


def frame_digest(image: np.ndarray) -> str:
    """A short digest of a frame's pixels (same pixels, same digest)."""
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=12).hexdigest()


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Grey or BGRA frames (some codecs) as BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class RangeReader:
    """Frames ``start .. stop - 1`` of a video (``stop`` ``None``: to the end).

    Args:
        path: The video file.
        start: First frame wanted (0-based).
        stop: One past the last frame wanted, or ``None`` for the end of the file.
        mode: ``seek`` (jump near ``start - 1``) or ``sequential`` (decode from frame 0;
            slow, exact for any file).

    Attributes:
        probe_digest: Digest of frame ``start - 1`` as this reader decoded it (``None`` for a
            range starting at 0).
        error: Why the range could not be read (``None`` when it could).
    """

    def __init__(self, path: str | Path, start: int, stop: int | None, mode: str) -> None:
        self.path = str(path)
        self.start, self.stop, self.mode = start, stop, mode
        self.probe_digest: str | None = None
        self.error: str | None = None

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, BGR frame)`` for each frame of the range, in order."""
        cap = cv2.VideoCapture(self.path)
        try:
            if not cap.isOpened():
                self.error = "cannot open the video"
                return
            if self.start > 0 and not self._probe(cap):
                return
            index = self.start
            while self.stop is None or index < self.stop:
                ok, image = cap.read()
                if not ok or image is None:
                    break
                yield index, as_bgr(image)
                index += 1
        finally:
            cap.release()

    def _probe(self, cap: cv2.VideoCapture) -> bool:
        """Position the capture on frame ``start - 1``, read it and keep its digest."""
        before = self.start - 1
        if self.mode == SEEK_FAST:
            cap.set(cv2.CAP_PROP_POS_FRAMES, before)
            at = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
            if at != before:
                self.error = f"seek to frame {before} landed on frame {at}"
                return False
        else:
            for i in range(before):
                if not cap.grab():
                    self.error = f"the video ends at frame {i}, before frame {before}"
                    return False
        ok, image = cap.read()
        if not ok or image is None:
            self.error = f"cannot read frame {before} (the video may be shorter than it says)"
            return False
        self.probe_digest = frame_digest(as_bgr(image))
        return True
