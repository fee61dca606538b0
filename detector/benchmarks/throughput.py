"""File throughput: the naive one-thread loop of the original, the same loop without the
model (the cost of everything else), and our threaded pipeline, all writing the same outputs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import cv2

from detector.benchmarks.media import BenchVideo
from detector.benchmarks.parts import Outputs
from detector.benchmarks.system import Span, rate
from detector.pipeline.stages import PipelineOptions, run_pipeline
from detector.sources import open_source
from detector.types import Detections, Frame, FrameResult

Detect = Callable[[Frame], tuple[Detections, float]]
T = TypeVar("T")


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
    decode, calls = InsideCalls(), InsideCalls()
    source.read = decode.wrap(source.read)  # type: ignore[method-assign]
    threads = ThreadCpu()
    try:
        uri = str(video.path)
        with Outputs(
            out_dir, video.fps, labels, uri, video_codec=video_codec, on_output=on_output
        ) as outs:
            stats = run_pipeline(source, calls.wrap(detect), outs.consume, options)
            span.stop()
            by_stage = threads.split(decode.cpu_s, calls.cpu_s)  # the encoder's threads live
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
    if by_stage is not None:
        out["cpu_ms_by_stage"] = {k: 1e3 * v / max(1, len(order)) for k, v in by_stage.items()}
    return out


class InsideCalls:
    """CPU seconds spent inside the calls of a wrapped function, summed over the threads
    that made them."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self._lock = threading.Lock()

    def wrap(self, fn: Callable[..., T]) -> Callable[..., T]:
        def timed(*args: Any, **kwargs: Any) -> T:
            t = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - t
                with self._lock:
                    self.cpu_s += spent

        return timed


def task_cpu() -> dict[int, float] | None:
    """CPU seconds of each thread of this process by thread id (Linux ``/proc``; else None)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[int, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


class ThreadCpu:
    """Where a pipeline run's CPU went, by thread, from its start to :meth:`split`.

    Threads that existed before the run (other than the calling one) are the model runtime's
    own (OpenVINO's streams, TensorFlow's pools); threads that started during the run and
    are still alive at the end are the encoder's (x264's); the pipeline's capture and
    inference threads are gone by then and are counted through their calls.
    """

    def __init__(self) -> None:
        self._main = threading.get_native_id()
        self._t_main, self._t_all = time.thread_time(), time.process_time()
        self._before = task_cpu()

    def split(self, decode_s: float, detect_s: float) -> dict[str, float] | None:
        """CPU seconds: ``decode`` (the source's reads), ``detect_calls`` (the inference
        threads inside ``detect``), ``runtime_threads``, ``render`` (the calling thread:
        drawing, sinks, waiting on results), ``encoder_threads`` and ``other`` (the rest:
        the pipeline's own hand-offs, threads that came and went)."""
        after, before = task_cpu(), self._before
        if after is None or before is None:
            return None
        total = time.process_time() - self._t_all
        render = time.thread_time() - self._t_main
        runtime = sum(after[t] - before[t] for t in after if t in before and t != self._main)
        encoder = sum(cpu for t, cpu in after.items() if t not in before)
        parts = {
            "decode": decode_s,
            "detect_calls": detect_s,
            "runtime_threads": max(0.0, runtime),
            "render": render,
            "encoder_threads": encoder,
        }
        parts["other"] = max(0.0, total - sum(parts.values()))
        return parts
