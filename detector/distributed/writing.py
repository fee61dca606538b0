"""The driver's writing helpers: results back into ``FrameResult``, the records-only writer
and the run's numbers. (Progress is the outputs' own progress sink, as in a local run.)"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from detector.config import Config
from detector.distributed.actors import detections_from_json
from detector.labels import LabelMap
from detector.pipeline.fps import Samples
from detector.pipeline.render import Renderer, RenderOptions
from detector.pipeline.signals import StopSignals
from detector.types import Frame, FrameResult, RunStats

log = logging.getLogger(__name__)


def stand_in(width: int, height: int) -> np.ndarray:
    """A frame-sized black image that takes no memory (its pixels stayed on the actor)."""
    return np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (max(height, 1), max(width, 1), 3))


class RecordWriter:
    """The renderer's place when no output needs pixels: each sink gets the result only."""

    def __init__(self, sinks: Iterable[Any], guard: StopSignals) -> None:
        self.sinks = list(sinks)
        self.guard = guard
        self.frames = 0

    def __call__(self, result: FrameResult) -> bool:
        self.guard.deferring = True  # a signal waits until the frame is in every output
        try:
            for sink in self.sinks:
                sink.write(result, None)
            self.frames += 1
        finally:
            self.guard.deferring = self.guard.pending
        return not self.guard.pending


class Tally:
    """The run's numbers, kept as the driver writes."""

    def __init__(self, started: float | None = None) -> None:
        self.started = time.monotonic() if started is None else started
        self.read = 0
        self.written = 0
        self.inferences = 0
        self.inference_ms = Samples()

    def frame(self, inference_ms: float | None) -> None:
        self.written += 1
        if inference_ms is not None:
            self.inferences += 1
            self.inference_ms.add(inference_ms)

    def stats(self, skipped: int, interrupted: bool = False) -> RunStats:
        """The run's numbers; ``fps`` is frames over the job's whole time, the actors' start
        included (results arrive in bursts, so a rate between results means little; the
        per-actor rates in ``run.json`` are the steady figures)."""
        now = time.monotonic()
        elapsed = now - self.started
        return RunStats(
            frames_read=self.read,
            frames_processed=self.written,
            frames_dropped=0,
            frames_skipped=skipped,
            inferences=self.inferences,
            inference_ms_mean=self.inference_ms.mean(),
            inference_ms_p50=self.inference_ms.percentile(50),
            fps=self.written / elapsed if elapsed > 0 else 0.0,
            elapsed_s=elapsed,
            interrupted=interrupted,
        )


def frame_result(frame: Frame, row: dict[str, Any]) -> FrameResult:
    detected = int(row["detected"])
    fresh = detected == int(row["position"])
    detections = detections_from_json(str(row["detections"]))
    return FrameResult(
        frame,
        detections,
        fresh,
        frame.index if fresh else detected,
        float(row["inference_ms"]) if fresh else None,
    )


def writer(
    config: Config, labels: LabelMap, sinks: dict[str, Any], stop: StopSignals
) -> tuple[Callable[[FrameResult], bool], bool]:
    """The renderer when an output needs pixels, else the records-only writer."""
    oc = config.output
    needs_pixels = "window" in sinks or "video" in sinks or "images" in sinks
    if not needs_pixels:
        return RecordWriter(sinks.values(), stop), False
    dc = config.detect
    return Renderer(
        labels,
        list(sinks.values()),
        RenderOptions(
            hud=oc.hud,
            report_every=dc.report_every,
            report_threshold=dc.report_threshold,
            fps_interval_s=config.run.fps_interval_s,
        ),
        guard=stop,
    ), True
