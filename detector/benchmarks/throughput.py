"""File throughput: the naive one-thread loop of the original, the same loop without the
model (the cost of everything else), and our threaded pipeline, all writing the same outputs.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from detector.benchmarks.media import BenchVideo
from detector.benchmarks.parts import Outputs
from detector.benchmarks.system import Span, rate
from detector.pipeline.stages import PipelineOptions, run_pipeline
from detector.sources import open_source
from detector.types import Detections, Frame, FrameResult

Detect = Callable[[Frame], tuple[Detections, float]]


def naive_loop(
    video: BenchVideo, detect: Detect, labels: Any, count: int, warmup: int, out_dir: Path
) -> dict[str, float]:
    """The original's loop in one thread: read → detect → draw → write video + JSON lines."""
    cap = cv2.VideoCapture(str(video.path))
    span = Span()
    done = 0
    try:
        with Outputs(out_dir, video.fps, labels, str(video.path)) as outs:
            while done < count:
                ok, image = cap.read()
                if not ok:
                    break
                if done == warmup:
                    span.start()
                frame = Frame(done, time.monotonic(), image)
                dets, ms = detect(frame)
                outs.consume(FrameResult(frame, dets, True, done, ms))
                done += 1
            span.stop()
    finally:
        cap.release()
        shutil.rmtree(out_dir, ignore_errors=True)
    return rate(done - warmup, span)


def pipeline_run(
    video: BenchVideo,
    detect: Detect,
    labels: Any,
    count: int,
    warmup: int,
    out_dir: Path,
    *,
    detect_every: int = 1,
    workers: int = 1,
    queue_size: int = 8,
    video_codec: str = "h264",
) -> dict[str, Any]:
    """Our pipeline (capture thread → inference worker(s) → render + sinks) on the file.

    Timing starts when output number ``warmup`` is written and ends at the last one, so
    thread start-up and the first inferences are excluded.
    """

    span = Span()
    order: list[int] = []
    fresh = 0

    def on_output(result: FrameResult) -> None:
        nonlocal fresh
        order.append(result.frame.index)
        fresh += bool(result.fresh)
        if len(order) == warmup:
            span.start()

    options = PipelineOptions(
        detect_every=detect_every, workers=workers, max_frames=count, queue_size=queue_size
    )
    source = open_source(str(video.path))
    try:
        uri = str(video.path)
        with Outputs(
            out_dir, video.fps, labels, uri, video_codec=video_codec, on_output=on_output
        ) as outs:
            stats = run_pipeline(source, detect, outs.consume, options)
            span.stop()
    finally:
        with contextlib.suppress(Exception):  # already closed by the pipeline
            source.close()
        shutil.rmtree(out_dir, ignore_errors=True)
    out: dict[str, Any] = rate(len(order) - warmup, span)
    out.update(
        in_order=order == sorted(order),
        fresh_frames=fresh,
        frames_out=len(order),
        dropped=stats.frames_dropped,
        inference_ms_p50=stats.inference_ms_p50,
        detect_every=detect_every,
        workers=workers,
        video_codec=video_codec,
    )
    return out
