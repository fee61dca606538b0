"""The bench's sections in one registry: what each measures, when it runs, where its figures go.

A section gives *jobs* timed on every video (interleaved with the other sections' jobs, repeat
by repeat, so a noisy neighbour slows all alike) and/or a *once* measurement run after the
videos, stored under its ``key``. A new measurement is a function here and one ``Section`` row;
``python main.py bench --only NAME`` runs it, and the runner needs no change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from detector.benchmarks import (
    memory,
    model_speed,
    ray_cameras,
    ray_engine,
    split_speed,
    throughput,
    tracking,
    video_io,
    web_viewers,
)
from detector.benchmarks.backends import backend_rows
from detector.benchmarks.events import events_bench, format_events
from detector.benchmarks.explain import explain_bench, format_table
from detector.benchmarks.inspect_scaling import inspect_scaling, scaling_lines
from detector.benchmarks.media import BenchVideo
from detector.benchmarks.paced import Pace, live_latency
from detector.benchmarks.parts import DEFAULT_MAX_BOXES, engine, load_sessions
from detector.benchmarks.serve_api import format_serve, serve_api
from detector.benchmarks.system import warm_frames
from detector.benchmarks.worker import run_in_worker
from detector.config import DEFAULT_THRESHOLD
from detector.errors import ConfigError
from detector.fetch.assets import PHOTOS_DIR
from detector.model.options import ModelOptions
from detector.track import TrackSettings

Job = Callable[[], dict[str, Any]]


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
        sections: Which measurements to run (names of ``REGISTRY``).
        video_variants: Also time x264 settings other than the app's (full runs).
        photos: The photos of the parity and explain sections.
        overlays: Where the explain section also writes every overlay PNG (``None``: nowhere).
        threshold: Score threshold of drawn / written detections (``detect.threshold``).
        max_boxes: At most this many boxes a frame (``detect.max_boxes``).
        tflite: The original ``.tflite`` of the TFLite column (``None``: no column).
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
    sections: frozenset[str] = field(default_factory=lambda: frozenset(default_sections()))
    video_variants: bool = True
    ray_images: tuple[int, int] = (50, 200)
    photos: Path | None = None
    overlays: Path | None = None
    threshold: float = DEFAULT_THRESHOLD
    max_boxes: int = DEFAULT_MAX_BOXES
    tflite: Path | None = None


@dataclass
class Bench:
    """What the sections of one run share: options, the model loaded once, the sample's frames."""

    opts: BenchOptions
    model_options: ModelOptions
    progress: Callable[[str], None]
    tmp: Path
    labels: Any = None
    model: Any = None
    detect: Any = None
    frames: list[Any] = field(default_factory=list)  # the sample's BGR frames
    rgb: list[Any] = field(default_factory=list)  # the same as RGB batches
    sample: BenchVideo | None = None
    videos: list[BenchVideo] = field(default_factory=list)
    _each: Any = None

    @property
    def want(self) -> frozenset[str]:
        return self.opts.sections

    def each(self, video: BenchVideo) -> Any:
        """The same model with a TensorFlow session per worker, loaded on first use."""
        if self._each is None:
            self._each = load_sessions(self.model_options, 2)
            self._each.warm_up(video.width, video.height, runs=2)
        return self._each

    def close(self) -> None:
        for m in (self.model, self._each):
            if m is not None:
                m.close()


@dataclass(frozen=True)
class VideoRun:
    """One video's frames as the per-video jobs see them."""

    video: BenchVideo
    rgb: list[Any]
    count: int
    warm: int
    fixed: Callable[[Any], tuple[Any, float]]  # the model replaced by fixed boxes
    is_sample: bool


@dataclass(frozen=True)
class Section:
    """One measurement of the bench.

    Attributes:
        name: What ``--only`` calls it.
        jobs: Jobs timed on each video (``None``: none).
        once: Run once after the videos; its result is stored under ``key``.
        key: Where ``once``'s result goes (sections sharing a key run it once).
        model: Needs the model the bench loads (else it runs after the model is closed).
        full: In a run without ``--only``.
        quick: In a ``--quick`` run without ``--only``.
        format: Table lines for its result (sections the main table does not show).
    """

    name: str
    jobs: Callable[[Bench, VideoRun], dict[str, Job]] | None = None
    once: Callable[[Bench], dict[str, Any]] | None = None
    key: str = ""
    model: bool = True
    full: bool = True
    quick: bool = True
    format: Callable[[dict[str, Any]], list[str]] | None = None


def _pipeline(b: Bench, v: VideoRun, out: str, detect: Any = None, **kw: Any) -> Job:
    return partial(
        throughput.pipeline_run,
        v.video,
        detect or b.detect,
        b.labels,
        v.count,
        v.warm,
        b.tmp / out,
        **kw,
    )


def _model_jobs(b: Bench, v: VideoRun) -> dict[str, Job]:
    return {
        "bare": partial(model_speed.bare_model, b.model, v.rgb, v.warm, 1),
        "bare_2_streams": partial(model_speed.bare_model_streams, b.model, v.rgb, 2, v.warm),
    }


def _naive_jobs(b: Bench, v: VideoRun) -> dict[str, Job]:
    return {
        name: partial(throughput.naive_loop, v.video, fn, b.labels, v.count, v.warm, b.tmp / out)
        for name, fn, out in (("naive", b.detect, "naive"), ("no_model", v.fixed, "nomodel"))
    }


def _pipeline_jobs(b: Bench, v: VideoRun) -> dict[str, Job]:
    return {"pipeline": _pipeline(b, v, "pipe", workers=b.model_options.workers)}


def _workers_jobs(b: Bench, v: VideoRun) -> dict[str, Job]:
    if not v.is_sample:
        return {}
    jobs: dict[str, Job] = {}
    for n in (1, 2):  # the configured count is the "pipeline" row already: not run twice
        if b.model_options.workers != n or "pipeline" not in b.want:
            jobs[f"pipeline_w{n}"] = _pipeline(b, v, f"pipe{n}", workers=n)
    per_worker = engine(b.each(v.video), b.opts.threshold, b.opts.max_boxes)
    jobs["pipeline_w2_session_each"] = _pipeline(b, v, "pipe2s", per_worker, workers=2)
    return jobs


def _every_jobs(b: Bench, v: VideoRun) -> dict[str, Job]:
    return {
        f"pipeline_every_{k}": _pipeline(
            b, v, f"every{k}", detect_every=k, workers=b.model_options.workers
        )
        for k in (2, 4)
    }


def _codec_jobs(b: Bench, v: VideoRun) -> dict[str, Job]:
    if not v.is_sample:  # end to end with each codec, interleaved with the rest
        return {}
    return {
        f"pipeline_{codec}": _pipeline(
            b, v, f"pipe_{codec}", workers=b.model_options.workers, video_codec=codec
        )
        for codec in ("h264", "mp4v")
    }


def _video_io(b: Bench) -> dict[str, Any]:
    o, videos = b.opts, b.videos
    sized = [videos[0]] + [v for v in videos[1:] if v.height == max(o.sizes, default=0)]
    return video_io.video_io(
        sized, o.frames, o.repeats, b.tmp, variants=o.video_variants, progress=b.progress
    )


def _latency(b: Bench) -> dict[str, Any]:
    """Model latency at 1 and 2 threads: our session vs TFLite on the original ``.tflite``.

    Our session runs in a fresh process per configuration (TF fixes its thread pools at
    the first session of a process); ``inter_op_threads = -1`` runs the ops in the calling
    thread, so "1 thread" is exactly one and "2 threads" is the caller plus one helper.
    """
    s, o, out = b.model_options, b.opts, {}
    n = len(b.frames)
    warm = warm_frames(o.warmup, n)
    assert b.sample is not None
    configs = [("ours_1", 1, "auto"), ("ours_2", 2, "auto"), ("ours_1_fp32", 1, "fp32")]
    for key, threads, precision in configs:
        if "model" in b.want:
            b.progress(f"model latency: our session, {threads} thread(s), precision {precision}")
            out[key] = model_speed.session_latency_subprocess(
                s.path, b.sample.path, n, warm, o.repeats, threads, -1, precision
            )
    for threads in (1, 2):
        if "tflite" in b.want and o.tflite is not None and o.tflite.exists():
            b.progress(f"model latency: TFLite, {threads} thread(s)")
            out[f"tflite_{threads}"] = model_speed.tflite(
                o.tflite, b.frames, threads, warm, o.repeats
            )
    return out


def _pace(b: Bench) -> Pace:
    o = b.opts
    return Pace(b.frames, b.detect, b.labels, o.live_fps, o.live_frames, min(o.warmup, 10))


def _live(b: Bench) -> dict[str, Any]:
    o = b.opts
    b.progress(f"live: {o.live_frames} frames paced at {o.live_fps:g} fps")
    return live_latency(_pace(b), b.tmp / "live")


def _web(b: Bench) -> dict[str, Any]:
    b.progress(
        f"web view: live runs with 0 and {web_viewers.VIEWERS} viewers (one stalled), "
        f"paced at {b.opts.live_fps:g} fps and flat out"
    )
    return web_viewers.web_viewers(_pace(b), b.tmp / "web", rounds=b.opts.repeats)


def _memory(b: Bench) -> dict[str, Any]:
    """RSS after the first and the last frames, in a worker: the app's own RSS."""
    o, (first, last) = b.opts, b.opts.memory_frames
    b.progress(f"memory: RSS after {first} and {last} frames")
    assert b.sample is not None
    return run_in_worker(
        memory.memory_worker,
        3600.0,
        model=b.model_options.describe(),
        video=b.sample.path,
        first=first,
        last=last,
        threshold=o.threshold,
        max_boxes=o.max_boxes,
    )


def _split(b: Bench) -> dict[str, Any]:
    s = b.model_options
    b.progress("split model")
    return split_speed.split_model(
        s.path,
        b.rgb,
        min(b.opts.warmup, 10),
        s.tensors,
        whole=b.model if _backend(b.model) == "tf" else None,  # else a TF one is loaded
        intra_op_threads=s.intra_op_threads,
        inter_op_threads=s.inter_op_threads,
        precision=s.session_options().precision,
    )


def _backend(model: Any) -> str:
    """The backend a loaded model runs on (``model.backend``, or what ``auto`` chose)."""
    choice = getattr(model, "backend_choice", None)
    return str(choice.backend) if choice is not None else "tf"


def _backends(b: Bench) -> dict[str, Any]:
    s, o = b.model_options, b.opts
    assert b.sample is not None
    photos = o.photos if o.photos is not None and o.photos.is_dir() else None
    return backend_rows(
        s.path,
        s.labels,
        b.sample.path,
        photos,
        o.tflite,
        frames=o.frames,
        warmup=o.warmup,
        repeats=o.repeats,
        cache_dir=o.cache_dir,
        calibration_frames=min(300, max(60, o.frames)),
        threshold=o.threshold,
        progress=b.progress,
    )


def _track(b: Bench) -> dict[str, Any]:
    o = b.opts
    assert b.sample is not None
    # the model's output down to ByteTrack's low threshold, every class
    low = TrackSettings(threshold=o.threshold).detect_threshold
    return tracking.tracking_bench(
        b.sample.path,
        engine(b.model, low, o.max_boxes),
        o.threshold,
        b.opts.track_frames,
        b.progress,
    )


def _ray(b: Bench) -> dict[str, Any]:
    o = b.opts
    small, big = o.ray_images
    b.progress(f"ray engine vs local: {small} and {big} images, each engine in its own process")
    return ray_engine.ray_vs_local(
        PHOTOS_DIR, o.ray_images, o.cache_dir, b.tmp / "ray", repeats=min(o.repeats, 2)
    )


def _ray_cameras(b: Bench) -> dict[str, Any]:
    b.progress("cameras on ray: 2 and 4 cameras at 10 FPS, one node vs two nodes of one cluster")
    return ray_cameras.cameras_bench(b.opts.video, b.tmp / "ray_cameras")


def _ray_cameras_lines(result: dict[str, Any]) -> list[str]:
    return ["", *ray_cameras.format_lines(result)]


def _events(b: Bench) -> dict[str, Any]:
    """The event stage's CPU and the clip recorder's memory: no model, tracked boxes on known
    paths."""

    return events_bench(max(300, b.opts.frames), 3 * b.opts.live_frames, b.progress)


def _events_lines(result: dict[str, Any]) -> list[str]:
    return format_events(result)


def _serve(b: Bench) -> dict[str, Any]:
    """The detection service under 1, 4 and 16 clients, batched vs one request per model call
    (each service in its own process)."""

    s = b.model_options
    return serve_api(
        s.path,
        s.labels,
        _photos(b),
        b.tmp,
        workers=max(2, s.workers),
        progress=b.progress,
    )


def _serve_lines(result: dict[str, Any]) -> list[str]:
    return ["", format_serve(result)]


def _explain(b: Bench) -> dict[str, Any]:
    photos = _photos(b)
    b.progress(f"explain: every method on every detection of {photos}")
    s = b.model_options
    return explain_bench(
        s.path,
        photos,
        labels_path=s.labels,
        threshold=b.opts.threshold,
        overlays=b.opts.overlays,
    )


def _explain_lines(result: dict[str, Any]) -> list[str]:
    return ["", format_table(result)]


def _inspect_scaling(b: Bench) -> dict[str, Any]:
    return {"rows": inspect_scaling(progress=b.progress)}


def _inspect_lines(result: dict[str, Any]) -> list[str]:
    return ["", *scaling_lines(result["rows"])]


def _photos(b: Bench) -> Path:
    if b.opts.photos is None or not b.opts.photos.is_dir():
        raise ConfigError(
            f"bench photos '{b.opts.photos}' is not a folder",
            hint="run `python main.py fetch` for the sample photos",
        )
    return b.opts.photos


#: Every section, in the order ``--only`` lists them and the once-measurements run.
REGISTRY: dict[str, Section] = {
    s.name: s
    for s in (
        Section("model", _model_jobs, _latency, "model_latency"),
        Section("tflite", None, _latency, "model_latency"),
        Section("naive", _naive_jobs),
        Section("pipeline", _pipeline_jobs),
        Section("workers", _workers_jobs),
        Section("detect_every", _every_jobs),
        Section("live", None, _live, "live"),
        Section("web", None, _web, "web"),
        Section("memory", None, _memory, "memory"),
        Section("split", None, _split, "split"),
        Section("video", _codec_jobs, _video_io, "video_io"),
        Section("ray", None, _ray, "ray_engine", model=False, quick=False),
        Section(
            "ray_cameras",
            None,
            _ray_cameras,
            "ray_cameras",
            model=False,
            quick=False,
            format=_ray_cameras_lines,
        ),
        Section("track", None, _track, "track"),
        Section("backends", None, _backends, "backends", quick=False),
        Section("events", None, _events, "events", model=False, format=_events_lines),
        Section("serve", None, _serve, "serve", model=False, quick=False, format=_serve_lines),
        Section(
            "explain", None, _explain, "explain", model=False, full=False, format=_explain_lines
        ),
        Section(
            "inspect",
            None,
            _inspect_scaling,
            "inspect_scaling",
            model=False,
            quick=False,
            format=_inspect_lines,
        ),
    )
}
SECTIONS = tuple(REGISTRY)


def default_sections(quick: bool = False) -> tuple[str, ...]:
    """The sections of a run without ``--only`` (a ``--quick`` one leaves out the long ones)."""
    return tuple(n for n, s in REGISTRY.items() if s.full and (s.quick or not quick))


def section_lines(results: dict[str, Any]) -> list[str]:
    """The tables of the sections the main table does not show."""
    lines: list[str] = []
    for s in REGISTRY.values():
        if s.format is not None and results.get(s.key):
            lines += s.format(results[s.key])
    return lines
