"""Runs every measurement side by side in one process and collects the numbers for the report.

Repeats are interleaved (repeat 1 of every measurement, then repeat 2, ...) so a noisy
neighbour on the machine slows all of them alike, and medians over repeats are reported.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from detector.benchmarks import (
    live,
    media,
    memory,
    model_speed,
    ray_engine,
    split_speed,
    throughput,
    tracking,
    video_io,
    web_viewers,
)
from detector.benchmarks.backends import backend_rows
from detector.benchmarks.events import events_bench
from detector.benchmarks.parts import ModelSettings, engine, labels_for, load, rgb_batch
from detector.benchmarks.system import machine_info, median_run
from detector.engine import Engine
from detector.fetch.assets import PHOTOS_DIR
from detector.paths import SAMPLES_DIR
from detector.track import TrackSettings
from detector.types import Frame

log = logging.getLogger(__name__)

SECTIONS = (
    "model",
    "tflite",
    "naive",
    "pipeline",
    "workers",
    "detect_every",
    "live",
    "web",
    "memory",
    "split",
    "video",
    "ray",
    "track",
    "backends",
    "events",
)


@dataclass(frozen=True)
class BenchOptions:
    """What to measure and how long.

    Attributes:
        video: The sample video (the 576p column).
        sizes: Heights of the extra videos made from its frames (720, 1080).
        frames: Frames per throughput measurement (warm-up included).
        warmup: Leading frames excluded from every timing.
        repeats: Repeats of each throughput measurement (medians reported).
        live_fps: Rate of the paced live source.
        live_frames: Frames of the live run.
        track_frames: Frames of the sample the tracking section runs the model on
            (``None``: the whole video).
        memory_frames: ``(first, last)`` frame counts at which RSS is read.
        ray_images: Folder sizes of the local vs Ray runs (``ray`` section).
        cache_dir: Where made videos are kept between runs.
        sections: Which measurements to run (``SECTIONS``).
        video_variants: Also time x264 settings other than the app's (full runs).
    """

    video: Path
    sizes: tuple[int, ...] = (720, 1080)
    frames: int = 300
    warmup: int = 20
    repeats: int = 3
    live_fps: float = 30.0
    live_frames: int = 300
    track_frames: int | None = None
    memory_frames: tuple[int, int] = (1000, 10000)
    cache_dir: Path = Path(".cache/bench")
    sections: frozenset[str] = field(default_factory=lambda: frozenset(SECTIONS))
    video_variants: bool = True
    ray_images: tuple[int, int] = (50, 200)


def _progress(msg: str) -> None:
    log.info("bench: %s", msg)


def run_bench(
    opts: BenchOptions, settings: ModelSettings, progress: Callable[[str], None] = _progress
) -> dict[str, Any]:
    """Run the bench; returns the raw results (``report.summarize`` adds ratios and targets)."""
    t_start = time.perf_counter()
    want = opts.sections
    sample = media.probe(opts.video, None)
    sample = media.BenchVideo(
        f"{sample.height}p", sample.path, sample.width, sample.height, sample.fps, sample.frames
    )
    videos = [sample] + [
        media.make_scaled(sample, h, opts.frames, opts.cache_dir)
        for h in opts.sizes
        if want - {"ray"}  # the engines' comparison alone needs no video
    ]
    labels = labels_for(settings)
    results: dict[str, Any] = {
        "machine": machine_info(),
        "options": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in asdict(opts).items()
            if k != "sections"
        }
        | {"sections": sorted(want)},
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()
        },
        "videos": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="detector-bench-"))
    if want <= {"ray"}:  # only the engines' comparison: no model or video needed here
        _ray(results, opts, tmp, progress)
        results["elapsed_s"] = time.perf_counter() - t_start
        return results
    progress(f"loading {settings.path}")
    model = load(settings)  # as the app: one session shared by the workers
    results["settings"]["device"] = getattr(model, "device", "?")
    results["settings"]["precision_used"] = getattr(model, "precision", "?")
    detect = engine(model, settings)
    each: Any = None  # the same model with a session per worker
    try:
        for video in videos:
            progress(f"{video.label}: decoding {opts.frames} frames of {video.path.name}")
            frames = media.decode_frames(video.path, opts.frames)
            rgb = [rgb_batch(f) for f in frames]
            n = len(frames)
            if video is not sample:
                frames = frames[:1]  # the rest are only needed as RGB: halve the memory
            warm = min(opts.warmup, max(1, n // 4))
            first = detect(media_frame(frames[0]))[0]

            def fixed(_frame: Any, _d: Any = first) -> tuple[Any, float]:
                return _d, 0.0

            # partial binds this iteration's video, frames and counts now, not at call time
            jobs: dict[str, Callable[[], dict[str, Any]]] = {}
            if "model" in want:
                jobs["bare"] = partial(model_speed.bare_model, model, rgb, warm, 1)
                jobs["bare_2_streams"] = partial(
                    model_speed.bare_model_streams, model, rgb, 2, warm
                )
            if "naive" in want:
                jobs["naive"] = partial(
                    throughput.naive_loop, video, detect, labels, n, warm, tmp / "naive"
                )
                jobs["no_model"] = partial(
                    throughput.naive_loop, video, fixed, labels, n, warm, tmp / "nomodel"
                )
            if "pipeline" in want:
                jobs["pipeline"] = partial(
                    throughput.pipeline_run,
                    video,
                    detect,
                    labels,
                    n,
                    warm,
                    tmp / "pipe",
                    workers=settings.workers,
                )
            if "workers" in want and video is sample:
                # the configured worker count is the "pipeline" row already: not run twice
                if settings.workers != 1 or "pipeline" not in want:
                    jobs["pipeline_w1"] = partial(
                        throughput.pipeline_run,
                        video,
                        detect,
                        labels,
                        n,
                        warm,
                        tmp / "pipe1",
                        workers=1,
                    )
                if settings.workers != 2 or "pipeline" not in want:
                    jobs["pipeline_w2"] = partial(
                        throughput.pipeline_run,
                        video,
                        detect,
                        labels,
                        n,
                        warm,
                        tmp / "pipe2",
                        workers=2,
                    )
                if each is None:
                    each = load(settings, sessions=2)
                    each.warm_up(video.width, video.height, runs=2)
                per_worker = engine(each, settings)
                jobs["pipeline_w2_session_each"] = partial(
                    throughput.pipeline_run,
                    video,
                    per_worker,
                    labels,
                    n,
                    warm,
                    tmp / "pipe2s",
                    workers=2,
                )
            if "detect_every" in want:
                for k in (2, 4):
                    jobs[f"pipeline_every_{k}"] = partial(
                        throughput.pipeline_run,
                        video,
                        detect,
                        labels,
                        n,
                        warm,
                        tmp / f"every{k}",
                        detect_every=k,
                        workers=settings.workers,
                    )
            if "video" in want and video is sample:
                # end to end with each codec, interleaved with the rest
                for codec in ("h264", "mp4v"):
                    jobs[f"pipeline_{codec}"] = partial(
                        throughput.pipeline_run,
                        video,
                        detect,
                        labels,
                        n,
                        warm,
                        tmp / f"pipe_{codec}",
                        workers=settings.workers,
                        video_codec=codec,
                    )
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in jobs}
            for r in range(opts.repeats):
                for name in jobs:
                    progress(f"{video.label}: {name} (repeat {r + 1}/{opts.repeats})")
                    runs[name].append(jobs[name]())
            entry: dict[str, Any] = {
                "file": str(video.path),
                "width": video.width,
                "height": video.height,
                "frames": n,
                "warmup": warm,
            }
            for name, rs in runs.items():
                entry[name] = _merge(rs)
            if "pipeline" in entry and "workers" in want and video is sample:
                entry.setdefault(f"pipeline_w{settings.workers}", entry["pipeline"])
            results["videos"][video.label] = entry

            if video is sample:
                frames_576, rgb_576 = frames, rgb
            del frames, rgb, jobs  # the jobs hold rgb too: free it before the next video
        if "video" in want:
            sized = [sample] + [v for v in videos[1:] if v.height == max(opts.sizes, default=0)]
            results["video_io"] = video_io.video_io(
                sized,
                opts.frames,
                opts.repeats,
                tmp,
                variants=opts.video_variants,
                progress=progress,
            )
        if "model" in want or "tflite" in want:
            results["model_latency"] = _latency(
                settings, sample.path, frames_576, opts, want, progress
            )
        if "live" in want:
            progress(f"live: {opts.live_frames} frames paced at {opts.live_fps:g} fps")
            results["live"] = live.live_latency(
                frames_576,
                detect,
                labels,
                opts.live_fps,
                opts.live_frames,
                min(opts.warmup, 10),
                tmp / "live",
            )
        if "web" in want:
            progress(
                f"web view: live runs with 0 and {web_viewers.VIEWERS} viewers (one stalled), "
                f"paced at {opts.live_fps:g} fps and flat out"
            )
            results["web"] = web_viewers.web_viewers(
                frames_576,
                detect,
                labels,
                opts.live_fps,
                opts.live_frames,
                min(opts.warmup, 10),
                tmp / "web",
                rounds=opts.repeats,
            )
        if "memory" in want:
            a, b = opts.memory_frames
            progress(f"memory: RSS after {a} and {b} frames")
            results["memory"] = memory.memory_subprocess(
                settings.path,
                settings.labels,
                sample.path,
                a,
                b,
                settings.workers,
                settings.intra_op_threads,
                settings.inter_op_threads,
                str(settings.extra.get("precision", "auto")),
            )
        if "split" in want:
            progress("split model")
            results["split"] = split_speed.split_model(
                settings.path,
                rgb_576,
                min(opts.warmup, 10),
                whole=model,
                intra_op_threads=settings.intra_op_threads,
                inter_op_threads=settings.inter_op_threads,
                precision=str(settings.extra.get("precision", "auto")),
            )
        if "backends" in want:
            photos = SAMPLES_DIR / "photos"
            results["backends"] = backend_rows(
                Path(settings.path),
                Path(settings.labels) if settings.labels else None,
                sample.path,
                photos if photos.is_dir() else None,
                Path(settings.tflite) if settings.tflite else None,
                frames=opts.frames,
                warmup=opts.warmup,
                repeats=opts.repeats,
                cache_dir=opts.cache_dir,
                calibration_frames=min(300, max(60, opts.frames)),
                threshold=settings.threshold,
                progress=progress,
            )
        if "track" in want:
            # the model's output down to ByteTrack's low threshold, every class
            low = TrackSettings(threshold=settings.threshold).detect_threshold
            results["track"] = tracking.tracking_bench(
                sample.path,
                Engine(model, low, None, settings.max_boxes),
                settings.threshold,
                opts.track_frames,
                progress,
            )
    finally:
        model.close()
        if each is not None:
            each.close()
    if "ray" in want:
        _ray(results, opts, tmp, progress)
    if "events" in want:  # no model: tracked boxes on known paths
        results["events"] = events_bench(max(300, opts.frames), 3 * opts.live_frames, progress)
    results["elapsed_s"] = time.perf_counter() - t_start
    return results


def _ray(
    results: dict[str, Any], opts: BenchOptions, tmp: Path, progress: Callable[[str], None]
) -> None:
    small, big = opts.ray_images
    progress(f"ray engine vs local: {small} and {big} images, each engine in its own process")
    results["ray_engine"] = ray_engine.ray_vs_local(
        PHOTOS_DIR, opts.ray_images, opts.cache_dir, tmp / "ray", repeats=min(opts.repeats, 2)
    )


def media_frame(image: Any) -> Any:
    return Frame(0, time.monotonic(), image)


def _merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of numeric keys over repeats; other keys from the first repeat (all for flags)."""
    out: dict[str, Any] = median_run(runs)
    for key, val in runs[0].items():
        if isinstance(val, bool):
            out[key] = all(bool(r.get(key)) for r in runs)
        elif key not in out:
            out[key] = val
    return out


def _latency(
    settings: ModelSettings,
    video: Path,
    frames: list[Any],
    opts: BenchOptions,
    want: frozenset[str],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Model latency at 1 and 2 threads: our session vs TFLite on the original ``.tflite``.

    Our session runs in a fresh process per configuration (TF fixes its thread pools at
    the first session of a process); ``inter_op_threads = -1`` runs the ops in the calling
    thread, so "1 thread" is exactly one and "2 threads" is the caller plus one helper.
    """
    out: dict[str, Any] = {}
    n = len(frames)
    warm = min(opts.warmup, max(1, n // 4))
    configs = [("ours_1", 1, "auto"), ("ours_2", 2, "auto"), ("ours_1_fp32", 1, "fp32")]
    for key, threads, precision in configs:
        if "model" in want:
            progress(f"model latency: our session, {threads} thread(s), precision {precision}")
            out[key] = model_speed.session_latency_subprocess(
                settings.path, video, n, warm, opts.repeats, threads, -1, precision
            )
    for threads in (1, 2):
        if "tflite" in want and settings.tflite is not None and Path(settings.tflite).exists():
            progress(f"model latency: TFLite, {threads} thread(s)")
            out[f"tflite_{threads}"] = model_speed.tflite(
                settings.tflite, frames, threads, warm, opts.repeats
            )
    return out
