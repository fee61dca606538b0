"""Where annotated frames and detections go: one sink per output, opened by ``open_outputs``.

Every sink is a context manager with ``write(result, annotated)`` and an idempotent
``close()`` (see :mod:`detector.outputs.base`), so each output is finalized on every exit
path. A new output: write a sink in its own module here, give it a config key in
``output:`` and open it in :func:`open_outputs`.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from detector.config import OutputConfig
from detector.errors import SinkError
from detector.labels import LabelMap
from detector.outputs.base import Sink
from detector.outputs.exports import (
    COCO_RESULTS_NAME,
    CSV_NAME,
    MOT_NAME,
    CocoSink,
    CsvSink,
    MotSink,
)
from detector.outputs.images import ImageSink
from detector.outputs.jsonl import JsonlSink, frame_record
from detector.outputs.progress import ProgressSink
from detector.outputs.record import RUN_JSON
from detector.outputs.rundir import make_run_dir, write_json
from detector.outputs.video import FALLBACK_FPS, AvVideoSink, VideoSink, open_video_sink
from detector.outputs.window import WindowSink, display_available, display_problem
from detector.types import SourceInfo

__all__ = [
    "COCO_RESULTS_NAME",
    "CSV_NAME",
    "FALLBACK_FPS",
    "IMAGES_DIR",
    "JSONL_NAME",
    "MOT_NAME",
    "RUN_JSON",
    "VIDEO_NAME",
    "AvVideoSink",
    "CocoSink",
    "CsvSink",
    "ImageSink",
    "JsonlSink",
    "MotSink",
    "ProgressSink",
    "Sink",
    "VideoSink",
    "WindowSink",
    "describe_outputs",
    "display_available",
    "make_run_dir",
    "open_outputs",
    "open_video_sink",
    "write_json",
]

log = logging.getLogger(__name__)

VIDEO_NAME = "annotated"
JSONL_NAME = "detections.jsonl"
IMAGES_DIR = "images"


def open_outputs(
    oc: OutputConfig,
    run_dir: Path,
    labels: LabelMap,
    info: SourceInfo,
    stack: ExitStack,
    *,
    max_frames: int | None = None,
    web_feed: Any = None,
    min_score: float = 0.0,
) -> dict[str, Any]:
    """Open the outputs ``oc`` asks for, in ``stack`` (closed on every exit path).

    Args:
        max_frames: The run's frame limit, if any (caps the progress bar's total).
        web_feed: This source's :class:`~detector.outputs.web.Feed` when the run serves
            the web view (``output.serve``); its server belongs to the run, not the source.
        min_score: The run's ``detect.threshold``: the MOT file keeps rows at or above it.

    Returns:
        The open sinks by name (``window``, ``web``, ``video``, ``images``, ``jsonl``,
        ``coco``, ``csv``, ``mot``, ``progress``), in the order they are written.
    """
    sinks: dict[str, Any] = {}
    window = _open_window(run_dir, info, stack) if oc.show else None
    if window is not None:
        sinks["window"] = window
    if web_feed is not None:
        from detector.outputs.web import WebSink

        uri = info.uri
        sinks["web"] = stack.enter_context(
            WebSink(web_feed, labels.name, lambda result: frame_record(result, labels, uri))
        )
    sinks.update(_open_files(oc, run_dir, labels, info, stack, min_score))
    if not sinks:
        log.warning(
            "no output is enabled (no window, web view, video, images, JSON lines or "
            "export): "
            "only run.json will be written"
        )
    if not info.live and oc.progress != "off":  # live sources: the pipeline's FPS line
        total = info.frame_count
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        name = Path(info.uri).name or info.uri
        sinks["progress"] = stack.enter_context(ProgressSink(total, name, oc.progress))
    return sinks


def _open_window(run_dir: Path, info: SourceInfo, stack: ExitStack) -> WindowSink | None:
    """The window, or ``None`` (with a warning) when no display can show one."""
    problem = display_problem()
    if problem:
        log.warning("cannot show a window (%s): running disk-only, outputs in %s", problem, run_dir)
        return None
    try:
        return stack.enter_context(WindowSink(f"detector: {info.uri}"))
    except SinkError as exc:  # the display went away between the probe and now
        log.warning(
            "cannot show a window (%s): running disk-only, outputs in %s", exc.message, run_dir
        )
        return None


def _open_files(
    oc: OutputConfig,
    run_dir: Path,
    labels: LabelMap,
    info: SourceInfo,
    stack: ExitStack,
    min_score: float,
) -> dict[str, Any]:
    """The sinks that write files into ``run_dir``: video, images, JSON lines, exports."""
    sinks: dict[str, Any] = {}
    if oc.video:
        sinks["video"] = stack.enter_context(
            open_video_sink(
                run_dir / f"{VIDEO_NAME}.{oc.video_format}",
                info.fps,
                oc.video_codec,
                live=info.live,
            )
        )
    if oc.images:
        sinks["images"] = stack.enter_context(ImageSink(run_dir / IMAGES_DIR))
    if oc.jsonl:
        sinks["jsonl"] = stack.enter_context(JsonlSink(run_dir / JSONL_NAME, labels, info.uri))
    if oc.coco:
        stem = None if info.kind == "images" else (Path(info.uri).stem or info.kind)
        sinks["coco"] = stack.enter_context(
            CocoSink(run_dir / COCO_RESULTS_NAME, labels, info.uri, video_stem=stem)
        )
    if oc.csv:
        sinks["csv"] = stack.enter_context(CsvSink(run_dir / CSV_NAME, labels, info.uri))
    if oc.mot:
        sinks["mot"] = stack.enter_context(
            MotSink(run_dir / MOT_NAME, min_score, oc.mot_all, labels)
        )
    return sinks


def describe_outputs(sinks: dict[str, Any]) -> dict[str, Any]:
    """What each open (or closed) sink wrote, for ``run.json`` and the summary: every file
    with its frame, line or row count."""
    outs: dict[str, Any] = {}
    if "video" in sinks and not sinks["video"].path.is_file():
        # The writer failed before a frame reached the disk: list no file that is not there.
        outs["video"] = {"path": None, "frames": 0, "error": "not written"}
    elif "video" in sinks:
        outs["video"] = sinks["video"].describe()
    if "jsonl" in sinks:
        outs["jsonl"] = {"path": sinks["jsonl"].path.name, "lines": sinks["jsonl"].lines_written}
    if "images" in sinks:
        outs["images"] = {"path": IMAGES_DIR, "count": sinks["images"].images_written}
    for name in ("coco", "csv", "mot", "progress"):
        if name in sinks:
            outs[name] = sinks[name].describe()
    if "web" in sinks:
        outs["web"] = {"frames": sinks["web"].frames_written}
    outs["window"] = "window" in sinks
    return outs
