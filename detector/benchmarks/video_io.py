"""Video writing and decoding cost: the app's H.264 writer (PyAV, libx264) beside OpenCV's mp4v,
a few x264 settings beside the default, and OpenCV's decoder beside PyAV's.

Each writer measurement writes the same real frames (the sample video's, and those of the
made 1080p video) through :func:`detector.outputs.video.open_video_sink` — the sink ``run``
opens — and times the process CPU (every thread, so libx264's own threads count) from the
first write to the finished file (flush and ``+faststart`` remux included). The frames are
decoded first and written in a loop, so decoding is not in the figure.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.benchmarks.media import BenchVideo, decode_frames
from detector.benchmarks.system import Span, median_run
from detector.outputs.video import AvVideoSink, open_video_sink
from detector.types import Detections, Frame, FrameResult

# (name, codec, AvVideoSink keyword overrides): the default first, then settings it was chosen over
WRITERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("h264", "h264", {}),
    ("mp4v", "mp4v", {}),
)
H264_VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("h264 crf 23", "h264", {"crf": 23}),
    ("h264 superfast", "h264", {"preset": "superfast"}),
    ("h264 veryfast", "h264", {"preset": "veryfast"}),
    ("h264 1 thread", "h264", {"threads": 1}),
    ("h264 no zerolatency", "h264", {"tune": None}),
)
MAX_DISTINCT = 60  # frames held in memory per size (1080p: 6 MB each)


def write_cost(
    frames: list[np.ndarray], count: int, fps: float, codec: str, options: dict[str, Any], out: Path
) -> dict[str, float]:
    """Write ``count`` frames (cycling ``frames``) through the app's sink; CPU and wall ms/frame."""

    path = out / f"w.{codec}.mp4"
    out.mkdir(parents=True, exist_ok=True)
    sink = AvVideoSink(path, fps, **options) if options else open_video_sink(path, fps, codec)
    span = Span().start()
    try:
        with sink:
            for i in range(count):
                image = frames[i % len(frames)]
                sink.write(
                    FrameResult(Frame(i, i / fps, image), Detections.empty(), True, i), image
                )
        span.stop()
        size = path.stat().st_size
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "cpu_ms_per_frame": 1e3 * span.cpu_s / count,
        "wall_ms_per_frame": 1e3 * span.wall_s / count,
        "kbytes_per_frame": size / 1024 / count,
    }


def decode_cost(path: Path, count: int, reader: str) -> dict[str, float]:
    """Decode ``count`` frames of ``path`` to BGR arrays with OpenCV or PyAV; CPU ms/frame."""
    span = Span().start()
    n = 0
    if reader == "opencv":
        cap = cv2.VideoCapture(str(path))
        try:
            while n < count:
                ok, _ = cap.read()
                if not ok:
                    break
                n += 1
        finally:
            cap.release()
    else:
        import av

        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                frame.to_ndarray(format="bgr24")
                n += 1
                if n >= count:
                    break
    span.stop()
    n = max(n, 1)
    return {"cpu_ms_per_frame": 1e3 * span.cpu_s / n, "wall_ms_per_frame": 1e3 * span.wall_s / n}


def video_io(
    videos: list[BenchVideo],
    count: int,
    repeats: int,
    tmp: Path,
    *,
    variants: bool,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Writer CPU per frame for each writer (and x264 variant) and decoder, per video size.

    Returns:
        ``{label: {"write": {name: {cpu_ms_per_frame, ...}}, "decode": {reader: {...}}}}``,
        medians over ``repeats`` interleaved repeats.
    """
    writers = WRITERS + (H264_VARIANTS if variants else ())
    out: dict[str, Any] = {}
    for video in videos:
        progress(f"video i/o {video.label}: decoding {min(count, MAX_DISTINCT)} frames")
        frames = decode_frames(video.path, min(count, MAX_DISTINCT))
        if not frames:
            continue
        jobs: dict[str, Callable[[], dict[str, float]]] = {
            f"write {name}": partial(
                write_cost, frames, count, video.fps, codec, opts, tmp / f"vio-{video.label}"
            )
            for name, codec, opts in writers
        }
        for reader in ("opencv", "pyav"):
            jobs[f"decode {reader}"] = partial(decode_cost, video.path, count, reader)
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in jobs}
        for r in range(repeats):
            for name, job in jobs.items():
                progress(f"video i/o {video.label}: {name} (repeat {r + 1}/{repeats})")
                runs[name].append(job())
        del frames
        entry: dict[str, Any] = {"write": {}, "decode": {}, "frames": count}
        for name, rs in runs.items():
            kind, what = name.split(" ", 1)
            entry[kind][what] = median_run(rs)
        out[video.label] = entry
    return out
