"""The backend column: the TF session as the app runs it beside OpenVINO fp32 / bf16 / int8.

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

import argparse
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
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.benchmarks import media, throughput
from detector.benchmarks.media import decode_frames
from detector.benchmarks.model_speed import latency_ms
from detector.benchmarks.parts import ModelSettings, engine, labels_for
from detector.benchmarks.system import Span, median_run, rate, run_json_subprocess
from detector.errors import DetectorError
from detector.model.backends import load_backend_model, openvino_available
from detector.model.backends.openvino import cache_root, int8_report_path, ir_path, prepare_graph
from detector.model.backends.parity import Found, compare_found, detect_all
from detector.model.backends.quantize import QuantizationRefused, quantize, read_images
from detector.model.loader import load_model
from detector.tflite.reference import TfliteReference

log = logging.getLogger(__name__)

#: (row name, backend, precision): the TF row is the app's default session (auto precision).
ROWS = (
    ("tf", "tf", "auto"),
    ("openvino fp32", "openvino", "fp32"),
    ("openvino bf16", "openvino", "bf16"),
    ("openvino int8", "openvino", "int8"),
)
#: The openvino backend's target: its pipeline at least this many times the tf pipeline's frames/s.
PIPELINE_GOAL = 1.3


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


def _load(
    backend: str, precision: str, model: Path, workers: int, threads: int, cache_dir: Path
) -> Any:
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


def measure(a: Any) -> dict[str, Any]:
    """One backend configuration in this process (``a``: the parsed child arguments)."""
    t0 = time.perf_counter()

    model = _load(a.backend, a.precision, a.model, a.workers, a.threads, a.cache_dir)
    frames = decode_frames(a.video, a.frames)
    model.warm_up(frames[0].shape[1], frames[0].shape[0], runs=2)
    out: dict[str, Any] = {
        "startup_s": time.perf_counter() - t0,
        "load_s": getattr(model, "load_s", None),
        "precision_used": getattr(model, "precision", None),
        "converted": getattr(model, "converted", None),
        "compile_s": getattr(model, "compile_s", None),
    }
    try:
        if a.mode == "startup":
            return out
        warm = min(a.warmup, max(1, len(frames) // 4))

        def fn(bgr: np.ndarray) -> Any:
            return model.predict(_bgr_to_rgb_batch(bgr))

        if a.mode == "threads2":
            out["bare_2_threads"] = single(fn, frames, warm, a.repeats)
            return out
        out["bare_1_thread"] = single(fn, frames, warm, a.repeats)
        out["in_flight_2"] = in_flight([fn, fn], frames, warm, a.repeats)
        out["pipeline"] = _pipeline(model, a, warm)
        if a.photos is not None:
            found = detect_all(model, read_images(a.photos), a.threshold)
            out["photos"] = [f.to_dict() for f in found]
        return out
    finally:
        model.close()


def _pipeline(model: Any, a: Any, warm: int) -> dict[str, Any]:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Child entry: measure one backend configuration and print it as one JSON line."""

    p = argparse.ArgumentParser(prog="python -m detector.benchmarks.backends")
    p.add_argument("--backend", required=True)
    p.add_argument("--precision", required=True)
    p.add_argument("--mode", choices=("workers", "threads2", "startup"), required=True)
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
    a = p.parse_args(argv)
    if a.mode == "threads2":
        a.workers, a.threads = 1, 2
    print(json.dumps(measure(a)))
    return 0


# ------------------------------------------------------------------ the section (parent)


def _child(args: list[str], timeout_s: float) -> dict[str, Any]:
    t = time.perf_counter()
    out = run_json_subprocess("detector.benchmarks.backends", args, timeout_s)
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
) -> dict[str, Any]:
    """The backend section: every row's numbers, parity, start-up, and the two goals.

    ``only`` names the rows to measure (default: all of ``ROWS``).
    """

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
    progress("backends: LiteRT peer")
    out["peer_litert"] = _peer(tflite, video, frames, warmup, repeats)
    out["goals"] = goals(out)
    out["load_avg_1m_end"] = _loadavg()
    out["elapsed_s"] = time.perf_counter() - t_start
    return out


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
    progress("backends: start-up, tf")
    out["tf"] = _child(
        [*base, "--backend", "tf", "--precision", "auto", "--cache-dir", str(cache)], 600.0
    )
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


def goals(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The backends' two targets, from this run's figures: the fastest backend that passes
    parity runs the pipeline ``PIPELINE_GOAL`` times as fast as tf, and two calls in flight at
    least as fast as LiteRT on the original ``.tflite``."""
    rows = section.get("rows", {})
    tf_pipe = rows.get("tf", {}).get("pipeline", {}).get("fps")
    passing = {
        name: row
        for name, row in rows.items()
        if name != "tf" and row.get("parity", {}).get("passed") and "pipeline" in row
    }
    out: list[dict[str, Any]] = []
    if tf_pipe and passing:
        best = max(passing, key=lambda n: passing[n]["pipeline"]["fps"])
        ratio = passing[best]["pipeline"]["fps"] / tf_pipe
        out.append(
            {
                "what": f"pipeline {best} ÷ pipeline tf (sample video)",
                "value": ratio,
                "goal": f"≥ {PIPELINE_GOAL}",
                "met": ratio >= PIPELINE_GOAL,
            }
        )
    flights = {n: r["in_flight_2"]["fps"] for n, r in passing.items() if "in_flight_2" in r}
    peer = section.get("peer_litert", {}).get("in_flight_2", {}).get("fps")
    if flights and peer:
        best = max(flights, key=lambda n: flights[n])
        out.append(
            {
                "what": f"bare 2 in flight {best} ÷ LiteRT peer (same run)",
                "value": flights[best] / peer,
                "goal": "≥ 1",
                "met": flights[best] >= peer,
            }
        )
    return out


def format_backends(section: dict[str, Any]) -> str:
    """The backend table, start-up and goals as text."""

    def f(x: Any, fmt: str = "{:.1f}") -> str:
        return "-" if x is None else fmt.format(x)

    lines = [
        f"backends (sample video, {section.get('frames')} frames, "
        f"{section.get('repeats')} repeat(s), medians; 2 in flight = two 1-thread callers)"
    ]
    head = (
        f"  {'backend':<14} {'1 thr ms':>8} {'2 thr ms':>8} {'2-flight f/s':>12} "
        f"{'pipeline f/s':>12}  parity on photos"
    )
    lines.append(head)
    rows = dict(section.get("rows", {}))
    peer = section.get("peer_litert", {})
    if "error" not in peer:
        rows["litert (peer)"] = peer
    for name, row in rows.items():
        parity = row.get("parity", {})
        par = (
            f"{parity['matched']}/{max(parity['reference'], parity['candidate'])} "
            f"{'pass' if parity['passed'] else 'FAIL'}"
            if parity
            else "reference"
            if name == "tf"
            else "-"
        )
        if name == "tf" and parity:
            par += " (bf16 vs fp32 graph)"
        lines.append(
            f"  {name:<14} {f(row.get('bare_1_thread', {}).get('latency_ms_p50')):>8} "
            f"{f(row.get('bare_2_threads', {}).get('latency_ms_p50')):>8} "
            f"{f(row.get('in_flight_2', {}).get('fps')):>12} "
            f"{f(row.get('pipeline', {}).get('fps')):>12}  {par}"
            + (f"  error: {str(row['error']).splitlines()[-1][:80]}" if "error" in row else "")
        )
    st = section.get("startup", {})
    if st:
        parts = [f"{k} {f(v.get('process_s'))} s" for k, v in st.items() if "error" not in v]
        lines.append("  start-up, process start to first detection: " + ", ".join(parts))
    q = section.get("int8", {})
    if q:
        if "error" in q:
            lines.append(f"  int8: not used: {str(q['error']).splitlines()[0][:160]}")
        else:
            p = q.get("parity", {})
            lines.append(
                f"  int8 gate (held-apart photos): {p.get('matched')}/"
                f"{max(p.get('reference', 0), p.get('candidate', 0))} matched, "
                f"{'pass' if p.get('passed') else 'FAIL'}"
            )
    for g in section.get("goals", []):
        lines.append(
            f"  goal: {g['what']}: {f(g['value'], '{:.2f}')} {g['goal']} -> "
            f"{'met' if g['met'] else 'missed'}"
        )
    if section.get("note"):
        lines.append(f"  note: {section['note']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
