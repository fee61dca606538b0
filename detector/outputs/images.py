"""Annotated frames -> image files in a folder, named after the source image or the frame index."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detector.errors import SinkError
from detector.imagefiles import write_image
from detector.outputs.base import Sink, check_image
from detector.paths import display_path
from detector.types import FrameResult


class ImageSink(Sink):
    """Annotated frames → image files in ``directory``.

    Files are named after the source image (``frame.name``'s stem + ``ext``) or, for video
    and cameras, the frame index (``000042.jpg``); a name used twice gets ``_<index>``.
    """

    def __init__(self, directory: str | Path, ext: str = ".jpg") -> None:
        self.directory = Path(directory)
        self.ext = ext if ext.startswith(".") else f".{ext}"
        if not cv2.haveImageWriter(f"x{self.ext}"):
            raise SinkError(f"OpenCV cannot write {self.ext!r} images", hint="use .jpg or .png")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create image folder '{self.directory}': {exc}") from exc
        self.images_written = 0
        self._used: set[str] = set()

    def write(self, result: FrameResult, annotated: np.ndarray) -> None:
        self._check_open()
        check_image(annotated)
        frame = result.frame
        stem = Path(frame.name).stem if frame.name else f"{frame.index:06d}"
        stem = stem.replace("/", "_").replace("\\", "_") or f"{frame.index:06d}"
        if stem in self._used:
            stem = f"{stem}_{frame.index:06d}"
        self._used.add(stem)
        path = self.directory / f"{stem}{self.ext}"
        try:
            write_image(path, annotated)
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise SinkError(
                f"cannot write image '{display_path(path)}': {why}",
                hint="check the folder exists, is writable and the disk is not full",
            ) from exc
        self.images_written += 1
