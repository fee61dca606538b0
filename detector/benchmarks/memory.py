"""Memory over a long run: RSS after the first N frames vs after many more, same process."""

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detector.benchmarks.media import decode_frames
from detector.benchmarks.parts import DEFAULT_MAX_BOXES, Outputs, engine, labels_for, load
from detector.benchmarks.system import rss_mb
from detector.config import DEFAULT_THRESHOLD
from detector.model.options import ModelOptions
from detector.pipeline.stages import PipelineOptions, run_pipeline
from detector.sources.memory import FrameListSource
from detector.types import FrameResult


def memory_growth(
    frames: Sequence[np.ndarray],
    detect: Any,
    labels: Any,
    fps: float,
    first: int,
    last: int,
    workers: int,
    out_dir: Path,
) -> dict[str, Any]:
    """RSS (MB) after ``first`` and after ``last`` frames of one pipeline run with outputs."""

    marks: dict[int, float] = {}

    def on_output(result: FrameResult) -> None:
        n = result.frame.index + 1
        if n in (first, last):
            gc.collect()
            marks[n] = rss_mb()

    source = FrameListSource(frames, last, fps)
    try:
        with Outputs(out_dir, fps, labels, source.info.uri, on_output=on_output) as outs:
            run_pipeline(
                source, detect, outs.consume, PipelineOptions(workers=workers, max_frames=last)
            )
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    a, b = marks.get(first, float("nan")), marks.get(last, float("nan"))
    return {
        "frames_first": first,
        "frames_last": last,
        "rss_mb_first": a,
        "rss_mb_last": b,
        "growth_pct": 100.0 * (b - a) / a if a == a and b == b and a > 0 else float("nan"),
    }


def memory_worker(
    model: dict[str, Any],
    video: str,
    first: int,
    last: int,
    threshold: float = DEFAULT_THRESHOLD,
    max_boxes: int = DEFAULT_MAX_BOXES,
) -> dict[str, Any]:
    """Worker task: the app's pipeline with outputs on cycled real frames; RSS figures.

    ``model`` is :meth:`ModelOptions.describe`'s JSON: the model loads as ``run`` loads it.
    """
    options = ModelOptions.from_description(model)
    frames = decode_frames(Path(video), 50)
    loaded = load(options)
    try:
        return memory_growth(
            frames,
            engine(loaded, threshold, max_boxes),
            labels_for(options.labels),
            10.0,
            first,
            last,
            options.workers,
            Path(tempfile.mkdtemp(prefix="detector-mem-")),
        )
    finally:
        loaded.close()


def pipeline_rss(
    model: Any,
    frames: Sequence[np.ndarray],
    labels: Path | None,
    count: int,
    workers: int,
) -> dict[str, Any]:
    """RSS after ``count`` frames of the pipeline with its outputs, and whether TF got loaded."""

    with tempfile.TemporaryDirectory(prefix="detector-bench-rss-") as tmp:
        out = memory_growth(
            frames,
            engine(model),
            labels_for(labels),
            10.0,
            min(100, count),
            count,
            workers,
            Path(tmp) / "out",
        )
    return {"rss": out, "tensorflow_loaded": "tensorflow" in sys.modules}
