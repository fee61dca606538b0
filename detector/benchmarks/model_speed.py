"""The model alone: our TF session on pre-decoded frames, and TFLite's interpreter on the original.

Both are timed per frame on the same real frames. The session is fed the full-size RGB
frame (resize and normalisation are inside the graph); TFLite is given what a user of it
must do per frame: BGR→RGB, resize to the model's input, ``invoke``, read the outputs.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.benchmarks.media import decode_frames
from detector.benchmarks.parts import rgb_batch
from detector.benchmarks.system import Span, median_run, rate, warm_frames
from detector.benchmarks.worker import run_in_worker
from detector.model.loader import load_model
from detector.tflite.reference import TfliteReference

log = logging.getLogger(__name__)


def latency_ms(fn: Any, inputs: Sequence[Any], warmup: int, repeats: int) -> dict[str, float]:
    """Median and p90 per-call wall ms of ``fn(x)`` over ``inputs``, plus throughput numbers."""
    for x in inputs[:warmup]:
        fn(x)
    runs, calls = [], []
    for _ in range(max(1, repeats)):
        span = Span().start()
        for x in inputs[warmup:]:
            t = time.perf_counter()
            fn(x)
            calls.append((time.perf_counter() - t) * 1e3)
        runs.append(rate(len(inputs) - warmup, span.stop()))
    out = median_run(runs)
    out["latency_ms_p50"] = statistics.median(calls)
    out["latency_ms_p90"] = sorted(calls)[int(0.9 * (len(calls) - 1))]
    return out


def bare_model(
    model: Any, frames_rgb: Sequence[np.ndarray], warmup: int, repeats: int
) -> dict[str, float]:
    """``model.predict`` (one ``Session.run``) per pre-decoded, pre-converted frame."""
    return latency_ms(model.predict, frames_rgb, warmup, repeats)


def bare_model_streams(
    model: Any, frames_rgb: Sequence[np.ndarray], streams: int, warmup: int
) -> dict[str, float]:
    """Throughput with ``streams`` threads calling ``predict`` on the same model at once."""
    for x in frames_rgb[:warmup]:
        model.predict(x)
    todo = list(frames_rgb[warmup:])
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not todo:
                    return
                x = todo.pop()
            model.predict(x)

    n = len(todo)
    span = Span().start()
    threads = [threading.Thread(target=work, daemon=True) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return rate(n, span.stop())


def tflite(
    path: Path, frames_bgr: Sequence[np.ndarray], threads: int, warmup: int, repeats: int
) -> dict[str, float]:
    """TFLite per-frame cost with pre-processing, and ``invoke`` alone, at ``threads``."""

    runner = TfliteReference(path, threads)
    out = latency_ms(
        lambda bgr: runner(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), frames_bgr, warmup, repeats
    )
    inv = latency_ms(runner.invoke_only, frames_bgr, warmup, repeats)
    out["invoke_ms_p50"] = inv["latency_ms_p50"]
    out["threads"] = threads
    return out


def session_latency_subprocess(
    model: Path,
    video: Path,
    frames: int,
    warmup: int,
    repeats: int,
    intra: int,
    inter: int,
    precision: str = "auto",
    timeout_s: float = 900.0,
) -> dict[str, Any]:
    """``bare_model`` in a fresh process with the given thread pools and precision.

    TensorFlow sizes its CPU thread pools once per process, from the first session's
    options, so comparing thread counts needs one process each.
    """
    out = run_in_worker(
        session_worker,
        timeout_s,
        model=model,
        video=video,
        frames=frames,
        warmup=warmup,
        repeats=repeats,
        intra=intra,
        inter=inter,
        precision=precision,
    )
    if "error" in out:
        log.warning("model latency subprocess failed: %s", out["error"])
        return out
    out.update(intra_op_threads=intra, inter_op_threads=inter)
    return out


def session_worker(
    model: str,
    video: str,
    frames: int,
    warmup: int,
    repeats: int,
    intra: int,
    inter: int,
    precision: str,
) -> dict[str, Any]:
    """Worker task: ``bare_model`` numbers for one session configuration."""

    rgb = [rgb_batch(f) for f in decode_frames(Path(video), frames)]
    with load_model(
        model,
        device="cpu",
        intra_op_threads=intra,
        inter_op_threads=inter,
        precision=precision,
    ) as loaded:
        out: dict[str, Any] = bare_model(loaded, rgb, warm_frames(warmup, len(rgb)), repeats)
        out["precision"] = getattr(loaded, "precision", precision)
    return out
