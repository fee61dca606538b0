"""A lossless source of frames already in memory, cycled ``count`` times (bench and tests)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detector.sources.base import Source
from detector.types import SourceInfo, SourceKind


class FrameListSource(Source):
    """Hands out copies of ``frames`` in a loop until ``count`` frames were read.

    A file-like source (not live: nothing is dropped); wrap it in
    :class:`~detector.sources.base.PacedSource` to make it behave like a camera.
    """

    def __init__(
        self, frames: Sequence[np.ndarray], count: int, fps: float, uri: str = "memory://frames"
    ) -> None:
        h, w = frames[0].shape[:2]
        super().__init__(SourceInfo(uri, SourceKind.VIDEO, False, w, h, fps, count))
        self._frames = frames
        self._count = count
        self._i = 0

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        if self._i >= self._count:
            return None
        # a camera or decoder gives a new buffer per frame: copy, so drawing never
        # touches the template
        image = self._frames[self._i % len(self._frames)].copy()
        self._i += 1
        return image, None
