"""The tracker stage: FrameResults in frame order → the same results with ids and moving boxes.

It runs where results are already in frame order (on the main thread, just before rendering:
``consume = stage.wrap(render)``), so capture and inference never wait on it. On a frame the
model ran on (``fresh``), the detections go through the tracker and come back with
``track_ids``; on the frames between (``detect_every`` > 1) the last run's boxes are moved to
the frame's time by their tracks' velocity (``fresh`` stays False).

Time: a file's frames are stamped at read time, which says nothing about motion (the reader
runs ahead of the model), so files use media time ``index / fps``; live sources use the
capture time ``Frame.timestamp_s``, so frames a camera or the pipeline dropped leave a real gap
and the prediction still lands where the object is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from detector.track.association import ClassTrackers
from detector.track.settings import TrackSettings
from detector.types import Frame, FrameResult, SourceInfo

log = logging.getLogger(__name__)

NOMINAL_FPS = 30.0
"""Frame rate assumed when a source reports none (image folders, some streams)."""


class TrackStage:
    """Gives detections persistent ids and moves carried boxes between model runs.

    Args:
        settings: Tracker kind and thresholds.
        info: The source: ``live`` picks capture time over media time, ``fps`` sets the
            media clock and the Kalman filter's time unit (``NOMINAL_FPS`` when unknown).
    """

    def __init__(self, settings: TrackSettings, info: SourceInfo) -> None:
        fps = info.fps if info.fps and info.fps > 0 else NOMINAL_FPS
        self.settings = settings
        self.live = info.live
        self.fps = float(fps)
        self.tracker = ClassTrackers(settings, self.fps)
        self.frames = 0

    def time_s(self, frame: Frame) -> float:
        """The frame's time on the stage's clock (seconds)."""
        return frame.timestamp_s if self.live else frame.index / self.fps

    def __call__(self, result: FrameResult) -> FrameResult:
        """Track one result; results must come in frame order."""
        t = self.time_s(result.frame)
        if result.fresh:
            detections = self.tracker.update(result.detections, t)
        else:
            detections = self.tracker.predict(t)
        self.frames += 1
        return replace(result, detections=detections)

    def wrap(self, consume: Callable[[FrameResult], bool]) -> Callable[[FrameResult], bool]:
        """``consume`` with this stage in front of it (the pipeline's ``consume``)."""

        def tracked(result: FrameResult) -> bool:
            return consume(self(result))

        return tracked

    def summary(self) -> dict[str, object]:
        """Numbers for ``run.json``."""
        return {
            "tracker": self.settings.kind,
            "frames": self.frames,
            "ids": self.tracker.ids_given,
            "clock": "capture" if self.live else "media",
            "fps": self.fps,
        }
