"""Live latency: a source paced like a camera (frames due at a fixed rate, keep-newest),
capture-to-output latency per frame and the frames dropped.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detector.benchmarks.parts import Outputs
from detector.benchmarks.system import percentile
from detector.pipeline.stages import PipelineOptions, run_pipeline
from detector.sources.base import PacedSource
from detector.sources.memory import FrameListSource
from detector.types import FrameResult


def live_latency(
    frames: Sequence[np.ndarray],
    detect: Any,
    labels: Any,
    fps: float,
    count: int,
    warmup: int,
    out_dir: Path,
) -> dict[str, Any]:
    """Run the pipeline on a paced source with the usual outputs; latency after the write."""

    source = PacedSource(FrameListSource(frames, count, fps, "paced://bench"), fps)
    lat: list[float] = []

    def on_output(result: FrameResult) -> None:
        i = result.frame.index
        if i >= warmup and i < len(source.due):
            lat.append((time.monotonic() - source.due[i]) * 1e3)

    try:
        with Outputs(out_dir, fps, labels, source.info.uri, on_output=on_output) as outs:
            stats = run_pipeline(source, detect, outs.consume, PipelineOptions(max_frames=count))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "fps_paced": fps,
        "frames_read": stats.frames_read,
        "frames_out": stats.frames_processed,
        "dropped": stats.frames_dropped,
        "latency_ms_p50": percentile(lat, 50),
        "latency_ms_p95": percentile(lat, 95),
        "latency_ms_max": max(lat) if lat else float("nan"),
        "inference_ms_p50": stats.inference_ms_p50,
    }
