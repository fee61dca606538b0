"""Detections → persistent ids through Roboflow's ``trackers`` (ByteTrack / SORT), one per class.

The library does the association (IoU, Hungarian matching, ByteTrack's high / low score
stages, a constant-velocity Kalman filter per track, lost-track expiry in seconds). This
module adapts it to the app's conventions: one tracker instance per class so an id never
changes class; ids 1, 2, 3, ... shared by all classes; and the motion between two model
runs read from each track's Kalman velocity.

Boxes are pixel ``xyxy``; times are seconds on the clock the caller chose (media time for
files, capture time for live sources). ``trackers`` is imported when the first tracker is
built, so ``import detector`` stays light.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.errors import ConfigError
from detector.track.settings import TrackSettings
from detector.types import Detections

TRACKERS_PIN = "trackers==2.6.1"

# The library counts its lost-track buffer in frames at 30 fps and turns it into seconds.
_LIBRARY_FPS = 30.0


def _import_trackers() -> tuple[Any, Any]:
    try:
        import supervision
        import trackers
    except ImportError as exc:
        raise ConfigError(
            f"tracking needs the 'trackers' package, which cannot be imported ({exc})",
            hint=f"run `bash .ci/setup`, or `.venv/bin/python -m pip install '{TRACKERS_PIN}'`; "
            "or set detect.track: none",
        ) from None
    return trackers, supervision


def _empty_tracked() -> Detections:
    return Detections(
        np.zeros((0, 4), np.float32),
        np.zeros(0, np.float32),
        np.zeros(0, np.int32),
        np.zeros(0, np.int32),
    )


def require_trackers() -> None:
    """Raise the ``ConfigError`` of a missing tracking library now (before a model loads)."""
    _import_trackers()


@dataclass
class _Shown:
    """The rows shown for the last model run, and how to move them until the next."""

    detections: Detections  # with track_ids
    time_s: float
    velocity_px_s: np.ndarray  # (N, 2) centre velocity; zero for rows without a track


class ClassTrackers:
    """One ``trackers`` instance per class id, a single id space, motion between runs.

    Args:
        settings: Tracker kind and thresholds.
        frame_rate: The source's nominal frames per second: the Kalman filter's time unit
            (elapsed seconds are turned into frame steps with it).
    """

    def __init__(self, settings: TrackSettings, frame_rate: float) -> None:
        if not np.isfinite(frame_rate) or frame_rate <= 0:
            raise ValueError(f"frame_rate must be a positive number, got {frame_rate!r}")
        self.settings = settings
        self.frame_rate = float(frame_rate)
        self._trackers_lib, self._sv = _import_trackers()
        self._by_class: dict[int, Any] = {}
        self._global_ids: dict[tuple[int, int], int] = {}
        self._next_id = 1
        self._shown: _Shown | None = None

    @property
    def ids_given(self) -> int:
        """How many track ids have been handed out so far."""
        return self._next_id - 1

    def _new_tracker(self) -> Any:
        s, lib = self.settings, self._trackers_lib
        from trackers.utils.state_representations import XYXYStateEstimator

        common: dict[str, Any] = dict(
            lost_track_buffer=round(s.lost_s * _LIBRARY_FPS),
            frame_rate=self.frame_rate,
            track_activation_threshold=s.threshold,
            # An id from the second matching detection on: with detect_every N that is the
            # second model run, N frames later.
            minimum_consecutive_frames=1,
            minimum_iou_threshold=s.match_iou,
            # Corner state [x1, y1, x2, y2, vx1, vy1, vx2, vy2]: velocities read in predict().
            state_estimator_class=XYXYStateEstimator,
        )
        if s.kind == "bytetrack":
            return lib.ByteTrackTracker(high_conf_det_threshold=s.threshold, **common)
        return lib.SORTTracker(**common)

    def update(self, detections: Detections, time_s: float) -> Detections:
        """Associate one model run's detections; returns the rows to show, with ids.

        Shown: every row that extends or confirms a track (ByteTrack's low-score rows
        only when they do), and every row scoring at least ``settings.threshold``
        (``track_ids`` -1 until a second detection confirms its track). Best score first.
        """
        sv = self._sv
        for cid in np.unique(detections.class_ids):
            if int(cid) not in self._by_class:
                self._by_class[int(cid)] = self._new_tracker()
        boxes: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        classes: list[np.ndarray] = []
        ids: list[np.ndarray] = []
        velocities: list[np.ndarray] = []
        with warnings.catch_warnings():
            # duplicate / backwards times are handled by the caller's clock; the library's
            # own warnings would repeat on every frame
            warnings.simplefilter("ignore", UserWarning)
            for cid, tracker in self._by_class.items():
                mine = detections.select(detections.class_ids == cid)
                sv_dets = sv.Detections(
                    xyxy=mine.xyxy.astype(np.float64),
                    confidence=mine.scores.astype(np.float64),
                    class_id=mine.class_ids.astype(int),
                )
                out = tracker.update(sv_dets, timestamp=time_s)
                if len(out) == 0:
                    continue
                local = np.asarray(out.tracker_id, dtype=np.int64)
                conf = np.asarray(out.confidence, dtype=np.float32)
                keep = (local >= 0) | (conf >= self.settings.threshold)
                if not keep.any():
                    continue
                by_local = {t.tracker_id: t for t in tracker.tracks if t.tracker_id >= 0}
                boxes.append(np.asarray(out.xyxy, np.float32)[keep])
                scores.append(conf[keep])
                classes.append(np.full(int(keep.sum()), cid, np.int32))
                ids.append(np.array([self._global_id(cid, int(t)) for t in local[keep]], np.int32))
                velocities.append(
                    np.array(
                        [self._velocity(by_local.get(int(t))) for t in local[keep]], np.float32
                    ).reshape(-1, 2)
                )
        if not boxes:
            shown = _empty_tracked()
            self._shown = _Shown(shown, time_s, np.zeros((0, 2), np.float32))
            return shown
        order = np.argsort(-np.concatenate(scores), kind="stable")
        shown = Detections(
            np.concatenate(boxes)[order],
            np.concatenate(scores)[order],
            np.concatenate(classes)[order],
            np.concatenate(ids)[order],
        )
        self._shown = _Shown(shown, time_s, np.concatenate(velocities)[order])
        return shown

    @property
    def velocity_px_s(self) -> np.ndarray:
        """``(N, 2)`` centre velocity (pixels per second) of the rows the last update showed;
        zero for rows without a track."""
        return self._shown.velocity_px_s if self._shown else np.zeros((0, 2), np.float32)

    def predict(self, time_s: float) -> Detections:
        """The last run's rows at ``time_s``: tracked boxes moved by their velocity.

        Each box keeps its size and its centre moves at the Kalman filter's velocity (the
        mean of its corners' velocities): on the sample video that covered more of the
        every-frame detections than extrapolating each corner, whose velocities mostly
        follow the detector's jitter in box size. Rows without a track stay where they are.
        """
        shown = self._shown
        if shown is None:
            return _empty_tracked()
        dt_s = max(0.0, time_s - shown.time_s)
        shift = np.tile(shown.velocity_px_s * dt_s, (1, 2))
        d = shown.detections
        return Detections(d.xyxy + shift, d.scores, d.class_ids, d.track_ids)

    def _global_id(self, class_id: int, local_id: int) -> int:
        if local_id < 0:
            return -1
        key = (class_id, local_id)
        gid = self._global_ids.get(key)
        if gid is None:
            gid = self._global_ids[key] = self._next_id
            self._next_id += 1
        return gid

    def _velocity(self, tracklet: Any) -> tuple[float, float]:
        """Centre velocity in pixels per second of a tracklet (0 for none)."""
        if tracklet is None:
            return (0.0, 0.0)
        state = np.asarray(tracklet.state_estimator.kf.state, np.float64).reshape(-1)
        vx1, vy1, vx2, vy2 = state[4:8]  # per frame step of 1 / frame_rate seconds
        return ((vx1 + vx2) / 2 * self.frame_rate, (vy1 + vy2) / 2 * self.frame_rate)
