"""Tracking: persistent object ids across frames, and boxes that move between model runs.

::

    from detector.track import TrackSettings, TrackStage

    stage = TrackStage(TrackSettings("bytetrack", threshold=0.5), source.info)
    run_pipeline(source, engine, stage.wrap(render), options)   # results carry track_ids

The association is Roboflow's ``trackers`` library (ByteTrack or SORT), imported when a
stage is built.
"""

from __future__ import annotations

from detector.track.settings import TRACKERS, TrackSettings
from detector.track.stage import TrackStage

__all__ = ["TRACKERS", "TrackSettings", "TrackStage"]
