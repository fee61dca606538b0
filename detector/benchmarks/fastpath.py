"""The backends section's figures for the default backend: memory, post-processing, cameras.

Beside the per-row speed figures of :mod:`detector.benchmarks.backends`: the process's memory
after a long pipeline run (tf, the default, int8), the SSD post-processing's ms a frame (the
TF graph's vs NumPy's, on the same network outputs), and how many 10 fps cameras one run
holds (tf and the default backend), each in a worker process of its own.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from detector.benchmarks import ray_engine
from detector.benchmarks.postprocess import post_worker
from detector.benchmarks.streams import streams_worker
from detector.benchmarks.worker import run_in_worker

#: Rows whose memory after a long run is measured (a pipeline run each).
RSS_ROWS = ("tf", "default", "openvino int8")
#: Photos of the Ray engine's fixed-cost runs (few: the fixed cost is nearly all of it).
RAY_IMAGES = 12


def add_figures(
    section: dict[str, Any],
    rows: Sequence[tuple[str, str, str]],
    common: dict[str, Any],
    rss_frames: int,
    progress: Callable[[str], None],
    worker: Callable[..., dict[str, Any]],
) -> None:
    """Memory after ``rss_frames`` frames of the pipeline (with outputs), per ``RSS_ROWS`` row;
    ``worker``: the backends section's worker task (``mode="rss"``)."""
    for name, backend, precision in rows:
        if name not in RSS_ROWS or rss_frames <= 0:
            continue
        progress(f"backends: {name}, memory after {rss_frames} frames")
        args = dict(common, backend=backend, precision=precision, mode="rss")
        section["rows"][name]["rss"] = run_in_worker(worker, 1800.0, **args, rss_frames=rss_frames)


def add_fast_path(
    section: dict[str, Any],
    common: dict[str, Any],
    streams_seconds: float,
    progress: Callable[[str], None],
    photos: Path | None = None,
    ray_rounds: int = 2,
) -> None:
    """The post-processing's ms a frame, (``streams_seconds`` > 0) the many-camera line and
    (with ``photos``) the Ray engine's fixed cost per backend, into ``section``; ``common``:
    the backends section's worker arguments."""
    model, video = common["model"], common["video"]
    section["post"] = post(model, video, common["frames"], common["threshold"], progress)
    if streams_seconds > 0:
        cache = common["cache_dir"]
        section["streams"] = streams(
            model, common["labels"], video, cache, streams_seconds, progress
        )
    if photos is not None:
        cache = Path(common["cache_dir"])
        section["ray_fixed"] = ray_fixed(model, photos, cache, progress, ray_rounds)


def ray_fixed(
    model: Path, photos: Path, cache: Path, progress: Callable[[str], None], rounds: int = 2
) -> dict[str, Any]:
    """The Ray engine's fixed cost with tf actors and with openvino actors: ``main.py run
    --engine ray`` on a folder of ``RAY_IMAGES`` photos, a process each, backends in turn
    (``rounds`` times; the fastest kept). ``start_to_first_result_s``: from the driver
    starting Ray to the first result (Ray's start, the actors' imports, model loads and
    first detection); ``wall_s``: the whole command."""
    try:
        import ray  # noqa: F401  (only to say it is missing)
    except ImportError:
        return {"error": "Ray is not installed: .venv/bin/python -m pip install 'ray[data]'"}
    folder = ray_engine.make_folder(photos, RAY_IMAGES, cache.parent)
    tmp = Path(tempfile.mkdtemp(prefix="detector-bench-ray-fixed-"))
    out: dict[str, Any] = {"images": RAY_IMAGES, "actors": 2}
    try:
        for r in range(max(1, rounds)):
            for backend in ("tf", "openvino"):
                progress(f"backends: Ray engine's fixed cost, {backend} actors ({r + 1}/{rounds})")
                extra = ("--model", str(model), "--backend", backend, "--ray-actors", "2")
                run = ray_engine.timed_run(folder, "ray", tmp, f"{backend}{r}", extra)
                if "error" not in run:
                    run["start_to_first_result_s"] = run["ray_start_s"] + run["first_result_s"]
                best = out.get(backend)
                if best is None or run.get("wall_s", 1e9) < best.get("wall_s", 1e9):
                    out[backend] = run
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tf, ov = out.get("tf", {}), out.get("openvino", {})
    if "error" not in tf and "error" not in ov:
        out["x_tf"] = ov["start_to_first_result_s"] / tf["start_to_first_result_s"]
    return out


def post(
    model: Path, video: Path, frames: int, threshold: float, progress: Callable[[str], None]
) -> dict[str, Any]:
    """The post-processing's ms a frame, TF's graph and NumPy's (in a worker)."""

    progress("backends: post-processing, TF vs NumPy")
    return run_in_worker(
        post_worker, 1800.0, model=model, video=video, frames=min(frames, 300), threshold=threshold
    )


def streams(
    model: Path,
    labels: Path | None,
    video: Path,
    cache: Path,
    seconds: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The many-camera trials, tf and the default backend, each in a worker of its own."""

    out: dict[str, Any] = {}
    for name, backend in (("tf", "tf"), ("default", "auto")):
        progress(f"backends: streams, {name}")
        out[name] = run_in_worker(
            streams_worker,
            3600.0,
            backend=backend,
            model=model,
            video=video,
            labels=labels,
            seconds=seconds,
            cache_dir=cache,
        )
    return out
