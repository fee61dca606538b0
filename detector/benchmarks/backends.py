"""The backend column: the default (``backend: auto``) and TF beside OpenVINO fp32 / bf16 / int8.

For each backend, in a fresh process per configuration (TensorFlow sizes its thread pools
once per process): the bare model on real frames with 1 thread, with 2 threads, and with
2 frames in flight (two callers, one thread each: the pipeline's two workers), then the
pipeline end to end on the sample video (2 workers, annotated video + JSON lines); the
process's start-up (imports, load, first detection) is timed too, and for OpenVINO once
with an empty cache (conversion + compile) and once with a warm one. Every bare-model
figure includes BGR→RGB and the resize to the network's input, as a user of any runtime
pays them. Parity: each backend's detections on the sample photos against the TF graph in
float32 (matched ≥ 95%, same class, IoU ≥ 0.5). The peer, LiteRT + XNNPACK on the original
uint8 ``.tflite``, is measured the same way in the same run.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.benchmarks.backend_child import in_flight, single
from detector.benchmarks.backends_report import format_backends, goals
from detector.benchmarks.system import median_run, run_json_subprocess

log = logging.getLogger(__name__)

#: (row name, backend, precision): the TF row is the app's default session (auto precision).
ROWS = (
    ("tf", "tf", "auto"),
    ("default", "auto", "auto"),
    ("openvino fp32", "openvino", "fp32"),
    ("openvino bf16", "openvino", "bf16"),
    ("openvino int8", "openvino", "int8"),
)
#: Rows whose memory after many frames is measured (a pipeline run each).
RSS_ROWS = ("tf", "default", "openvino int8")

__all__ = ["ROWS", "backend_rows", "format_backends", "goals"]


# ------------------------------------------------------------------ the section (parent)


def _child(args: list[str], timeout_s: float) -> dict[str, Any]:
    t = time.perf_counter()
    out = run_json_subprocess("detector.benchmarks.backend_child", args, timeout_s)
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
    from detector.errors import DetectorError
    from detector.model.backends.ircache import cache_root, int8_report_path, ir_path
    from detector.model.backends.openvino import prepare_graph
    from detector.model.backends.quantize import QuantizationRefused, quantize

    prep = prepare_graph(model)
    report = int8_report_path(ir_path(cache_root(prep.path, cache_dir), prep, "int8"))
    if report.is_file():
        import json

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
    from detector.benchmarks.media import decode_frames
    from detector.tflite.reference import TfliteReference

    bgr = decode_frames(video, frames)
    warm = min(warmup, max(1, len(bgr) // 4))
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
    threshold: float = 0.5,
    progress: Callable[[str], None] = lambda m: log.info("bench: %s", m),
    only: Sequence[str] | None = None,
    rss_frames: int = 1000,
    streams_seconds: float = 8.0,
) -> dict[str, Any]:
    """The backend section: every row's numbers, parity, start-up, memory, post-processing,
    the many-camera line and the goals.

    ``only`` names the rows to measure (default: all of ``ROWS``); ``streams_seconds`` 0
    leaves the many-camera trials out.
    """
    from detector.model.backends import openvino_available

    t_start = time.perf_counter()
    cache = Path(cache_dir) / "openvino"
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"rows": {}, "frames": frames, "repeats": repeats}
    rows = [
        r for r in ROWS if (r[1] == "tf" or openvino_available()) and (not only or r[0] in only)
    ]
    if not openvino_available():
        out["note"] = "openvino not installed: bash .ci/setup installs the extra"
    if any(r[2] == "int8" for r in rows):
        out["int8"] = _ensure_int8(model, video, photos, cache, calibration_frames, progress)
        if "error" in out["int8"]:
            rows = [r for r in rows if r[2] != "int8"]
    common = [
        "--model",
        str(model),
        "--video",
        str(video),
        "--frames",
        str(frames),
        "--warmup",
        str(warmup),
        "--repeats",
        "1",
        "--threshold",
        str(threshold),
    ]
    if labels is not None:
        common += ["--labels", str(labels)]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name, _, _ in rows}
    for r in range(max(1, repeats)):  # interleaved: a noisy neighbour slows every row alike
        for name, backend, precision in rows:
            for mode in ("workers", "threads2"):
                progress(f"backends: {name}, {mode} (repeat {r + 1}/{repeats})")
                args = [
                    *common,
                    "--backend",
                    backend,
                    "--precision",
                    precision,
                    "--mode",
                    mode,
                    "--cache-dir",
                    str(cache),
                ]
                if mode == "workers" and r == 0 and photos is not None:
                    args += ["--photos", str(photos)]
                runs[name].setdefault(mode, []).append(_child(args, 1800.0))
    reference = _reference(model, photos, threshold) if photos is not None else None
    for name, backend, precision in rows:
        out["rows"][name] = _row(runs[name], reference, threshold)
        out["rows"][name].update(backend=backend, precision=precision)
    out["startup"] = _startup(model, video, cache, common, rows, progress)
    _rss_rows(out, rows, common, cache, rss_frames, progress)
    out["post"] = _post(model, video, frames, threshold, progress)
    if streams_seconds > 0:
        out["streams"] = _streams(model, labels, video, cache, streams_seconds, progress)
    progress("backends: LiteRT peer")
    out["peer_litert"] = _peer(tflite, video, frames, warmup, repeats)
    out["goals"] = goals(out)
    out["load_avg_1m_end"] = _loadavg()
    out["elapsed_s"] = time.perf_counter() - t_start
    return out


def _rss_rows(
    out: dict[str, Any],
    rows: Sequence[tuple[str, str, str]],
    common: list[str],
    cache: Path,
    rss_frames: int,
    progress: Callable[[str], None],
) -> None:
    """Memory after ``rss_frames`` frames of the pipeline (with outputs), per ``RSS_ROWS`` row."""
    for name, backend, precision in rows:
        if name not in RSS_ROWS or rss_frames <= 0:
            continue
        progress(f"backends: {name}, memory after {rss_frames} frames")
        args = [*common, "--backend", backend, "--precision", precision, "--mode", "rss"]
        args += ["--cache-dir", str(cache), "--rss-frames", str(rss_frames)]
        out["rows"][name]["rss"] = _child(args, 1800.0)


def _post(
    model: Path, video: Path, frames: int, threshold: float, progress: Callable[[str], None]
) -> dict[str, Any]:
    from detector.benchmarks.postprocess import post_timing
    from detector.errors import DetectorError

    progress("backends: post-processing, TF vs NumPy")
    try:
        return post_timing(model, video, min(frames, 300), threshold)
    except DetectorError as exc:
        return {"error": str(exc)}


def _streams(
    model: Path,
    labels: Path | None,
    video: Path,
    cache: Path,
    seconds: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The many-camera trials, tf and the default backend, each in a process of its own."""
    out: dict[str, Any] = {}
    for name, backend in (("tf", "tf"), ("default", "auto")):
        progress(f"backends: streams, {name}")
        args = ["--backend", backend, "--model", str(model), "--video", str(video)]
        args += ["--seconds", str(seconds), "--cache-dir", str(cache)]
        if labels is not None:
            args += ["--labels", str(labels)]
        out[name] = run_json_subprocess("detector.benchmarks.streams", args, 3600.0)
    return out


def _loadavg() -> float | None:
    import os

    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _reference(model: Path, photos: Path, threshold: float) -> list[Any]:
    """The TF graph in float32 on the photos: what every backend is compared with."""
    from detector.model.backends.parity import detect_all
    from detector.model.backends.quantize import read_images
    from detector.model.loader import load_model

    with load_model(model, device="cpu", precision="fp32") as ref:
        return detect_all(ref, read_images(photos), threshold)


def _row(
    modes: dict[str, list[dict[str, Any]]], reference: list[Any] | None, threshold: float
) -> dict[str, Any]:
    from detector.model.backends.parity import Found, compare_found

    row: dict[str, Any] = {}
    errors = [r["error"] for rs in modes.values() for r in rs if "error" in r]
    if errors:
        row["error"] = errors[0]
    ok = {m: [r for r in rs if "error" not in r] for m, rs in modes.items()}
    for mode, keys in (
        ("workers", ("bare_1_thread", "in_flight_2", "pipeline")),
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
    common: list[str],
    rows: Sequence[tuple[str, str, str]],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Process start to first detection: TF, and OpenVINO with an empty then a warm cache."""
    out: dict[str, Any] = {}
    base = [*common, "--mode", "startup"]
    base[base.index("--frames") + 1] = "1"
    for key, backend in (("tf", "tf"), ("default", "auto")):
        progress(f"backends: start-up, {key}")
        args = [*base, "--backend", backend, "--precision", "auto", "--cache-dir", str(cache)]
        out[key] = _child(args, 600.0)
    if any(b == "openvino" for _, b, _ in rows):
        cold = Path(tempfile.mkdtemp(prefix="detector-ov-cold-"))
        try:
            for key in ("openvino_cold", "openvino_warm"):
                progress(f"backends: start-up, {key}")
                out[key] = _child(
                    [
                        *base,
                        "--backend",
                        "openvino",
                        "--precision",
                        "bf16",
                        "--cache-dir",
                        str(cold),
                    ],
                    600.0,
                )
        finally:
            shutil.rmtree(cold, ignore_errors=True)
    return out
