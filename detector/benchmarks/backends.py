"""The backend column: the default (``backend: auto``) and TF beside OpenVINO fp32 / bf16 / int8.

For each backend, in a fresh process per configuration (TensorFlow sizes its thread pools
once per process): the bare model on real frames with 1 thread, with 2 threads, and with
2 frames in flight (two callers, one thread each: the pipeline's two workers), then the
pipeline end to end on the sample video (2 workers, annotated video + JSON lines, with
where its CPU goes), every row's process alive at once and taking turns run by run, tf
between every two other rows, so each ratio to tf comes from the same seconds; the
process's start-up (imports, load, first detection) is timed too, and for OpenVINO once
with an empty cache (conversion + compile) and once with a warm one. Every bare-model
figure includes BGR→RGB and the resize to the network's input, as a user of any runtime
pays them. Parity: each backend's detections on the sample photos against the TF graph in
float32 (matched ≥ 95%, same class, IoU ≥ 0.5). The peer, LiteRT + XNNPACK on the original
uint8 ``.tflite``, is measured the same way in the same run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.benchmarks import fastpath
from detector.benchmarks.backend_pipeline import (
    PIPELINE_ROUNDS_PER_REPEAT,
    load_row_model,
    paired_pipelines,
)
from detector.benchmarks.backends_report import goals
from detector.benchmarks.media import decode_frames
from detector.benchmarks.memory import pipeline_rss
from detector.benchmarks.model_speed import latency_ms
from detector.benchmarks.system import Span, median_run, rate, warm_frames
from detector.benchmarks.worker import run_in_worker
from detector.config import DEFAULT_THRESHOLD
from detector.errors import DetectorError
from detector.model.backends import openvino_available
from detector.model.backends.ircache import cache_root, int8_report_path, ir_path
from detector.model.backends.openvino import prepare_graph
from detector.model.backends.parity import Found, compare_found, detect_all
from detector.model.backends.quantize import QuantizationRefused, quantize, read_images
from detector.model.loader import load_model
from detector.tflite.reference import TfliteReference

log = logging.getLogger(__name__)

#: Decoded frames the memory run holds and cycles (300 at 576p would add 400 MB to its RSS).
RSS_HELD_FRAMES = 50
#: (row name, backend, precision): the TF row is the app's default session (auto precision).
ROWS = (
    ("tf", "tf", "auto"),
    ("default", "auto", "auto"),
    ("openvino fp32", "openvino", "fp32"),
    ("openvino bf16", "openvino", "bf16"),
    ("openvino int8", "openvino", "int8"),
)


def _bgr_to_rgb_batch(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[np.newaxis]


def single(
    fn: Callable[[np.ndarray], Any], frames: Sequence[np.ndarray], warmup: int, repeats: int
) -> dict[str, Any]:
    """One caller: p50 ms per frame and frames/s of ``fn(frame)`` over ``frames``."""

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


def measure(a: BackendRun) -> dict[str, Any]:
    """One backend configuration in this process."""
    t0 = time.perf_counter()

    model = load_row_model(a.backend, a.precision, a.model, a.workers, a.threads, a.cache_dir)
    # the memory run cycles a few frames: the bench's own decoded frames stay out of its RSS
    frames = decode_frames(a.video, RSS_HELD_FRAMES if a.mode == "rss" else a.frames)
    model.warm_up(frames[0].shape[1], frames[0].shape[0], runs=2)
    out: dict[str, Any] = {
        "startup_s": time.perf_counter() - t0,
        "load_s": getattr(model, "load_s", None),
        "precision_used": getattr(model, "precision", None),
        "converted": getattr(model, "converted", None),
        "compile_s": getattr(model, "compile_s", None),
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }
    if getattr(model, "backend_choice", None) is not None:
        out["choice"] = model.backend_choice.to_dict()
    try:
        if a.mode == "startup":
            return out
        if a.mode == "rss":
            return out | pipeline_rss(model, frames, a.labels, a.rss_frames, a.workers)
        warm = warm_frames(a.warmup, len(frames))
        post_ms: list[float] = []

        def fn(bgr: np.ndarray) -> Any:
            result = model.predict(_bgr_to_rgb_batch(bgr))
            post_ms.append(getattr(model, "post_ms", float("nan")))
            return result

        if a.mode == "threads2":
            out["bare_2_threads"] = single(fn, frames, warm, a.repeats)
            return out
        out["bare_1_thread"] = single(fn, frames, warm, a.repeats)
        out["post_ms_mean"] = float(np.mean(post_ms[warm:] or post_ms))
        out["in_flight_2"] = in_flight([fn, fn], frames, warm, a.repeats)
        if a.photos is not None:
            found = detect_all(model, read_images(a.photos), a.threshold)
            out["photos"] = [f.to_dict() for f in found]
        return out
    finally:
        model.close()


@dataclass(frozen=True)
class BackendRun:
    """One backend configuration measured in a worker process (``mode``: what to time)."""

    backend: str
    precision: str
    mode: str  # "workers" | "threads2" | "startup" | "rss"
    model: Path
    video: Path
    cache_dir: Path
    labels: Path | None = None
    photos: Path | None = None
    frames: int = 60
    warmup: int = 10
    repeats: int = 1
    workers: int = 2
    threads: int = 1
    threshold: float = DEFAULT_THRESHOLD
    rss_frames: int = 1000


def backend_worker(**kwargs: Any) -> dict[str, Any]:
    """Worker task: measure one backend configuration (``BackendRun`` fields as JSON values)."""
    paths = {k: Path(v) for k, v in kwargs.items() if k in _PATHS and v is not None}
    run = BackendRun(**(kwargs | paths))
    if run.mode == "threads2":
        run = replace(run, workers=1, threads=2)
    return measure(run)


_PATHS = ("model", "video", "cache_dir", "labels", "photos")


# ------------------------------------------------------------------ the section (parent)


def _child(timeout_s: float, **kwargs: Any) -> dict[str, Any]:
    t = time.perf_counter()
    out = run_in_worker(backend_worker, timeout_s, **kwargs)
    out["process_s"] = time.perf_counter() - t
    return out


def _ensure_int8(
    model: Path,
    video: Path,
    photos: Path | None,
    cache_dir: Path,
    frames: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """A quantized model that passed the gate in ``cache_dir`` (made here when missing)."""

    prep = prepare_graph(model)
    report = int8_report_path(ir_path(cache_root(prep.path, cache_dir), prep, "int8"))
    if report.is_file():
        doc: dict[str, Any] = json.loads(report.read_text())
        return {"made": False, **doc}
    if photos is None:
        return {"error": "no held-apart photos for the int8 gate"}
    progress(f"backends: quantizing to int8 ({frames} calibration frames of {video.name})")
    try:
        result = quantize(model, video, photos, frames=frames, cache_dir=cache_dir)
    except QuantizationRefused as exc:
        return {"refused": True, "error": exc.message, "parity": exc.report.to_dict()}
    except DetectorError as exc:
        return {"error": str(exc)}
    return {
        "made": True,
        "quantize_s": result.quantize_s,
        "calibration_frames": result.calibration_frames,
        "parity": result.parity.to_dict(),
    }


def _peer(
    tflite: Path | None, video: Path, frames: int, warmup: int, repeats: int
) -> dict[str, Any]:
    """LiteRT + XNNPACK on the original ``.tflite``: 1 thread, 2 threads, 2 in flight."""
    if tflite is None or not Path(tflite).exists():
        return {"error": f"no .tflite at {tflite}"}

    bgr = decode_frames(video, frames)
    warm = warm_frames(warmup, len(bgr))
    one, two = TfliteReference(tflite, 1), TfliteReference(tflite, 1)

    def runner(r: TfliteReference) -> Callable[[np.ndarray], Any]:
        return lambda f: r(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))

    out: dict[str, Any] = {
        "bare_1_thread": single(runner(one), bgr, warm, repeats),
        "in_flight_2": in_flight([runner(one), runner(two)], bgr, warm, repeats),
    }
    both = TfliteReference(tflite, 2)
    out["bare_2_threads"] = single(runner(both), bgr, warm, repeats)
    return out


def backend_rows(
    model: Path,
    labels: Path | None,
    video: Path,
    photos: Path | None,
    tflite: Path | None,
    *,
    frames: int,
    warmup: int,
    repeats: int,
    cache_dir: Path,
    calibration_frames: int = 300,
    threshold: float = DEFAULT_THRESHOLD,
    progress: Callable[[str], None] = lambda m: log.info("bench: %s", m),
    only: Sequence[str] | None = None,
    rss_frames: int = 1000,
    streams_seconds: float = 8.0,
    ray_rounds: int = 2,
) -> dict[str, Any]:
    """The backend section: every row's numbers, parity, start-up, memory, post-processing,
    the many-camera line, the Ray engine's fixed cost per backend and the goals.

    ``only`` names the rows to measure (default: all of ``ROWS``); ``streams_seconds`` 0
    leaves the many-camera trials out, ``ray_rounds`` 0 the Ray runs.
    """

    t_start = time.perf_counter()
    cache = Path(cache_dir) / "openvino"
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"rows": {}, "frames": frames, "repeats": repeats}
    rows = _rows_to_measure(out, only)
    if any(r[2] == "int8" for r in rows):
        out["int8"] = _ensure_int8(model, video, photos, cache, calibration_frames, progress)
        if "error" in out["int8"]:
            rows = [r for r in rows if r[2] != "int8"]
    common: dict[str, Any] = {
        "model": model,
        "video": video,
        "frames": frames,
        "warmup": warmup,
        "repeats": 1,
        "threshold": threshold,
        "labels": labels,
    }
    runs = _interleaved(rows, common, cache, photos, repeats, progress)
    reference = _reference(model, photos, threshold) if photos is not None else None
    for name, backend, precision in rows:
        out["rows"][name] = _row(runs[name], reference, threshold)
        out["rows"][name].update(backend=backend, precision=precision)
    rounds = PIPELINE_ROUNDS_PER_REPEAT * max(1, repeats)
    cached = dict(common, cache_dir=cache)
    for name, pipe in paired_pipelines(rows, cached, rounds, progress).items():
        out["rows"][name]["pipeline"] = pipe
    out["startup"] = _startup(model, video, cache, common, rows, progress)
    fastpath.add_figures(out, rows, cached, rss_frames, progress, backend_worker)
    ray_photos = photos if ray_rounds > 0 else None
    fastpath.add_fast_path(out, cached, streams_seconds, progress, ray_photos, ray_rounds)
    progress("backends: LiteRT peer")
    out["peer_litert"] = _peer(tflite, video, frames, warmup, repeats)
    out["goals"] = goals(out)
    out["load_avg_1m_end"] = _loadavg()
    out["elapsed_s"] = time.perf_counter() - t_start
    return out


def _rows_to_measure(out: dict[str, Any], only: Sequence[str] | None) -> list[tuple[str, str, str]]:
    """``ROWS`` named in ``only`` (all when empty), the openvino ones only when installed
    (else a note in ``out`` says so)."""
    if not openvino_available():
        out["note"] = "openvino not installed: bash .ci/setup installs the extra"
    return [
        r for r in ROWS if (r[1] == "tf" or openvino_available()) and (not only or r[0] in only)
    ]


def _interleaved(
    rows: Sequence[tuple[str, str, str]],
    common: dict[str, Any],
    cache: Path,
    photos: Path | None,
    repeats: int,
    progress: Callable[[str], None],
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every row in both modes, a worker each, repeats interleaved (a noisy neighbour slows
    every row alike); the photos' detections are read on the first repeat."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name, _, _ in rows}
    for r in range(max(1, repeats)):
        for name, backend, precision in rows:
            for mode in ("workers", "threads2"):
                progress(f"backends: {name}, {mode} (repeat {r + 1}/{repeats})")
                args = dict(common, backend=backend, precision=precision, mode=mode)
                if mode == "workers" and r == 0 and photos is not None:
                    args["photos"] = photos
                runs[name].setdefault(mode, []).append(_child(1800.0, cache_dir=cache, **args))
    return runs


def _loadavg() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _reference(model: Path, photos: Path, threshold: float) -> list[Any]:
    """The TF graph in float32 on the photos: what every backend is compared with."""

    with load_model(model, device="cpu", precision="fp32") as ref:
        return detect_all(ref, read_images(photos), threshold)


def _row(
    modes: dict[str, list[dict[str, Any]]], reference: list[Any] | None, threshold: float
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    errors = [r["error"] for rs in modes.values() for r in rs if "error" in r]
    if errors:
        row["error"] = errors[0]
    ok = {m: [r for r in rs if "error" not in r] for m, rs in modes.items()}
    for mode, keys in (
        ("workers", ("bare_1_thread", "in_flight_2")),
        ("threads2", ("bare_2_threads",)),
    ):
        for key in keys:
            values = [r[key] for r in ok.get(mode, []) if key in r]
            if values:
                merged = median_run(values)
                lat = [v["latency_ms_p50"] for v in values if "latency_ms_p50" in v]
                if lat:
                    merged["latency_ms_p50"] = statistics.median(lat)
                row[key] = merged
    first = next((r for r in ok.get("workers", []) if "photos" in r), None)
    if first is not None and reference is not None:
        found = [Found.from_dict(d) for d in first["photos"]]
        report = compare_found(reference, found, threshold=threshold)
        row["parity"] = report.to_dict() | {"summary": report.summary()}
    starts = [r["startup_s"] for rs in ok.values() for r in rs if "startup_s" in r]
    if starts:
        row["startup_s_median"] = statistics.median(starts)
    return row


def _startup(
    model: Path,
    video: Path,
    cache: Path,
    common: dict[str, Any],
    rows: Sequence[tuple[str, str, str]],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Process start to first detection: TF, and OpenVINO with an empty then a warm cache."""
    out: dict[str, Any] = {}
    base = dict(common, mode="startup", frames=1)
    for key, backend in (("tf", "tf"), ("default", "auto")):
        progress(f"backends: start-up, {key}")
        out[key] = _child(600.0, **base, backend=backend, precision="auto", cache_dir=cache)
    if any(b == "openvino" for _, b, _ in rows):
        cold = Path(tempfile.mkdtemp(prefix="detector-ov-cold-"))
        try:
            for key in ("openvino_cold", "openvino_warm"):
                progress(f"backends: start-up, {key}")
                out[key] = _child(
                    600.0, **base, backend="openvino", precision="bf16", cache_dir=cold
                )
        finally:
            shutil.rmtree(cold, ignore_errors=True)
    return out
