"""Detections -> one JSON line per frame, each written whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from detector.labels import LabelMap
from detector.outputs.base import Sink
from detector.outputs.textfile import RecordFile
from detector.types import Detections, FrameResult


def detections_json(d: Detections, labels: LabelMap) -> list[dict[str, Any]]:
    """Detections as the JSON list every output uses: ``[{label, class_id, score,
    box_xyxy}]`` (pixels, 0.1 px), plus ``track_id`` when a tracker ran."""
    dets: list[dict[str, Any]] = [
        {
            "label": labels.name(int(c)),
            "class_id": int(c),
            "score": round(float(s), 4),
            "box_xyxy": [round(float(v), 1) for v in box],
        }
        for box, s, c in zip(d.xyxy, d.scores, d.class_ids, strict=True)
    ]
    if d.track_ids is not None:  # a tracker ran: null while a track is unconfirmed
        for det, tid in zip(dets, d.track_ids, strict=True):
            det["track_id"] = int(tid) if tid >= 0 else None
    return dets


def frame_record(result: FrameResult, labels: LabelMap, source_uri: str) -> dict[str, Any]:
    """The JSON-ready record of one frame: a line of ``detections.jsonl``, an event of the
    web view (see :class:`JsonlSink` for the fields)."""
    frame = result.frame
    dets = detections_json(result.detections, labels)
    return {
        "source": source_uri,
        "frame": frame.index,
        "name": frame.name,
        "timestamp_s": round(frame.timestamp_s, 6),
        "fresh": result.fresh,
        "detected_frame": result.detected_index,
        "inference_ms": None if result.inference_ms is None else round(result.inference_ms, 3),
        "detections": dets,
    }


class JsonlSink(Sink):
    """One JSON object per frame, one line each, written straight to the file (safe to
    ``tail -f``; a killed run loses no finished line). A write that fails half-way (a full
    disk) is cut back to the last whole line, so the file always parses line by line.

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
        self._out = RecordFile(self.path, "JSON lines file")

    def record(self, result: FrameResult) -> dict[str, Any]:
        """The JSON-ready dict written for ``result``."""
        return frame_record(result, self.labels, self.source_uri)

    def write(self, result: FrameResult, annotated: np.ndarray | None = None) -> None:
        self._check_open()
        line = json.dumps(self.record(result), ensure_ascii=False, separators=(",", ":"))
        self._out.append(line + "\n")
        self.lines_written += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._out.close()
