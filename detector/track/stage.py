"""The tracker stage: FrameResults in frame order → the same results with ids and moving boxes.

It runs where results are already in frame order (on the main thread, just before rendering:
``consume = stage.wrap(render)``), so capture and inference never wait on it. On a frame the
model ran on (``fresh``), the detections go through the tracker and come back with
``track_ids``; on the frames between (``detect_every`` > 1) the last boxes are moved to where
their objects are (``fresh`` stays False): by the optical flow of the pixels inside each box
(``motion: flow``), or by the track's Kalman velocity (``motion: kalman``, and for a box whose
pixels cannot be followed).

Time: a file's frames are stamped at read time, which says nothing about motion (the reader
runs ahead of the model), so files use media time ``index / fps``; live sources use the
capture time ``Frame.timestamp_s``, so frames a camera or the pipeline dropped leave a real gap
and the prediction still lands where the object is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import cv2
import numpy as np

from detector.track.association import ClassTrackers
from detector.track.flow import BoxFlow
from detector.track.settings import TrackSettings
from detector.types import Detections, Frame, FrameResult, SourceInfo

log = logging.getLogger(__name__)

NOMINAL_FPS = 30.0
"""Frame rate assumed when a source reports none (image folders, some streams)."""


class TrackStage:
    """Gives detections persistent ids and moves carried boxes between model runs.

    Args:
        settings: Tracker kind, thresholds and motion.
        info: The source: ``live`` picks capture time over media time, ``fps`` sets the
            media clock and the Kalman filter's time unit (``NOMINAL_FPS`` when unknown).
        detect_every: The pipeline's ``detect_every``: with 1 no frame is carried, so the
            flow motion keeps no grey copy of the frames.
    """

    def __init__(self, settings: TrackSettings, info: SourceInfo, detect_every: int = 1) -> None:
        fps = info.fps if info.fps and info.fps > 0 else NOMINAL_FPS
        self.settings = settings
        self.live = info.live
        self.fps = float(fps)
        self.tracker = ClassTrackers(settings, self.fps)
        self.flow = BoxFlow() if settings.motion == "flow" and detect_every > 1 else None
        self.frames = 0
        self.flow_moved = 0  # carried boxes moved by their pixels
        self.velocity_moved = 0  # carried boxes moved by the Kalman velocity
        self._carried: Detections | None = None
        self._carried_time_s = 0.0
        self._grey: np.ndarray | None = None

    def time_s(self, frame: Frame) -> float:
        """The frame's time on the stage's clock (seconds)."""
        return frame.timestamp_s if self.live else frame.index / self.fps

    def __call__(self, result: FrameResult) -> FrameResult:
        """Track one result; results must come in frame order."""
        t = self.time_s(result.frame)
        grey = None
        if self.flow is not None:  # taken before the renderer draws on the image
            grey = cv2.cvtColor(result.frame.image, cv2.COLOR_BGR2GRAY)
        if result.fresh:
            detections = self.tracker.update(result.detections, t)
        elif self.flow is None or self._carried is None or self._grey is None:
            detections = self.tracker.predict(t)
        else:
            detections = self._flow_step(self._carried, self._grey, grey, t)
        self._carried, self._carried_time_s, self._grey = detections, t, grey
        self.frames += 1
        return replace(result, detections=detections)

    def _flow_step(
        self, carried: Detections, previous: np.ndarray, current: np.ndarray | None, t: float
    ) -> Detections:
        """The carried rows moved from the previous frame to this one."""
        assert self.flow is not None and current is not None
        moved, found = self.flow.shift(previous, current, carried.xyxy)
        if not found.all():  # the rest by their track's velocity
            step = self.tracker.velocity_px_s * max(0.0, t - self._carried_time_s)
            if len(step) == len(moved):
                moved[~found] = carried.xyxy[~found] + np.tile(step[~found], (1, 2))
        self.flow_moved += int(found.sum())
        self.velocity_moved += int((~found).sum())
        return Detections(moved, carried.scores, carried.class_ids, carried.track_ids)

    def wrap(self, consume: Callable[[FrameResult], bool]) -> Callable[[FrameResult], bool]:
        """``consume`` with this stage in front of it (the pipeline's ``consume``)."""

        def tracked(result: FrameResult) -> bool:
            return consume(self(result))

        return tracked

    def summary(self) -> dict[str, object]:
        """Numbers for ``run.json``."""
        return {
            "tracker": self.settings.kind,
            "motion": self.settings.motion,
            "frames": self.frames,
            "ids": self.tracker.ids_given,
            "clock": "capture" if self.live else "media",
            "fps": self.fps,
            "carried_boxes_moved_by_flow": self.flow_moved,
            "carried_boxes_moved_by_velocity": self.velocity_moved,
        }
