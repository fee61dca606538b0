"""One backend configuration measured in a process of its own (the backends section's child).

``python -m detector.benchmarks.backend_child --backend B --precision P --mode M ...`` prints
one JSON line: ``startup`` (process start to the first detection, and whether TensorFlow got
imported), ``workers`` (the bare model with 1 caller and 2 in flight, the post-processing's
ms a frame, the pipeline end to end), ``threads2`` (one caller, 2 threads) or ``rss`` (the
pipeline with its outputs over many frames, then the process's resident memory).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.benchmarks.system import Span, median_run, rate


def _bgr_to_rgb_batch(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[np.newaxis]


def single(
    fn: Callable[[np.ndarray], Any], frames: Sequence[np.ndarray], warmup: int, repeats: int
) -> dict[str, Any]:
    """One caller: p50 ms per frame and frames/s of ``fn(frame)`` over ``frames``."""
    from detector.benchmarks.model_speed import latency_ms

    return dict(latency_ms(fn, frames, warmup, repeats))


def in_flight(
    fns: Sequence[Callable[[np.ndarray], Any]],
    frames: Sequence[np.ndarray],
    warmup: int,
    repeats: int,
) -> dict[str, Any]:
    """``len(fns)`` callers at once (one thread each), sharing the frames: frames/s."""
    for fn in fns:
        for f in frames[:warmup]:
            fn(f)
    runs = [_one_flight(fns, list(frames[warmup:])) for _ in range(max(1, repeats))]
    return median_run(runs)


def _one_flight(
    fns: Sequence[Callable[[np.ndarray], Any]], todo: list[np.ndarray]
) -> dict[str, Any]:
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(fn: Callable[[np.ndarray], Any]) -> None:
        try:
            while True:
                with lock:
                    if not todo:
                        return
                    f = todo.pop()
                fn(f)
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    n = len(todo)
    span = Span().start()
    threads = [threading.Thread(target=work, args=(fn,), daemon=True) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    result = rate(n, span.stop())
    if errors:
        raise errors[0]
    return result


# ------------------------------------------------------------------ one configuration (child)


def _load(
    backend: str, precision: str, model: Path, workers: int, threads: int, cache_dir: Path
) -> Any:
    from detector.model.backends import load_backend_model

    return load_backend_model(
        backend,
        model,
        workers=workers,
        device="cpu",
        intra_op_threads=threads,
        inter_op_threads=-1,
        precision=precision,
        cache_dir=cache_dir,
    )


def measure(a: Any, t0: float) -> dict[str, Any]:
    """One backend configuration in this process (``a``: the parsed child arguments)."""
    from detector.benchmarks.media import decode_frames

    model = _load(a.backend, a.precision, a.model, a.workers, a.threads, a.cache_dir)
    frames = decode_frames(a.video, a.frames)
    model.warm_up(frames[0].shape[1], frames[0].shape[0], runs=2)
    out: dict[str, Any] = {
        "startup_s": time.perf_counter() - t0,
        "load_s": getattr(model, "load_s", None),
        "precision_used": getattr(model, "precision", None),
        "converted": getattr(model, "converted", None),
        "compile_s": getattr(model, "compile_s", None),
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }
    choice = getattr(model, "backend_choice", None)
    if choice is not None:
        out["choice"] = choice.to_dict()
    try:
        if a.mode == "startup":
            return out
        if a.mode == "rss":
            return out | _rss(model, frames, a)
        warm = min(a.warmup, max(1, len(frames) // 4))
        post_ms: list[float] = []

        def fn(bgr: np.ndarray) -> Any:
            result = model.predict(_bgr_to_rgb_batch(bgr))
            if hasattr(model, "post_ms"):
                post_ms.append(model.post_ms)
            return result

        if a.mode == "threads2":
            out["bare_2_threads"] = single(fn, frames, warm, a.repeats)
            return out
        out["bare_1_thread"] = single(fn, frames, warm, a.repeats)
        if post_ms:
            out["post_ms_mean"] = float(np.mean(post_ms[warm:] or post_ms))
        out["in_flight_2"] = in_flight([fn, fn], frames, warm, a.repeats)
        out["pipeline"] = _pipeline(model, a, warm)
        if a.photos is not None:
            from detector.model.backends.parity import detect_all
            from detector.model.backends.quantize import read_images

            found = detect_all(model, read_images(a.photos), a.threshold)
            out["photos"] = [f.to_dict() for f in found]
        return out
    finally:
        model.close()


def _pipeline(model: Any, a: Any, warm: int) -> dict[str, Any]:
    from detector.benchmarks import media, throughput
    from detector.benchmarks.parts import ModelSettings, engine, labels_for

    settings = ModelSettings(path=a.model, labels=a.labels, threshold=a.threshold)
    video = media.probe(a.video, None)
    tmp = Path(tempfile.mkdtemp(prefix="detector-bench-backend-"))
    runs = []
    try:
        for r in range(max(1, a.repeats)):
            runs.append(
                throughput.pipeline_run(
                    video,
                    engine(model, settings),
                    labels_for(settings),
                    a.frames,
                    warm,
                    tmp / f"pipe{r}",
                    workers=a.workers,
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return median_run(runs)


def _rss(model: Any, frames: list[np.ndarray], a: Any) -> dict[str, Any]:
    """RSS after ``a.rss_frames`` frames of the pipeline with its outputs (video + JSON lines)."""
    from detector.benchmarks.memory import memory_growth
    from detector.benchmarks.parts import ModelSettings, engine, labels_for

    settings = ModelSettings(path=a.model, labels=a.labels, threshold=a.threshold)
    tmp = Path(tempfile.mkdtemp(prefix="detector-bench-rss-"))
    first = min(100, a.rss_frames)
    out = memory_growth(
        frames,
        engine(model, settings),
        labels_for(settings),
        10.0,
        first,
        a.rss_frames,
        a.workers,
        tmp / "out",
    )
    return {"rss": out, "tensorflow_loaded": "tensorflow" in sys.modules}


def main(argv: Sequence[str] | None = None) -> int:
    """Child entry: measure one backend configuration and print it as one JSON line."""
    import argparse
    import json

    t0 = time.perf_counter()
    p = argparse.ArgumentParser(prog="python -m detector.benchmarks.backend_child")
    p.add_argument("--backend", required=True)
    p.add_argument("--precision", required=True)
    p.add_argument("--mode", choices=("workers", "threads2", "startup", "rss"), required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--labels", type=Path)
    p.add_argument("--video", type=Path, required=True)
    p.add_argument("--photos", type=Path)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--cache-dir", type=Path, required=True)
    p.add_argument("--rss-frames", type=int, default=1000)
    a = p.parse_args(argv)
    if a.mode == "threads2":
        a.workers, a.threads = 1, 2
    print(json.dumps(measure(a, t0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
