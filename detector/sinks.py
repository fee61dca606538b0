"""Outputs of annotated frames: video file, image folder, JSON lines (plus re-exported window and
run folder helpers).

Every sink is a context manager with ``write(result, annotated)`` and an idempotent
``close()``, so an output is finalized on every exit path (end of stream, q, Ctrl-C, an
error). ``annotated`` is the frame as drawn: BGR ``uint8`` ``(H, W, 3)``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import cv2
import numpy as np

from detector.display import WindowSink, display_available
from detector.errors import SinkError
from detector.labels import LabelMap
from detector.rundir import default_run_name, make_run_dir, write_json
from detector.types import FrameResult

__all__ = [
    "FALLBACK_FPS", "ImageSink", "JsonlSink", "Sink", "VideoSink", "WindowSink",
    "default_run_name", "display_available", "make_run_dir", "write_json",
]

log = logging.getLogger(__name__)

FALLBACK_FPS = 30.0
# opencv-python wheels have no H.264 encoder (no x264): mp4v and MJPG are what they can write.
CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


class Sink:
    """Base: context manager whose exit closes; close errors never hide the original error."""

    closed = False

    def write(self, result: FrameResult, annotated: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.close()
        except Exception:
            if exc_type is None:
                raise
            log.exception("closing %s after an error failed", type(self).__name__)

    def _check_open(self) -> None:
        if self.closed:
            raise SinkError(f"{type(self).__name__} is closed")


def _check_image(annotated: np.ndarray) -> None:
    if annotated.dtype != np.uint8 or annotated.ndim != 3 or annotated.shape[2] != 3:
        raise SinkError(f"expected a BGR uint8 (H, W, 3) image, got {annotated.dtype} "
                        f"{annotated.shape}")


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
            raise SinkError(f"cannot choose a video codec for '{self.path}'",
                            hint="use a .mp4 (mp4v) or .avi (MJPG) file name, or pass a codec")
        self.codec = codec or CODECS[suffix]
        if len(self.codec) != 4:
            raise SinkError(
                f"video codec {self.codec!r} for '{self.path}' is not a 4-letter FourCC")
        if fps is None or not math.isfinite(fps) or fps <= 0 or fps > 1000:
            log.warning("source gives no usable frame rate (%r): writing '%s' at %g fps",
                        fps, self.path, FALLBACK_FPS)
            fps = FALLBACK_FPS
        self.fps = float(fps)
        self.size: tuple[int, int] | None = None  # (width, height) of the first frame
        self.frames_written = 0
        self.frames_resized = 0
        self._writer: cv2.VideoWriter | None = None

    def write(self, result: FrameResult | None, annotated: np.ndarray) -> None:
        """Append one frame (``result`` is only used to name the frame in warnings)."""
        self._check_open()
        _check_image(annotated)
        h, w = annotated.shape[:2]
        if self._writer is None:
            self._open(w, h)
        if (w, h) != self.size:
            if not self.frames_resized:
                idx = result.frame.index if result is not None else self.frames_written
                log.warning("frame %d is %dx%d but video '%s' is %dx%d: resizing frames to fit",
                            idx, w, h, self.path, *self.size)  # type: ignore[misc]
            self.frames_resized += 1
            annotated = cv2.resize(annotated, self.size,  # type: ignore[arg-type]
                                   interpolation=cv2.INTER_AREA)
        assert self._writer is not None
        self._writer.write(annotated)
        self.frames_written += 1

    def _open(self, width: int, height: int) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create folder for video '{self.path}': {exc}") from exc
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.codec), self.fps,
                                 (width, height))
        if not writer.isOpened():
            writer.release()
            raise SinkError(
                f"cannot open video writer for '{self.path}' (codec {self.codec}, "
                f"{width}x{height} at {self.fps:g} fps)",
                hint="check the folder is writable; use .mp4 (mp4v) or .avi (MJPG): "
                     "opencv-python cannot encode H.264",
            )
        self._writer, self.size = writer, (width, height)
        log.info("writing video %s (%s, %dx%d, %g fps)", self.path, self.codec, width, height,
                 self.fps)

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
            raise SinkError(f"video '{self.path}' is missing or empty after writing "
                            f"{self.frames_written} frames", hint="check free disk space")
        log.info("video %s: %d frames", self.path, self.frames_written)


class ImageSink(Sink):
    """Annotated frames → image files in ``directory``.

    Files are named after the source image (``frame.name``'s stem + ``ext``) or, for video
    and cameras, the frame index (``000042.jpg``); a name used twice gets ``_<index>``.
    """

    def __init__(self, directory: str | Path, ext: str = ".jpg") -> None:
        self.directory = Path(directory)
        self.ext = ext if ext.startswith(".") else f".{ext}"
        if not cv2.haveImageWriter(f"x{self.ext}"):
            raise SinkError(f"OpenCV cannot write {self.ext!r} images",
                            hint="use .jpg or .png")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create image folder '{self.directory}': {exc}") from exc
        self.images_written = 0
        self._used: set[str] = set()

    def write(self, result: FrameResult, annotated: np.ndarray) -> None:
        self._check_open()
        _check_image(annotated)
        frame = result.frame
        stem = Path(frame.name).stem if frame.name else f"{frame.index:06d}"
        stem = stem.replace("/", "_").replace("\\", "_") or f"{frame.index:06d}"
        if stem in self._used:
            stem = f"{stem}_{frame.index:06d}"
        self._used.add(stem)
        path = self.directory / f"{stem}{self.ext}"
        try:
            ok = cv2.imwrite(str(path), annotated)
        except cv2.error as exc:
            raise SinkError(f"cannot write image '{path}': {exc}") from exc
        # imwrite reports failure by returning False, and on a full disk may "succeed" with 0 bytes.
        if not ok or not path.is_file() or path.stat().st_size == 0:
            raise SinkError(f"cannot write image '{path}'",
                            hint="check the folder exists, is writable and the disk is not full")
        self.images_written += 1


class JsonlSink(Sink):
    """One JSON object per frame, one line each, flushed per line (safe to ``tail -f``).

    Each line: ``source``, ``frame`` (index), ``name`` (image file name or null),
    ``timestamp_s`` (monotonic capture time, seconds), ``fresh`` (the model ran on this
    frame) and ``detected_frame`` (the frame the boxes come from), ``inference_ms``, and
    ``detections``: ``[{label, class_id, score, box_xyxy}]`` with ``box_xyxy`` in pixels
    (x1, y1, x2, y2, rounded to 0.1 px), best score first; with a tracker on, each
    detection also has ``track_id`` (an int from 1, or null while its track is unconfirmed).
    """

    def __init__(self, path: str | Path, labels: LabelMap | None, source_uri: str) -> None:
        self.path = Path(path)
        self.labels = labels if labels is not None else LabelMap({})
        self.source_uri = str(source_uri)
        self.lines_written = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO = self.path.open("w", encoding="utf-8", newline="\n")
        except OSError as exc:
            raise SinkError(f"cannot open JSON lines file '{self.path}': {exc}") from exc

    def record(self, result: FrameResult) -> dict[str, Any]:
        """The JSON-ready dict written for ``result``."""
        d, frame = result.detections, result.frame
        dets: list[dict[str, Any]] = [
            {
                "label": self.labels.name(int(c)),
                "class_id": int(c),
                "score": round(float(s), 4),
                "box_xyxy": [round(float(v), 1) for v in box],
            }
            for box, s, c in zip(d.xyxy, d.scores, d.class_ids, strict=True)
        ]
        if d.track_ids is not None:
            for det, tid in zip(dets, d.track_ids, strict=True):
                det["track_id"] = int(tid) if tid >= 0 else None
        return {
            "source": self.source_uri,
            "frame": frame.index,
            "name": frame.name,
            "timestamp_s": round(frame.timestamp_s, 6),
            "fresh": result.fresh,
            "detected_frame": result.detected_index,
            "inference_ms": None if result.inference_ms is None else round(result.inference_ms, 3),
            "detections": dets,
        }

    def write(self, result: FrameResult, annotated: np.ndarray | None = None) -> None:
        self._check_open()
        line = json.dumps(self.record(result), ensure_ascii=False, separators=(",", ":"))
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as exc:
            raise SinkError(f"cannot write to '{self.path}': {exc}",
                            hint="check free disk space") from exc
        self.lines_written += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._file.close()
        except OSError as exc:
            raise SinkError(f"cannot close '{self.path}': {exc}") from exc
