"""What the tracker stage is told: which tracker and its few settings, checked once."""

from __future__ import annotations

from dataclasses import dataclass

from detector.config import DEFAULT_THRESHOLD
from detector.errors import ConfigError

TRACKERS = ("bytetrack", "sort")
"""Tracker kinds (``none`` turns the stage off and is not a kind)."""

MOTIONS = ("flow", "kalman")
"""How boxes move between model runs."""

# The libraries' own defaults for the IoU a match needs: ByteTrack matches loosely (its Kalman
# prediction carries the box), SORT more strictly (its one stage has no low-score rescue).
_DEFAULT_MIN_IOU = {"bytetrack": 0.1, "sort": 0.3}


@dataclass(frozen=True)
class TrackSettings:
    """How objects are followed from frame to frame.

    Attributes:
        kind: ``bytetrack`` (two association stages: detections scoring at least
            ``threshold`` first, then those between ``low_threshold`` and ``threshold``
            against the tracks still unmatched) or ``sort`` (one stage, ``threshold`` only).
        threshold: Score a detection needs to start a track and to be shown without one
            (the app passes ``detect.threshold``).
        low_threshold: ByteTrack's second stage: detections down to this score may extend
            an existing track (and are then shown), never start one. Ignored by SORT.
        lost_s: Seconds a track survives without a matching detection before its id is
            retired (an object that comes back later gets a new id).
        min_iou: IoU a detection needs with a track's predicted box to extend it; ``None``
            takes the tracker's own default (ByteTrack 0.1, SORT 0.3).
        motion: How boxes move on the frames between model runs: ``flow`` (by the optical
            flow of the pixels inside each box, the Kalman velocity where too few pixels
            can be followed) or ``kalman`` (by the track's Kalman velocity alone, no pixels
            read).
    """

    kind: str = "bytetrack"
    threshold: float = DEFAULT_THRESHOLD
    low_threshold: float = 0.1
    lost_s: float = 1.0
    min_iou: float | None = None
    motion: str = "flow"

    def __post_init__(self) -> None:
        if self.kind not in TRACKERS:
            raise ConfigError(
                f"unknown tracker '{self.kind}'",
                hint=f"choose one of: {', '.join(TRACKERS)} (or none to turn tracking off)",
            )
        if self.motion not in MOTIONS:
            raise ConfigError(
                f"unknown tracker motion '{self.motion}'", hint=f"choose {' or '.join(MOTIONS)}"
            )
        for name in ("threshold", "low_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"tracker {name} {value!r} is not a score in [0, 1]")
        if self.low_threshold > self.threshold:
            raise ConfigError(
                f"tracker low_threshold {self.low_threshold} is above threshold {self.threshold}",
                hint="the low-score stage takes detections between the two: low <= threshold",
            )
        if not self.lost_s >= 0.0:
            raise ConfigError(f"tracker lost_s {self.lost_s!r} must be >= 0 seconds")
        if self.min_iou is not None and not 0.0 <= self.min_iou <= 1.0:
            raise ConfigError(f"tracker min_iou {self.min_iou!r} is not in [0, 1]")

    @property
    def match_iou(self) -> float:
        """The IoU a match needs: ``min_iou`` or the tracker's default."""
        return self.min_iou if self.min_iou is not None else _DEFAULT_MIN_IOU[self.kind]

    @property
    def detect_threshold(self) -> float:
        """The score the model's output must be filtered at so the tracker sees what it uses."""
        return self.low_threshold if self.kind == "bytetrack" else self.threshold
