"""Zones and lines on tracked objects: supervision's ``PolygonZone`` / ``LineZone`` with inertia,
loitering and per-class counts; unconfirmed tracks (id -1) never count.

A zone says where each tracked object's anchor point is (``PolygonZone.trigger``); presence
flips only after ``inertia`` consecutive frames on the other side (so a box flickering on the
edge neither enters nor leaves), and an object present for ``loiter_s`` loiters once per visit.
A line counts an object once it has held the other side for ``inertia`` frames
(``LineZone``'s ``minimum_crossing_threshold``). Boxes are pixel ``xyxy``; times are seconds on
the event stage's clock. Looking from a line's ``start`` to its ``end``, ``in`` is a crossing
from the right-hand side to the left-hand side (image coordinates), ``out`` the other way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.events.spec import LineSpec, ZoneSpec, pixels

_POSITIONS = {
    "bottom_center": "BOTTOM_CENTER",
    "center": "CENTER",
    "top_center": "TOP_CENTER",
    "center_left": "CENTER_LEFT",
    "center_right": "CENTER_RIGHT",
}


def sv_position(anchor: str) -> Any:
    """supervision's ``Position`` for an anchor name of the config."""
    import supervision as sv

    return getattr(sv.Position, _POSITIONS[anchor])


def sv_detections(xyxy: np.ndarray, class_ids: np.ndarray, track_ids: np.ndarray) -> Any:
    """supervision ``Detections`` of confirmed tracked rows (what zones and lines read)."""
    import supervision as sv

    return sv.Detections(
        xyxy=np.asarray(xyxy, np.float64).reshape(-1, 4),
        class_id=np.asarray(class_ids, int),
        tracker_id=np.asarray(track_ids, int),
    )


@dataclass
class _Presence:
    inside: bool = False
    streak: int = 0  # consecutive frames seen on the other side
    since_s: float = 0.0  # when the current visit began
    loitered: bool = False
    class_id: int = 0


@dataclass(frozen=True)
class Crossing:
    """One change a zone or a line saw: ``kind`` is ``enter`` / ``leave`` / ``loiter`` /
    ``cross``; ``row`` indexes the detections given (``-1`` when the object was not in them)."""

    kind: str
    name: str
    track_id: int
    class_id: int
    row: int
    direction: str | None = None
    seconds: float | None = None


@dataclass(eq=False)
class ZoneWatch:
    """One zone on one source's frames.

    Args:
        spec: The zone as configured.
        size: The frame's ``(width, height)`` (fraction coordinates are scaled to it).
        class_ids: Classes that count (``None``: every class).
    """

    spec: ZoneSpec
    size: tuple[int, int]
    class_ids: frozenset[int] | None = None
    entered: Counter[int] = field(default_factory=Counter)
    left: Counter[int] = field(default_factory=Counter)
    loitered: Counter[int] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        import supervision as sv

        self.polygon = pixels(self.spec.polygon, *self.size)
        self._zone = sv.PolygonZone(
            np.array(self.polygon, np.int64), triggering_anchors=(sv_position(self.spec.anchor),)
        )
        self._state: dict[int, _Presence] = {}

    @property
    def name(self) -> str:
        return self.spec.name

    def occupancy(self) -> Counter[int]:
        """Objects inside now, per class id."""
        return Counter(p.class_id for p in self._state.values() if p.inside)

    def inside(self, track_id: int) -> bool:
        p = self._state.get(track_id)
        return p is not None and p.inside

    def update(self, dets: Any, t: float) -> list[Crossing]:
        """One frame's confirmed tracked rows (supervision ``Detections``) at time ``t``."""
        if len(dets) == 0:
            return []
        hits = self._zone.trigger(dets)
        out: list[Crossing] = []
        inertia = self.spec.inertia
        for row, (tid, cid, hit) in enumerate(
            zip(dets.tracker_id.tolist(), dets.class_id.tolist(), hits.tolist(), strict=True)
        ):
            if self.class_ids is not None and cid not in self.class_ids:
                continue
            p = self._state.setdefault(tid, _Presence(class_id=cid))
            if hit == p.inside:
                p.streak = 0
            else:
                p.streak += 1
                if p.streak >= inertia:
                    p.inside, p.streak = hit, 0
                    if hit:
                        p.since_s, p.loitered = t, False
                        self.entered[cid] += 1
                        out.append(Crossing("enter", self.name, tid, cid, row))
                    else:
                        self.left[cid] += 1
                        stay = t - p.since_s
                        out.append(Crossing("leave", self.name, tid, cid, row, seconds=stay))
            loiter_s = self.spec.loiter_s
            due = loiter_s is not None and t - p.since_s >= loiter_s - 1e-9  # float clock
            if p.inside and due and not p.loitered:
                p.loitered = True
                self.loitered[cid] += 1
                out.append(Crossing("loiter", self.name, tid, cid, row, seconds=t - p.since_s))
        return out

    def forget(self, track_id: int, t: float) -> Crossing | None:
        """The object's track ended: a ``leave`` if it was inside."""
        p = self._state.pop(track_id, None)
        if p is None or not p.inside:
            return None
        self.left[p.class_id] += 1
        return Crossing("leave", self.name, track_id, p.class_id, -1, seconds=t - p.since_s)


@dataclass(eq=False)
class LineWatch:
    """One counting line on one source's frames (see the module for the direction)."""

    spec: LineSpec
    size: tuple[int, int]
    class_ids: frozenset[int] | None = None

    def __post_init__(self) -> None:
        import supervision as sv

        (x1, y1), (x2, y2) = pixels((self.spec.start, self.spec.end), *self.size)
        self.start, self.end = (x1, y1), (x2, y2)
        self._line = sv.LineZone(
            sv.Point(x1, y1),
            sv.Point(x2, y2),
            triggering_anchors=(sv_position(self.spec.anchor),),
            minimum_crossing_threshold=self.spec.inertia,
        )

    @property
    def name(self) -> str:
        return self.spec.name

    def counts(self) -> dict[str, Counter[int]]:
        """Crossings so far per direction and class id."""
        return {
            "in": Counter({int(k or 0): v for k, v in self._line.in_count_per_class.items()}),
            "out": Counter({int(k or 0): v for k, v in self._line.out_count_per_class.items()}),
        }

    def update(self, dets: Any) -> list[Crossing]:
        """One frame's confirmed tracked rows (supervision ``Detections``)."""
        rows = np.arange(len(dets))
        if self.class_ids is not None and len(dets):
            keep = np.isin(dets.class_id, list(self.class_ids))
            dets, rows = dets[keep], rows[keep]
        crossed_in, crossed_out = self._line.trigger(dets)
        out = []
        for direction, crossed in (("in", crossed_in), ("out", crossed_out)):
            for i in np.flatnonzero(crossed):
                out.append(
                    Crossing(
                        "cross",
                        self.name,
                        int(dets.tracker_id[i]),
                        int(dets.class_id[i]),
                        int(rows[i]),
                        direction=direction,
                    )
                )
        return out
