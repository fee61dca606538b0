"""The backends section's figures for the default backend: memory, post-processing, cameras.

Beside the per-row speed figures of :mod:`detector.benchmarks.backends`: the process's memory
after a long pipeline run (tf, the default, int8), the SSD post-processing's ms a frame (the
TF graph's vs NumPy's, on the same network outputs), and how many 10 fps cameras one run
holds (tf and the default backend), each in a worker process of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from detector.benchmarks.postprocess import post_worker
from detector.benchmarks.streams import streams_worker
from detector.benchmarks.worker import run_in_worker

#: Rows whose memory after a long run is measured (a pipeline run each).
RSS_ROWS = ("tf", "default", "openvino int8")


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
