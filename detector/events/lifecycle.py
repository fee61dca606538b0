"""An object's life from its confirmed track: ``new``, stationary / moving, best snapshot, ``end``.

Only confirmed tracks (id >= 0) have a life. A track ends when it has not been seen for
``end_after_s`` seconds (the tracker retires its id then, so it never comes back). An object
is stationary when its anchor stays within a small radius (a tenth of its box's diagonal,
at least 4 px) for ``stationary_s`` seconds. Its best snapshot is the frame where score x box
area is highest with the box clear of the frame's edges; a later one must beat it by 10%.
Boxes are pixel ``xyxy``; times are seconds on the event stage's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detector.types import Frame

NOMINAL_FPS = 30.0  # a source that reports no usable frame rate (as the tracker assumes)
EDGE_PX = 2  # a box this close to the frame's edge is cut off: no snapshot
IMPROVE = 1.1  # a new best snapshot beats the last by this factor
MIN_RADIUS_PX = 4.0


class SourceClock:
    """A source's time in seconds: ``index / fps`` for files, the capture time since the first
    frame for live sources (as the tracker and the annotated video count it)."""

    def __init__(self, live: bool, fps: float | None) -> None:
        self.live = live
        self.fps = float(fps) if fps and 0 < fps < 1000 else NOMINAL_FPS
        self._t0: float | None = None

    def __call__(self, frame: Frame) -> float:
        if not self.live:
            return frame.index / self.fps
        if self._t0 is None:
            self._t0 = frame.timestamp_s
        return frame.timestamp_s - self._t0


@dataclass
class TrackedObject:
    """What is known of one tracked object."""

    track_id: int
    class_id: int
    first_s: float
    first_frame: int
    last_s: float
    last_frame: int
    box: np.ndarray
    score: float
    best_quality: float = 0.0
    stationary: bool = False
    zones: set[str] = field(default_factory=set)
    _ref: tuple[float, float] = (0.0, 0.0)
    _ref_s: float = 0.0

    @property
    def anchor(self) -> tuple[float, float]:
        """The bottom centre of the box (where the object stands)."""
        x1, _, x2, y2 = (float(v) for v in self.box)
        return ((x1 + x2) / 2, y2)


@dataclass(frozen=True)
class Change:
    """One thing the book noticed: ``new``, ``stationary``, ``moving`` or ``snapshot``."""

    kind: str
    track_id: int
    row: int


class Lifecycle:
    """The objects of one source.

    Args:
        size: The frame's ``(width, height)``.
        end_after_s: Seconds unseen before an object ends.
        stationary_s: Seconds still before it is stationary (0: never).
    """

    def __init__(self, size: tuple[int, int], end_after_s: float, stationary_s: float) -> None:
        self.size = size
        self.end_after_s = end_after_s
        self.stationary_s = stationary_s
        self.objects: dict[int, TrackedObject] = {}
        self.started = 0

    def update(
        self,
        xyxy: np.ndarray,
        scores: np.ndarray,
        class_ids: np.ndarray,
        track_ids: np.ndarray,
        t: float,
        frame: int,
    ) -> list[Change]:
        """One frame's confirmed tracked rows; returns what changed, in row order."""
        changes: list[Change] = []
        for row, tid in enumerate(track_ids.tolist()):
            box, score = xyxy[row], float(scores[row])
            obj = self.objects.get(tid)
            if obj is None:
                obj = self.objects[tid] = TrackedObject(
                    tid, int(class_ids[row]), t, frame, t, frame, box, score
                )
                obj._ref, obj._ref_s = obj.anchor, t
                self.started += 1
                changes.append(Change("new", tid, row))
            obj.box, obj.score, obj.last_s, obj.last_frame = box, score, t, frame
            moved = self._movement(obj, t)
            if moved is not None:
                changes.append(Change(moved, tid, row))
            if self._better_snapshot(obj):
                changes.append(Change("snapshot", tid, row))
        return changes

    def _movement(self, obj: TrackedObject, t: float) -> str | None:
        if self.stationary_s <= 0:
            return None
        x1, y1, x2, y2 = (float(v) for v in obj.box)
        radius = max(MIN_RADIUS_PX, 0.1 * float(np.hypot(x2 - x1, y2 - y1)))
        ax, ay = obj.anchor
        if np.hypot(ax - obj._ref[0], ay - obj._ref[1]) > radius:
            obj._ref, obj._ref_s = (ax, ay), t
            if obj.stationary:
                obj.stationary = False
                return "moving"
            return None
        if not obj.stationary and t - obj._ref_s >= self.stationary_s:
            obj.stationary = True
            return "stationary"
        return None

    def _better_snapshot(self, obj: TrackedObject) -> bool:
        w, h = self.size
        x1, y1, x2, y2 = (float(v) for v in obj.box)
        if x1 < EDGE_PX or y1 < EDGE_PX or x2 > w - EDGE_PX or y2 > h - EDGE_PX:
            return False
        quality = obj.score * max(0.0, x2 - x1) * max(0.0, y2 - y1)
        if quality <= obj.best_quality * IMPROVE:
            return False
        obj.best_quality = quality
        return True

    def expire(self, t: float) -> list[TrackedObject]:
        """Objects unseen for ``end_after_s`` at time ``t``: removed and returned."""
        gone = [o for o in self.objects.values() if t - o.last_s > self.end_after_s]
        for o in gone:
            del self.objects[o.track_id]
        return gone

    def end_all(self) -> list[TrackedObject]:
        """Every object still alive (the run ends): removed and returned."""
        gone = list(self.objects.values())
        self.objects.clear()
        return gone
