"""Memory over a long run: RSS after the first N frames vs after many more, same process."""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detector.benchmarks.media import decode_frames
from detector.benchmarks.parts import ModelSettings, Outputs, engine, labels_for, load
from detector.benchmarks.system import rss_mb, run_json_subprocess
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


def memory_subprocess(
    model: Path,
    labels: Path | None,
    video: Path,
    first: int,
    last: int,
    workers: int,
    intra: int,
    inter: int,
    precision: str,
    timeout_s: float = 3600.0,
) -> dict[str, Any]:
    """``memory_growth`` in a fresh process, so RSS is the app's own, not the bench's."""
    args = [
        "--model",
        str(model),
        "--video",
        str(video),
        "--first",
        str(first),
        "--last",
        str(last),
        "--workers",
        str(workers),
        "--intra",
        str(intra),
        "--inter",
        str(inter),
        "--precision",
        precision,
    ]
    if labels is not None:
        args += ["--labels", str(labels)]
    return run_json_subprocess("detector.benchmarks.memory", args, timeout_s)


def main(argv: Sequence[str] | None = None) -> int:
    """Subprocess entry: the app's pipeline with outputs on cycled real frames; RSS as JSON."""

    p = argparse.ArgumentParser(prog="python -m detector.benchmarks.memory")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--labels", type=Path)
    p.add_argument("--video", type=Path, required=True)
    p.add_argument("--first", type=int, default=1000)
    p.add_argument("--last", type=int, default=10000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--intra", type=int, default=1)
    p.add_argument("--inter", type=int, default=-1)
    p.add_argument("--precision", default="auto")
    a = p.parse_args(argv)
    settings = ModelSettings(
        path=a.model,
        labels=a.labels,
        intra_op_threads=a.intra,
        inter_op_threads=a.inter,
        workers=a.workers,
        extra={"precision": a.precision},
    )
    frames = decode_frames(a.video, 50)
    model = load(settings)
    try:
        out = memory_growth(
            frames,
            engine(model, settings),
            labels_for(settings),
            10.0,
            a.first,
            a.last,
            a.workers,
            Path(tempfile.mkdtemp(prefix="detector-mem-")),
        )
    finally:
        model.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
