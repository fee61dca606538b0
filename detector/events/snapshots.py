"""The best snapshot of each tracked object: the full frame with its box, and a crop, as JPEG.

The event stage offers a frame each time an object's snapshot improves (score x box area, the
box clear of the frame's edges: see :mod:`detector.events.lifecycle`). The frame is copied on
the pipeline's thread (before anything is drawn on it) and written by a worker thread: one
file pair per object, replaced in place when a better frame comes, named when the object's
first snapshot is taken so names sort by time: ``snapshots/<time>-<source>-<id>-<class>.jpg``
and ``...-crop.jpg``. Retention (``clips.max_age_h`` / ``max_size_mb``) applies to the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detector.draw import DrawStyle, annotate
from detector.events.clips import stamp
from detector.events.lifecycle import TrackedObject
from detector.events.retention import prune
from detector.events.worker import QueueWorker
from detector.imagefiles import write_image
from detector.labels import LabelMap
from detector.types import Detections

SNAPSHOTS_DIR = "snapshots"


class SnapshotKeeper:
    """Keeps one source's best snapshot per object on disk.

    Args:
        folder: ``<run>/snapshots``.
        source: The source's name, in file names.
        labels: Class names for the box label.
        queue_size: Snapshots waiting to be written at most (each holds a frame copy).
        max_age_h: Retention by age (None: keep).
        max_size_mb: Retention by the folder's size (None: no limit).
    """

    name = "snapshots"

    def __init__(
        self,
        folder: Path,
        source: str,
        labels: LabelMap,
        queue_size: int = 8,
        max_age_h: float | None = None,
        max_size_mb: float | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.source = source
        self.labels = labels
        self.max_age_h = max_age_h
        self.max_size_mb = max_size_mb
        self.written = 0
        self.deleted = 0
        self._stems: dict[int, str] = {}
        self._objects: set[int] = set()
        self._worker = QueueWorker("snapshots", self._write, queue_size)

    def offer(self, event: dict[str, Any], obj: TrackedObject, image: np.ndarray) -> str | None:
        """A better frame for ``obj``: queued for writing; its path in the run folder, or
        None when the queue was full."""
        stem = self._stems.get(obj.track_id)
        if stem is None:
            cls = self.labels.name(obj.class_id).replace(" ", "_")
            stem = self._stems[obj.track_id] = f"{stamp()}-{self.source}-{obj.track_id}-{cls}"
        h, w = image.shape[:2]
        x1, y1, x2, y2 = (round(float(v)) for v in obj.box)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        crop = image[y1:y2, x1:x2].copy()
        det = Detections(obj.box[None], np.array([obj.score]), np.array([obj.class_id]),
                         np.array([obj.track_id]))  # fmt: skip
        if not self._worker.put((stem, image.copy(), crop, det)):
            return None
        self._objects.add(obj.track_id)
        return f"{SNAPSHOTS_DIR}/{stem}.jpg"

    def finish(self, track_id: int) -> None:
        """The object ended: its files stay as they are."""
        self._stems.pop(track_id, None)

    def _write(self, item: tuple[str, np.ndarray, np.ndarray, Detections]) -> None:
        stem, frame, crop, det = item
        annotate(frame, det, self.labels, DrawStyle())
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, img in ((f"{stem}.jpg", frame), (f"{stem}-crop.jpg", crop)):
            if img.size:
                write_image(self.folder / name, img)  # atomic: a reader never sees half a file
        self.written += 1
        self.deleted += prune(self.folder, self.max_age_h, self.max_size_mb)

    def close(self) -> None:
        self._worker.close()

    def describe(self) -> dict[str, Any]:
        return {
            "path": SNAPSHOTS_DIR,
            "objects": len(self._objects),
            "written": self.written,
            "deleted_by_retention": self.deleted,
            "dropped": self._worker.dropped,
            "failed": self._worker.failed,
        }
