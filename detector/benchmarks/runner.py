"""Runs the registry's sections side by side in one process and collects the numbers for the report.

Repeats are interleaved (repeat 1 of every measurement, then repeat 2, ...) so a noisy
neighbour on the machine slows all of them alike, and medians over repeats are reported.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from detector.benchmarks import media
from detector.benchmarks.parts import engine, labels_for, load, rgb_batch
from detector.benchmarks.sections import REGISTRY, Bench, BenchOptions, Job, VideoRun
from detector.benchmarks.system import machine_info, median_run, warm_frames
from detector.model.options import ModelOptions
from detector.types import Frame

log = logging.getLogger(__name__)


def _progress(msg: str) -> None:
    log.info("bench: %s", msg)


def run_bench(
    opts: BenchOptions, model: ModelOptions, progress: Callable[[str], None] = _progress
) -> dict[str, Any]:
    """Run the bench on the model ``model`` describes (loaded as ``run`` loads it); returns the
    raw results (``report.summarize`` adds ratios and targets)."""
    t_start = time.perf_counter()
    results = _header(opts, model)
    bench = Bench(opts, model, progress, Path(tempfile.mkdtemp(prefix="detector-bench-")))
    wanted = [REGISTRY[name] for name in REGISTRY if name in opts.sections]
    if any(s.model for s in wanted):
        bench.videos = _videos(opts)
        bench.sample = bench.videos[0]
        bench.labels = labels_for(model.labels)
        progress(f"loading {model.path} (backend {model.backend})")
        bench.model = load(model)  # as the app: one model shared by the workers
        _loaded(results["settings"], bench.model)
        bench.detect = engine(bench.model, opts.threshold, opts.max_boxes)
        try:
            for video in bench.videos:
                results["videos"][video.label] = _video_entry(bench, video)
            _once(bench, [s for s in wanted if s.model], results)
        finally:
            bench.close()
    _once(bench, [s for s in wanted if not s.model], results)
    results["elapsed_s"] = time.perf_counter() - t_start
    return results


def _header(opts: BenchOptions, model: ModelOptions) -> dict[str, Any]:
    def plain(doc: dict[str, Any]) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in doc.items()}

    options = {k: v for k, v in asdict(opts).items() if k != "sections"}
    return {
        "machine": machine_info(),
        "options": plain(options) | {"sections": sorted(opts.sections)},
        "settings": model.describe(),
        "videos": {},
    }


def _loaded(settings: dict[str, Any], model: Any) -> None:
    """What the loaded model runs on: device, precision, backend (and why, for ``auto``)."""
    settings["device"] = getattr(model, "device", "?")
    settings["precision_used"] = getattr(model, "precision", "?")
    choice = getattr(model, "backend_choice", None)
    if choice is not None:
        settings["backend_used"] = choice.backend
        settings["backend_choice"] = choice.to_dict()


def _videos(opts: BenchOptions) -> list[media.BenchVideo]:
    """The sample video, then the larger ones made from its frames (cached)."""
    probed = media.probe(opts.video, None)
    sample = media.BenchVideo(
        f"{probed.height}p", probed.path, probed.width, probed.height, probed.fps, probed.frames
    )
    return [sample] + [
        media.make_scaled(sample, h, opts.frames, opts.cache_dir) for h in opts.sizes
    ]


def _video_entry(bench: Bench, video: media.BenchVideo) -> dict[str, Any]:
    """Every per-video job of the wanted sections on ``video``, repeats interleaved."""
    opts, progress = bench.opts, bench.progress
    progress(f"{video.label}: decoding {opts.frames} frames of {video.path.name}")
    frames = media.decode_frames(video.path, opts.frames)
    n = len(frames)
    first = bench.detect(media_frame(frames[0]))[0]

    def fixed(_frame: Any, _d: Any = first) -> tuple[Any, float]:
        return _d, 0.0

    is_sample = video is bench.sample
    run = VideoRun(
        video, [rgb_batch(f) for f in frames], n, warm_frames(opts.warmup, n), fixed, is_sample
    )
    if is_sample:
        bench.frames, bench.rgb = frames, run.rgb
    del frames  # the larger videos are only needed as RGB: halve the memory
    jobs: dict[str, Job] = {}
    for section in REGISTRY.values():
        if section.jobs is not None and section.name in opts.sections:
            jobs.update(section.jobs(bench, run))
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in jobs}
    for r in range(opts.repeats):
        for name, job in jobs.items():
            progress(f"{video.label}: {name} (repeat {r + 1}/{opts.repeats})")
            runs[name].append(job())
    entry: dict[str, Any] = {
        "file": str(video.path),
        "width": video.width,
        "height": video.height,
        "frames": n,
        "warmup": run.warm,
    }
    entry.update({name: _merge(rs) for name, rs in runs.items()})
    if "pipeline" in entry and "workers" in opts.sections and is_sample:
        entry.setdefault(f"pipeline_w{bench.model_options.workers}", entry["pipeline"])
    return entry


def _once(bench: Bench, sections: list[Any], results: dict[str, Any]) -> None:
    """Each section's once-measurement (one run per result key) into ``results``."""
    done: set[str] = set()
    for section in sections:
        if section.once is not None and section.key not in done:
            done.add(section.key)
            results[section.key] = section.once(bench)


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
