"""Many cameras on one machine: N paced live sources into one run with one model, per backend.

Each source is the sample video's real frames delivered at 10 fps like a camera (keep the
newest frame, count what is dropped), each with the app's own pipeline and render stage and
JSON lines; all share one loaded model, as a run with several ``--source`` does. A trial
holds when every source keeps at least ``KEEP`` of its frames and its p95 capture-to-output
latency stays within ``P95_MS``; the section reports the largest N that holds. For the
openvino backend it also times batches of 1, 2 and 4 frames through OpenVINO's
``AsyncInferQueue`` (2 jobs in flight), the way requests from several sources could be
grouped. Each backend runs in a worker process of its own (``streams_worker``).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.benchmarks.media import decode_frames
from detector.benchmarks.paced import Pace, paced_run
from detector.benchmarks.parts import engine, labels_for
from detector.config import DEFAULT_THRESHOLD
from detector.model.backends import load_backend_model
from detector.model.backends.extra import require

FPS = 10.0
KEEP = 0.95
P95_MS = 200.0


def trial(
    frames: Sequence[np.ndarray], detect: Any, labels: Any, n: int, seconds: float, out: Path
) -> dict[str, Any]:
    """``n`` paced sources at ``FPS`` for ``seconds``, one pipeline each, sharing ``detect``."""

    count = int(FPS * seconds)
    per: list[dict[str, Any]] = [{} for _ in range(n)]

    def one(i: int) -> None:
        k = i * 7 % len(frames)  # each camera starts elsewhere in the footage
        pace = Pace(list(frames[k:]) + list(frames[:k]), detect, labels, FPS, count, int(FPS))
        run = paced_run(pace, out / f"cam{i}")
        per[i] = {
            "kept": run.stats.frames_processed / count,
            "dropped": run.stats.frames_dropped,
            **run.latency(),
        }

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds * 10 + 60)
    shutil.rmtree(out, ignore_errors=True)
    kept = min((p.get("kept", 0.0) for p in per), default=0.0)
    p95 = max((p.get("latency_ms_p95", float("inf")) for p in per), default=float("inf"))
    return {
        "sources": n,
        "kept_min": kept,
        "latency_ms_p95_max": p95,
        "held": kept >= KEEP and p95 <= P95_MS,
    }


def largest_n(
    frames: Sequence[np.ndarray], detect: Any, labels: Any, seconds: float, max_n: int
) -> dict[str, Any]:
    """Double N while it holds, then bisect between the last N that held and the first failing."""
    tmp = Path(tempfile.mkdtemp(prefix="detector-bench-streams-"))
    trials: dict[int, dict[str, Any]] = {}

    def run(n: int) -> bool:
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


def batch_throughput(model: Any, frames: Sequence[np.ndarray], count: int) -> dict[str, Any]:
    """Frames/s of the openvino network alone at batch 1, 2 and 4 (``AsyncInferQueue``, 2 jobs)."""

    ov = require("openvino")
    core = ov.Core()
    h, w = model.input_size
    rgb = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2RGB), (w, h)) for f in frames[:8]]
    out: dict[str, Any] = {}
    for batch in (1, 2, 4):
        net = core.read_model(str(model.ir))
        net.reshape({net.inputs[0]: [batch, h, w, 3]})
        hint = "bf16" if model.precision == "bf16" else "f32"
        compiled = core.compile_model(net, "CPU", {"INFERENCE_PRECISION_HINT": hint})
        queue = ov.AsyncInferQueue(compiled, 2)
        data = np.stack([rgb[i % len(rgb)] for i in range(batch)])
        for _ in range(2):
            queue.start_async({0: data})
        queue.wait_all()
        jobs = max(1, count // batch)
        t = time.perf_counter()
        for _ in range(jobs):
            queue.start_async({0: data})
        queue.wait_all()
        out[str(batch)] = jobs * batch / (time.perf_counter() - t)
    out["best"] = max((1, 2, 4), key=lambda b: out[str(b)])
    return out


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
    loaded = load_backend_model(backend, model, workers=2, device="cpu", cache_dir=cache_dir)
    try:
        loaded.warm_up(frames[0].shape[1], frames[0].shape[0], runs=2)
        label_map = labels_for(Path(labels) if labels else None)
        out = largest_n(frames, engine(loaded, threshold), label_map, seconds, max_n)
        out["backend"] = getattr(loaded, "backend", "tf")
        out["precision"] = loaded.precision
        if out["backend"] == "openvino":
            out["batch_fps"] = batch_throughput(loaded, frames, 120)
    finally:
        loaded.close()
    return out
