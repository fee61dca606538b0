"""Annotated frames -> image files in a folder, named after the source image or the frame index."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import cv2
import numpy as np

from detector.errors import SinkError
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
            ok, data = cv2.imencode(self.ext, annotated)
        except cv2.error as exc:
            raise SinkError(f"cannot encode image '{path}': {exc}") from exc
        if not ok:
            raise SinkError(f"cannot encode image '{path}'")
        write_atomically(path, data.tobytes())
        self.images_written += 1


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: into a hidden ``.part`` file beside it,
    then renamed over it, so a reader or a killed run never meets half an image. Any name the
    file system takes works (the bytes of a name that is not valid UTF-8 are kept: OpenCV's own
    writer crashed on such names)."""
    part = path.with_name(f".{path.name}.part")
    try:
        with open(part, "wb") as f:
            f.write(data)
        os.replace(part, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            part.unlink()
        raise SinkError(
            f"cannot write image '{display_path(path)}': {exc.strerror or exc}",
            hint="check the folder exists, is writable and the disk is not full",
        ) from exc
