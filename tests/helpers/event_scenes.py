"""Moving squares through the real filter → tracker → event stage chain, events collected.

The squares' trajectories are known, so each test can say exactly which line crossings and
zone visits must happen (and on which frame). ``MemorySink`` is an event sink that keeps what
it is sent, as the JSON lines / MQTT / webhook sinks would receive it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.events.spec import LineSpec, ZoneSpec
from detector.events.stage import EventStage
from detector.labels import LabelMap
from detector.pipeline.stages import PipelineOptions, run_pipeline
from detector.sources import open_source
from detector.track import TrackSettings, TrackStage
from detector.types import FrameResult
from helpers.moving_squares import ColourDetector, Square, write_squares_video

LABELS = LabelMap({1: "person", 3: "car"})
SIZE = (320, 240)
FPS = 10.0


class MemorySink:
    """An event sink that keeps every event and the last counts per topic."""

    name = "memory"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.topics: dict[str, dict[str, Any]] = {}

    def send(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def counts(self, topic: str, payload: dict[str, Any]) -> None:
        self.topics[topic] = payload

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"events": len(self.events)}

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


@dataclass(frozen=True)
class Wobble(Square):
    """A square whose box jumps ``amplitude_px`` left and right every frame (a detector's
    jitter on an object standing still)."""

    amplitude_px: float = 6.0

    def box(self, index: float) -> np.ndarray:
        shift = self.amplitude_px if int(index) % 2 else -self.amplitude_px
        x, y = self.start[0] + shift, self.start[1]
        return np.array([x, y, x + self.size, y + self.size], np.float32)


@dataclass
class Scene:
    sink: MemorySink
    stage: EventStage
    results: list[FrameResult]


def run_scene(
    tmp_path: Path,
    squares: Sequence[Square],
    frames: int,
    zones: Sequence[ZoneSpec] = (),
    lines: Sequence[LineSpec] = (),
    *,
    stationary_s: float = 0.0,
    sinks: Sequence[Any] = (),
    frame_sinks: Sequence[Any] = (),
    prefilter: Any = None,
    **stage_kw: Any,
) -> Scene:
    """The squares' video through the pipeline: ColourDetector → (``prefilter``) → ByteTrack →
    event stage (events to a ``MemorySink`` and to ``sinks``)."""
    video = write_squares_video(tmp_path / "scene.avi", squares, frames, fps=FPS, size=SIZE)
    sink = MemorySink()
    results: list[FrameResult] = []
    with open_source(str(video)) as source:
        track = TrackStage(TrackSettings("bytetrack"), source.info)
        stage = EventStage(
            "scene",
            source.info,
            LABELS,
            [(z, LABELS.resolve_classes(z.classes)) for z in zones],
            [(ln, LABELS.resolve_classes(ln.classes)) for ln in lines],
            [sink, *sinks],
            end_after_s=1.0,
            stationary_s=stationary_s,
            **stage_kw,
        )

        def consume(result: FrameResult) -> bool:
            results.append(result)
            for s in frame_sinks:  # as the renderer hands them the (here undrawn) frame
                s.write(result, result.frame.image)
            return True

        chain = track.wrap(stage.wrap(consume))
        out: dict[str, Any] = {}

        def target() -> None:
            try:
                run_pipeline(
                    source,
                    ColourDetector(squares),
                    chain if prefilter is None else prefilter.wrap(chain),
                    PipelineOptions(workers=1),
                )
            except BaseException as exc:
                out["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(120)
        assert not thread.is_alive(), "pipeline did not finish"
    if "error" in out:
        raise out["error"]
    stage.finish()
    return Scene(sink, stage, results)
