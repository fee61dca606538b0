"""The paced-run harness: the app's live path on frames due at a fixed rate, as from a camera.

A ``PacedSource`` over real frames (keep-newest, drops counted) feeds the app's pipeline,
model and renderer with the usual outputs (annotated video, JSON lines, and the web view's
sink when a feed is given); each frame's capture-to-output latency is read after its write.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.benchmarks.parts import Outputs
from detector.benchmarks.system import percentile
from detector.pipeline.stages import PipelineOptions, run_pipeline
from detector.sources.base import PacedSource
from detector.sources.memory import FrameListSource
from detector.types import FrameResult

#: The URI every paced source reports (and a web feed must be opened with).
PACED_URI = "paced://bench"


@dataclass(frozen=True)
class Pace:
    """A paced run: ``count`` of ``frames`` (cycled) due at ``fps`` through ``detect``.

    Attributes:
        frames: BGR ``uint8`` frames.
        detect: The app's engine (``Frame -> (Detections, ms)``).
        labels: The label map drawn and written.
        fps: The rate frames fall due, as a camera gives them.
        count: Frames of the run.
        warmup: Leading frames left out of the figures.
    """

    frames: Sequence[np.ndarray]
    detect: Any
    labels: Any
    fps: float
    count: int
    warmup: int


@dataclass
class PacedRun:
    """What one paced run gave.

    Attributes:
        stats: The pipeline's own counters (frames read, processed, dropped, inference ms).
        latency_ms: Capture-to-output milliseconds of each frame after the warm-up.
        fresh_at: Monotonic seconds at which each fresh (model-run) frame was written.
        cpu_s: The whole process's CPU seconds over the run (every thread).
    """

    stats: Any
    latency_ms: list[float] = field(default_factory=list)
    fresh_at: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    def latency(self) -> dict[str, float]:
        """p50 and p95 capture-to-output milliseconds."""
        return {
            "latency_ms_p50": percentile(self.latency_ms, 50),
            "latency_ms_p95": percentile(self.latency_ms, 95),
        }

    def inference_fps(self) -> float:
        """Fresh frames per second between the first and the last fresh frame written."""
        span = self.fresh_at[-1] - self.fresh_at[0] if len(self.fresh_at) > 1 else 0.0
        return (len(self.fresh_at) - 1) / span if span > 0 else float("nan")


def paced_run(pace: Pace, out_dir: Path, *, web_feed: Any = None) -> PacedRun:
    """One paced run through the pipeline and outputs; ``out_dir`` is removed after."""

    fps, warmup = pace.fps, pace.warmup
    source = PacedSource(FrameListSource(pace.frames, pace.count, fps, PACED_URI), fps)
    run = PacedRun(stats=None)

    def on_output(result: FrameResult) -> None:
        i = result.frame.index
        now = time.monotonic()
        if i >= warmup and i < len(source.due):
            run.latency_ms.append((now - source.due[i]) * 1e3)
        if i >= warmup and result.fresh:
            run.fresh_at.append(now)

    cpu0 = time.process_time()
    try:
        with Outputs(
            out_dir, fps, pace.labels, source.info.uri, on_output=on_output, web_feed=web_feed
        ) as outs:
            options = PipelineOptions(max_frames=pace.count)
            run.stats = run_pipeline(source, pace.detect, outs.consume, options)
        run.cpu_s = time.process_time() - cpu0
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return run


def live_latency(pace: Pace, out_dir: Path) -> dict[str, Any]:
    """The ``live`` section: capture-to-output latency and drops of one paced run."""
    run = paced_run(pace, out_dir)
    stats = run.stats
    return {
        "fps_paced": pace.fps,
        "frames_read": stats.frames_read,
        "frames_out": stats.frames_processed,
        "dropped": stats.frames_dropped,
        **run.latency(),
        "latency_ms_max": max(run.latency_ms) if run.latency_ms else float("nan"),
        "inference_ms_p50": stats.inference_ms_p50,
    }
