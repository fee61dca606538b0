"""Many cameras on one machine: N paced live sources into one run with one model, per backend.

Each source is the sample video's real frames delivered at 10 fps like a camera (keep the
newest frame, count what is dropped), each with the app's own pipeline and render stage and
JSON lines; all share one loaded model, as a run with several ``--source`` does. A trial
holds when every source keeps at least ``KEEP`` of its frames and its p95 capture-to-output
latency stays within ``P95_MS``; the section reports the largest N that holds. For the
openvino backend it also times batches of 1, 2 and 4 frames through OpenVINO's
``AsyncInferQueue`` (2 jobs in flight), the way requests from several sources could be
grouped. Run per backend in a process of its own:
``python -m detector.benchmarks.streams --backend auto --model M --video V``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detector.benchmarks.system import percentile

FPS = 10.0
KEEP = 0.95
P95_MS = 200.0


def trial(
    frames: Sequence[np.ndarray], detect: Any, labels: Any, n: int, seconds: float, out: Path
) -> dict[str, Any]:
    """``n`` paced sources at ``FPS`` for ``seconds``, one pipeline each, sharing ``detect``."""
    from detector.benchmarks.parts import Outputs
    from detector.pipeline.stages import PipelineOptions, run_pipeline
    from detector.sources.base import PacedSource
    from detector.sources.memory import FrameListSource

    count = int(FPS * seconds)
    warm = int(FPS)  # the first second: queues filling, first calls
    per: list[dict[str, Any]] = [{} for _ in range(n)]

    def one(i: int) -> None:
        shifted = list(frames[i * 7 % len(frames) :]) + list(frames[: i * 7 % len(frames)])
        source = PacedSource(FrameListSource(shifted, count, FPS, f"paced://cam{i}"), FPS)
        lat: list[float] = []

        def on_output(result: Any) -> None:
            k = result.frame.index
            if warm <= k < len(source.due):
                lat.append((time.monotonic() - source.due[k]) * 1e3)

        with Outputs(
            out / f"cam{i}", FPS, labels, source.info.uri, video=False, on_output=on_output
        ) as outs:
            stats = run_pipeline(source, detect, outs.consume, PipelineOptions(max_frames=count))
        per[i] = {
            "kept": stats.frames_processed / count,
            "dropped": stats.frames_dropped,
            "latency_ms_p95": percentile(lat, 95),
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
    import cv2

    from detector.model.backends.extra import require

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


def main(argv: Sequence[str] | None = None) -> int:
    """Child entry: one backend's streams figures as one JSON line."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m detector.benchmarks.streams")
    p.add_argument("--backend", required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--labels", type=Path)
    p.add_argument("--video", type=Path, required=True)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--max-n", type=int, default=32)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--cache-dir", type=Path)
    a = p.parse_args(argv)
    from detector.benchmarks.media import decode_frames
    from detector.benchmarks.parts import ModelSettings, engine, labels_for
    from detector.model.backends import load_backend_model

    frames = decode_frames(a.video, 60)
    model = load_backend_model(a.backend, a.model, workers=2, device="cpu", cache_dir=a.cache_dir)
    try:
        model.warm_up(frames[0].shape[1], frames[0].shape[0], runs=2)
        settings = ModelSettings(path=a.model, labels=a.labels, threshold=a.threshold)
        out = largest_n(frames, engine(model, settings), labels_for(settings), a.seconds, a.max_n)
        out["backend"] = getattr(model, "backend", "tf")
        out["precision"] = model.precision
        if out["backend"] == "openvino":
            out["batch_fps"] = batch_throughput(model, frames, 120)
    finally:
        model.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
