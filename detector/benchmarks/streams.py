"""Many cameras on one machine: N paced live sources into one run with one model, per backend.

Each source is the sample video's real frames delivered at 10 fps like a camera (keep the
newest frame, count what is dropped), each with the app's own pipeline and render stage and
JSON lines. A trial is run the way a run with N live ``--source`` runs them: the model loaded
once for N callers (``ModelOptions.sharing``, as the local engine loads it) and every source
on a thread of :func:`detector.pipeline.many.run_jobs`. A trial holds when every source keeps
at least ``KEEP`` of its frames and its p95 capture-to-output latency stays within ``P95_MS``;
the section reports the largest N that holds, and the whole process's CPU-ms per frame out
of each trial. For the openvino backend it also times batches of 1, 2 and 4 frames through
OpenVINO's ``AsyncInferQueue`` (2 jobs in flight; frames/s and CPU-ms a frame), the way
requests from several sources could be grouped. Each backend runs in a worker process of its
own (``streams_worker``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.benchmarks.media import decode_frames
from detector.benchmarks.paced import PACED_URI, Pace, paced_run
from detector.benchmarks.parts import Outputs, engine, labels_for
from detector.config import DEFAULT_THRESHOLD
from detector.draw import DrawStyle, annotate
from detector.model.backends.extra import require
from detector.model.backends.ircache import gated_rest_precision
from detector.model.backends.openvino import compile_config, read_network
from detector.model.options import ModelOptions, load_with
from detector.pipeline.many import OK, run_jobs
from detector.types import Frame, FrameResult

FPS = 10.0
KEEP = 0.95
P95_MS = 200.0

#: ``load(n)``: the engine of a model loaded for ``n`` sources (a context manager).
Loader = Callable[[int], AbstractContextManager[Any]]


def trial(
    frames: Sequence[np.ndarray], detect: Any, labels: Any, n: int, seconds: float, out: Path
) -> dict[str, Any]:
    """``n`` paced sources at ``FPS`` for ``seconds`` on ``run_jobs``' threads, one pipeline
    each, sharing ``detect``."""

    count = int(FPS * seconds)

    def one(i: int, halt: threading.Event) -> dict[str, Any]:
        k = i * 7 % len(frames)  # each camera starts elsewhere in the footage
        pace = Pace(list(frames[k:]) + list(frames[:k]), detect, labels, FPS, count, int(FPS))
        run = paced_run(pace, out / f"cam{i}")
        return {
            "kept": run.stats.frames_processed / count,
            "dropped": run.stats.frames_dropped,
            "frames": run.stats.frames_processed,
            **run.latency(),
        }

    jobs = [(f"cam{i}", True, functools.partial(one, i)) for i in range(n)]
    cpu0, load0 = time.process_time(), _load_1m()
    outcomes = run_jobs(jobs, threading.Event())
    cpu_s = time.process_time() - cpu0
    shutil.rmtree(out, ignore_errors=True)
    per = [o.result if o.status == OK and o.result else {} for o in outcomes]
    kept = min((p.get("kept", 0.0) for p in per), default=0.0)
    p95 = max((p.get("latency_ms_p95", float("inf")) for p in per), default=float("inf"))
    frames_out = sum(p.get("frames", 0) for p in per)
    return {
        "sources": n,
        "kept_min": kept,
        "latency_ms_p95_max": p95,
        "held": kept >= KEEP and p95 <= P95_MS,
        "cpu_ms_per_frame": cpu_s * 1e3 / frames_out if frames_out else None,
        "load_avg_1m": [load0, _load_1m()],
    }


def _load_1m() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def largest_n(
    frames: Sequence[np.ndarray], load: Loader, labels: Any, seconds: float, max_n: int
) -> dict[str, Any]:
    """Double N while it holds, then bisect between the last N that held and the first failing;
    each trial with the model loaded anew for its N sources (``load``)."""
    tmp = Path(tempfile.mkdtemp(prefix="detector-bench-streams-"))
    trials: dict[int, dict[str, Any]] = {}

    def run(n: int) -> bool:
        with load(n) as detect:
            trials[n] = trial(frames, detect, labels, n, seconds, tmp / f"n{n}")
        return bool(trials[n]["held"])

    good, bad = 0, max_n + 1
    n = 1
    while n <= max_n and run(n):
        good, n = n, n * 2
    bad = min(bad, n)
    while bad - good > 1 and good < max_n:
        mid = (good + bad) // 2
        if mid in trials:
            break
        if run(mid):
            good = mid
        else:
            bad = mid
    shutil.rmtree(tmp, ignore_errors=True)
    return {"largest_n": good, "trials": {str(k): v for k, v in sorted(trials.items())}}


def cpu_parts(
    frames: Sequence[np.ndarray], detect: Any, labels: Any, out: Path, count: int = 60
) -> dict[str, float]:
    """Where a frame's CPU goes, one part at a time on this thread (the process's CPU-ms a
    frame, helper threads such as the encoder's included): the engine (BGR→RGB, resize, the
    network, post-processing), drawing + HUD, and the render stage with its outputs (drawing,
    H.264, JSON lines)."""
    found = [detect(Frame(i, 0.0, f))[0] for i, f in enumerate(frames[:count])]

    def cpu_ms(fn: Callable[[int], Any]) -> float:
        t = time.process_time()
        for i in range(count):
            fn(i % len(found))
        return (time.process_time() - t) * 1e3 / count

    def frame(i: int) -> Frame:
        return Frame(i, 0.0, frames[i].copy())

    parts = {"engine": cpu_ms(lambda i: detect(frame(i)))}
    style = DrawStyle()
    parts["draw"] = cpu_ms(lambda i: annotate(frame(i).image, found[i], labels, style, fresh=True))
    with Outputs(out, FPS, labels, PACED_URI) as outs:
        parts["render_and_outputs"] = cpu_ms(
            lambda i: outs.consume(FrameResult(frame(i), found[i], True, i, 1.0))
        )
    shutil.rmtree(out, ignore_errors=True)
    return parts


def batch_throughput(
    model: Any, frames: Sequence[np.ndarray], count: int, rounds: int = 3
) -> dict[str, Any]:
    """The openvino network alone at batch 1, 2 and 4 through ``AsyncInferQueue`` (2 jobs in
    flight on 2 streams of 1 thread, as the pipeline's two callers run it): frames/s and the
    process's CPU-ms a frame, medians of ``rounds`` rounds that take the batches in turn (a
    noisy neighbour slows every batch alike)."""

    ov = require("openvino")
    core = ov.Core()
    h, w = model.input_size
    rgb = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2RGB), (w, h)) for f in frames[:8]]
    rest = gated_rest_precision(model.ir) if model.precision == "int8" else None
    config = compile_config(model.precision, 2, 1, rest)
    queues: dict[int, tuple[Any, np.ndarray]] = {}
    for batch in (1, 2, 4):
        net = read_network(core, model.ir)
        net.reshape({net.inputs[0]: [batch, h, w, 3]})
        queue = ov.AsyncInferQueue(core.compile_model(net, "CPU", config), 2)
        queues[batch] = queue, np.stack([rgb[i % len(rgb)] for i in range(batch)])
    runs: dict[int, list[tuple[float, float]]] = {b: [] for b in queues}
    for _ in range(max(1, rounds)):
        for batch, (queue, data) in queues.items():
            runs[batch].append(_queue_rate(queue, data, max(1, count // batch)))
    out: dict[str, Any] = {}
    for batch, figures in runs.items():
        out[str(batch)] = float(np.median([fps for fps, _ in figures]))
        out[f"cpu_ms_{batch}"] = float(np.median([ms for _, ms in figures]))
    out["best"] = max((1, 2, 4), key=lambda b: out[str(b)])
    return out


def _queue_rate(queue: Any, data: np.ndarray, jobs: int) -> tuple[float, float]:
    """Frames/s and CPU-ms a frame of ``jobs`` calls on ``data`` (after two to warm up)."""
    for _ in range(2):
        queue.start_async({0: data})
    queue.wait_all()
    t, cpu = time.perf_counter(), time.process_time()
    for _ in range(jobs):
        queue.start_async({0: data})
    queue.wait_all()
    frames = jobs * len(data)
    return frames / (time.perf_counter() - t), (time.process_time() - cpu) * 1e3 / frames


def streams_worker(
    backend: str,
    model: str,
    video: str,
    labels: str | None = None,
    seconds: float = 8.0,
    max_n: int = 32,
    threshold: float = DEFAULT_THRESHOLD,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """Worker task: one backend's many-camera trials (and its batch figures on openvino)."""

    frames = decode_frames(Path(video), 60)
    height, width = frames[0].shape[:2]
    label_map = labels_for(Path(labels) if labels else None)
    options = ModelOptions(
        Path(model), backend=backend, device="cpu", cache_dir=Path(cache_dir) if cache_dir else None
    )
    seen: dict[str, Any] = {}

    @contextlib.contextmanager
    def load(n: int) -> Iterator[Any]:
        with load_with(options.sharing(n)) as loaded:  # as a run with n live sources loads it
            loaded.warm_up(width, height, runs=2)
            seen.update(backend=getattr(loaded, "backend", "tf"), precision=loaded.precision)
            detect = engine(loaded, threshold)
            yield detect
            if "cpu_parts" not in seen:
                where = Path(tempfile.mkdtemp(prefix="detector-bench-parts-"))
                seen["cpu_parts"] = cpu_parts(frames, detect, label_map, where)
            if seen["backend"] == "openvino" and "batch_fps" not in seen:
                seen["batch_fps"] = batch_throughput(loaded, frames, 120)

    out = largest_n(frames, load, label_map, seconds, max_n)
    return out | seen
