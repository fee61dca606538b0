"""Detections -> the files other tools read: COCO results JSON, CSV, MOT Challenge text.

Each export is a sink streamed to disk as the run goes (one frame's rows at a time, flushed,
never every row in memory) and finalized in ``close()``, which runs on every exit path: the
COCO files are JSON arrays whose closing bracket ``close()`` writes, so they are valid after
Ctrl-C, SIGTERM or an error too.

* ``coco_results.json``: the COCO *results* format (``image_id``, ``category_id``, ``bbox``
  ``[x, y, width, height]`` in pixels, ``score``), read by ``pycocotools``' ``COCO.loadRes``
  and FiftyOne; beside it ``coco_images.json``, a COCO dataset skeleton (``images`` with
  ``id``, ``file_name``, ``width``, ``height``, ``frame``, and ``categories`` from the label
  map) so that ``COCO("coco_images.json").loadRes("coco_results.json")`` works as is. Image
  ids are stable: ``frame index + 1`` (a video's frame number, a folder's natural-order
  position), whatever ran before.
* ``detections.csv``: a row per detection: ``source, frame, image_name, timestamp_s,
  class_id, label, score, x1, y1, x2, y2, track_id`` (``track_id`` empty without a tracker,
  ``-1`` while a track is unconfirmed, as in MOT).
* ``mot.txt``: MOT Challenge lines ``frame, id, bb_left, bb_top, bb_width, bb_height, conf,
  -1, -1, -1`` (``frame`` 1-based; ``id`` from the tracker, ``-1`` without one).

Rows hold the same rounded values as the JSON lines (boxes to 0.1 px, scores to 4 decimals).
Track ids are read from ``Detections.track_ids`` when a tracker set it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from detector.errors import SinkError
from detector.labels import LabelMap
from detector.outputs.base import Sink
from detector.types import Detections, FrameResult

COCO_RESULTS_NAME = "coco_results.json"
COCO_IMAGES_NAME = "coco_images.json"
CSV_NAME = "detections.csv"
MOT_NAME = "mot.txt"
CSV_COLUMNS = (
    "source", "frame", "image_name", "timestamp_s", "class_id", "label", "score",
    "x1", "y1", "x2", "y2", "track_id",
)  # fmt: skip


def coco_image_id(frame_index: int) -> int:
    """The COCO ``image_id`` of a frame: its 0-based index + 1 (ids are positive ints)."""
    return int(frame_index) + 1


def rows(d: Detections) -> list[tuple[int, float, list[float], int | None]]:
    """``(class_id, score, [x1, y1, x2, y2], track_id)`` per detection, rounded as the JSON
    lines round them (score 4 decimals, box 0.1 px); ``track_id`` None without a tracker, ``-1``
    while the tracker has not confirmed the track (the JSON lines' null)."""
    track_ids = getattr(d, "track_ids", None)
    out = []
    for i in range(len(d)):
        box = [round(float(v), 1) for v in d.xyxy[i]]
        tid = None if track_ids is None else int(track_ids[i])
        out.append((int(d.class_ids[i]), round(float(d.scores[i]), 4), box, tid))
    return out


class _TextExport(Sink):
    """A text file opened at construction, written and flushed per frame, closed once."""

    what = "export"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.frames_written = 0
        self.rows_written = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO = self.path.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise SinkError(
                f"cannot open {self.what} '{self.path}': {exc.strerror or exc}"
            ) from exc

    def _put(self, text: str) -> None:
        try:
            self._file.write(text)
            self._file.flush()
        except OSError as exc:
            raise SinkError(
                f"cannot write to '{self.path}': {exc.strerror or exc}",
                hint="check free disk space",
            ) from exc

    def _finish(self) -> str:
        """Text that closes the file's structure (written by ``close``)."""
        return ""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            try:
                tail = self._finish()
                if tail:
                    self._file.write(tail)
            finally:
                self._file.close()
        except OSError as exc:
            raise SinkError(
                f"cannot finish '{self.path}': {exc.strerror or exc}", hint="check free disk space"
            ) from exc

    def describe(self) -> dict[str, Any]:
        """What was written, for ``run.json``."""
        return {"path": self.path.name, "frames": self.frames_written, "rows": self.rows_written}


class CocoImagesFile(_TextExport):
    """``coco_images.json``: the COCO dataset skeleton (categories, then one image a frame)."""

    what = "COCO images file"

    def __init__(self, path: str | Path, labels: LabelMap, source_uri: str) -> None:
        super().__init__(path)
        head = {
            "info": {"description": f"detector run on {source_uri}"},
            "categories": [{"id": cid, "name": name} for cid, name in sorted(labels.names.items())],
        }
        text = json.dumps(head, ensure_ascii=False)
        self._put(text[:-1] + ', "images": [')  # the array is closed by close()

    def add(self, result: FrameResult, stem: str | None) -> None:
        frame = result.frame
        image = {
            "id": coco_image_id(frame.index),
            "file_name": frame.name or f"{stem or 'frame'}_{frame.index:06d}",
            "width": frame.width,
            "height": frame.height,
            "frame": frame.index,
        }
        sep = ",\n" if self.rows_written else "\n"
        self._put(sep + json.dumps(image, ensure_ascii=False))
        self.rows_written += 1
        self.frames_written += 1

    def _finish(self) -> str:
        return "\n]}\n"


class CocoSink(_TextExport):
    """``coco_results.json`` (COCO results, a JSON array) and ``coco_images.json`` beside it.

    Args:
        path: The results file; the images file goes in the same folder.
        labels: The label map (COCO categories).
        source_uri: The source, named in the images file's ``info``.
        video_stem: For videos and cameras, the stem of the frames' ``file_name``
            (``<stem>_000042``); image folders use the image's own name.
    """

    what = "COCO results file"

    def __init__(
        self, path: str | Path, labels: LabelMap, source_uri: str, video_stem: str | None = None
    ) -> None:
        super().__init__(path)
        self._put("[")
        try:
            self.images = CocoImagesFile(self.path.with_name(COCO_IMAGES_NAME), labels, source_uri)
        except BaseException:
            self._file.close()
            raise
        self.video_stem = video_stem

    def write(self, result: FrameResult, annotated: np.ndarray | None = None) -> None:
        self._check_open()
        image_id = coco_image_id(result.frame.index)
        parts = []
        for cid, score, (x1, y1, x2, y2), _ in rows(result.detections):
            bbox = [x1, y1, round(x2 - x1, 1), round(y2 - y1, 1)]
            parts.append(
                json.dumps(
                    {"image_id": image_id, "category_id": cid, "bbox": bbox, "score": score},
                    separators=(",", ":"),
                )
            )
        if parts:
            sep = ",\n" if self.rows_written else "\n"
            self._put(sep + ",\n".join(parts))
            self.rows_written += len(parts)
        self.images.add(result, self.video_stem)
        self.frames_written += 1

    def _finish(self) -> str:
        return "\n]\n"

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()
        finally:
            self.images.close()

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path.name,
            "frames": self.frames_written,
            "detections": self.rows_written,
            "images_file": self.images.path.name,
            "images": self.images.rows_written,
            "image_ids": "frame index + 1",
        }


class CsvSink(_TextExport):
    """``detections.csv``: one row per detection (columns: ``CSV_COLUMNS``), header first."""

    what = "CSV file"

    def __init__(self, path: str | Path, labels: LabelMap, source_uri: str) -> None:
        super().__init__(path)
        self.labels = labels
        self.source_uri = str(source_uri)
        self._csv = csv.writer(self._file, lineterminator="\n")
        self._row(CSV_COLUMNS)

    def _row(self, *records: Any) -> None:
        try:
            self._csv.writerows(records)
            self._file.flush()
        except OSError as exc:
            raise SinkError(
                f"cannot write to '{self.path}': {exc.strerror or exc}",
                hint="check free disk space",
            ) from exc

    def write(self, result: FrameResult, annotated: np.ndarray | None = None) -> None:
        self._check_open()
        frame = result.frame
        records = [
            (
                self.source_uri,
                frame.index,
                frame.name or "",
                round(frame.timestamp_s, 6),
                cid,
                self.labels.name(cid),
                score,
                *box,
                "" if tid is None else tid,
            )
            for cid, score, box, tid in rows(result.detections)
        ]
        if records:
            self._row(*records)
            self.rows_written += len(records)
        self.frames_written += 1


class MotSink(_TextExport):
    """``mot.txt``: MOT Challenge detection / tracking lines, one per detection."""

    what = "MOT file"

    def write(self, result: FrameResult, annotated: np.ndarray | None = None) -> None:
        self._check_open()
        n = result.frame.index + 1
        lines = [
            f"{n},{-1 if tid is None else tid},{x1:.1f},{y1:.1f},{x2 - x1:.1f},{y2 - y1:.1f},"
            f"{score:.4f},-1,-1,-1\n"
            for _, score, (x1, y1, x2, y2), tid in rows(result.detections)
        ]
        if lines:
            self._put("".join(lines))
            self.rows_written += len(lines)
        self.frames_written += 1
