"""Detections -> the files other tools read: COCO results JSON, CSV, MOT Challenge text.

Each export is a sink streamed to disk as the run goes (one frame's rows at a time, never
every row in memory) through a :class:`~detector.outputs.textfile.RecordFile`: each frame's
rows and the text that closes the file go down in one write, so the COCO files are valid JSON
at every moment — after Ctrl-C, SIGTERM, SIGKILL, the out-of-memory killer or a full disk.

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
* ``mot.txt`` and ``mot/<label>.txt``: MOT Challenge lines ``frame, id, bb_left, bb_top,
  bb_width, bb_height, conf, -1, -1, -1``, every class and one class a file (see
  :class:`MotSink` for which rows are written).

Rows hold the same rounded values as the JSON lines (boxes to 0.1 px, scores to 4 decimals).
Track ids are read from ``Detections.track_ids`` when a tracker set it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from detector.labels import LabelMap
from detector.outputs.base import Sink
from detector.outputs.textfile import RecordFile
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
    """A :class:`RecordFile` export: whole at every moment, closed once."""

    what = "export"
    head = ""
    tail = ""

    def __init__(self, path: str | Path) -> None:
        self.frames_written = 0
        self.rows_written = 0
        self._out = RecordFile(path, self.what, self.head, self.tail)
        self.path = self._out.path

    def _put(self, text: str) -> None:
        self._out.append(text)

    def _companions(self) -> list[Any]:
        """Files written beside this one, closed after it (each even when one fails)."""
        return []

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with ExitStack() as stack:
            for companion in reversed(self._companions()):
                stack.callback(companion.close)
            self._out.close()

    def describe(self) -> dict[str, Any]:
        """What was written, for ``run.json``."""
        return {"path": self.path.name, "frames": self.frames_written, "rows": self.rows_written}


class CocoImagesFile(_TextExport):
    """``coco_images.json``: the COCO dataset skeleton (categories, then one image a frame)."""

    what = "COCO images file"
    tail = "\n]}\n"

    def __init__(self, path: str | Path, labels: LabelMap, source_uri: str) -> None:
        skeleton = {
            "info": {"description": f"detector run on {source_uri}"},
            "categories": [{"id": cid, "name": name} for cid, name in sorted(labels.names.items())],
        }
        self.head = json.dumps(skeleton, ensure_ascii=False)[:-1] + ', "images": ['
        super().__init__(path)

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
    head = "["
    tail = "\n]\n"

    def __init__(
        self, path: str | Path, labels: LabelMap, source_uri: str, video_stem: str | None = None
    ) -> None:
        super().__init__(path)
        try:
            self.images = CocoImagesFile(self.path.with_name(COCO_IMAGES_NAME), labels, source_uri)
        except BaseException:
            self._out.close()
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

    def _companions(self) -> list[Any]:
        return [self.images]

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
        self.head = _csv_text([CSV_COLUMNS])
        super().__init__(path)
        self.labels = labels
        self.source_uri = str(source_uri)

    def _row(self, *records: Any) -> None:
        self._put(_csv_text(records))

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
    """``mot.txt`` and one ``mot/<label>.txt`` per class: MOT Challenge lines the MOT tools
    accept.

    Columns ``frame, id, bb_left, bb_top, bb_width, bb_height, conf, -1, -1, -1`` (``frame``
    1-based). ``mot.txt`` holds every class (ids are unique across classes);
    ``mot/person.txt`` and the others hold one class each, as TrackEval and the MOT
    benchmarks expect (they evaluate one class, pedestrians, per file). With a tracker, only
    confirmed tracks scoring at least ``min_score`` are written, so every id appears once a
    frame; ByteTrack's low-score matches and unconfirmed boxes are left out unless
    ``all_rows`` (``--mot-all``), which writes every row the tracker showed (id ``-1`` while
    unconfirmed). Without a tracker the files are MOT *detection* files: id ``-1`` on every
    row at or above ``min_score``.
    """

    what = "MOT file"

    def __init__(
        self,
        path: str | Path,
        min_score: float = 0.0,
        all_rows: bool = False,
        labels: LabelMap | None = None,
    ) -> None:
        super().__init__(path)
        self.min_score = float(min_score)
        self.all_rows = bool(all_rows)
        self.labels = labels if labels is not None else LabelMap({})
        self.rows_left_out = 0
        self._per_class: dict[int, RecordFile] = {}

    def _keep(self, score: float, tid: int | None) -> bool:
        if self.all_rows:
            return True
        return score >= self.min_score and (tid is None or tid >= 0)

    def _class_file(self, class_id: int) -> RecordFile:
        out = self._per_class.get(class_id)
        if out is None:
            name = re.sub(r"[^\w.-]+", "_", self.labels.name(class_id)).strip("._") or "class"
            if any(f.path.stem == name for f in self._per_class.values()):
                name = f"{name}_{class_id}"
            folder = self.path.with_suffix("")
            out = self._per_class[class_id] = RecordFile(folder / f"{name}.txt", self.what)
        return out

    def write(self, result: FrameResult, annotated: np.ndarray | None = None) -> None:
        self._check_open()
        n = result.frame.index + 1
        lines: list[str] = []  # in the frame's order (best score first), as the JSON lines
        by_class: dict[int, list[str]] = {}
        for cid, score, (x1, y1, x2, y2), tid in rows(result.detections):
            if not self._keep(score, tid):
                self.rows_left_out += 1
                continue
            line = (
                f"{n},{-1 if tid is None else tid},{x1:.1f},{y1:.1f},{x2 - x1:.1f},{y2 - y1:.1f},"
                f"{score:.4f},-1,-1,-1\n"
            )
            lines.append(line)
            by_class.setdefault(cid, []).append(line)
        if lines:
            self._put("".join(lines))
            for cid, mine in by_class.items():
                self._class_file(cid).append("".join(mine))
            self.rows_written += len(lines)
        self.frames_written += 1

    def _companions(self) -> list[Any]:
        return list(self._per_class.values())

    def describe(self) -> dict[str, Any]:
        kept = "every row shown" if self.all_rows else f"confirmed, score >= {self.min_score}"
        folder = self.path.with_suffix("").name
        per_class = sorted(f"{folder}/{f.path.name}" for f in self._per_class.values())
        return {
            **super().describe(),
            "kept": kept,
            "rows_left_out": self.rows_left_out,
            "per_class": per_class,
        }


def _csv_text(records: Any) -> str:
    """CSV rows as text (one ``\\n`` line each)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(records)
    return buf.getvalue()
