"""The events section: CPU cost of zones + lines + events per frame with N tracked objects, and
memory while clips are cut from 1080p frames.

No model runs: the objects are tracked boxes on known paths (as a tracker would hand them on),
so the figures are the event stage's own. CPU is process time (every thread: the stage, the
events.jsonl writer), per frame, beside the same loop without the stage. The clip part feeds
annotated 1080p frames at the source's rate to the clip recorder with an event every few
seconds and reads RSS along the way.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.benchmarks.system import rss_mb
from detector.draw import annotate
from detector.events.clips import ClipRecorder
from detector.events.jsonl import EventJsonl
from detector.events.options import ClipSpec
from detector.events.spec import LineSpec, ZoneSpec
from detector.events.stage import EventStage
from detector.labels import LabelMap
from detector.types import Detections, Frame, FrameResult, SourceInfo, SourceKind

SIZE = (1920, 1080)
FPS = 30.0
LABELS = LabelMap({1: "person", 3: "car"})


def _objects(n: int, index: int) -> Detections:
    """``n`` boxes sweeping left and right across the frame at different heights and speeds."""
    w, h = SIZE
    k = np.arange(n)
    speed = 4.0 + (k % 5)
    x = (k * 97 + speed * index) % (2 * (w - 120))
    x = np.where(x > w - 120, 2 * (w - 120) - x, x)
    y = 60 + (k * 53) % (h - 260)
    xyxy = np.stack([x, y, x + 100, y + 200], axis=1)
    classes = np.where(k % 3 == 0, 3, 1)
    return Detections(xyxy, np.full(n, 0.9), classes, k + 1)


def _stage(folder: Path, stack: ExitStack) -> EventStage:
    info = SourceInfo("bench", SourceKind.VIDEO, False, *SIZE, FPS, None)
    zones = [
        (ZoneSpec("left", ((0.05, 0.1), (0.45, 0.1), (0.45, 0.9), (0.05, 0.9))), None),
        (ZoneSpec("right", ((0.55, 0.1), (0.95, 0.1), (0.95, 0.9), (0.55, 0.9))), None),
    ]
    lines = [
        (LineSpec("middle", (0.5, 0.0), (0.5, 1.0)), None),
        (LineSpec("quarter", (0.25, 0.0), (0.25, 1.0)), None),
    ]
    sink = stack.enter_context(closing(EventJsonl(folder / "events.jsonl")))
    return EventStage("bench", info, LABELS, zones, lines, [sink], stationary_s=10.0)


def stage_cost(frames: int = 600, objects: int = 20) -> dict[str, Any]:
    """CPU-ms per frame of the event stage (and of drawing its overlay) on 1080p frames."""
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    results = [
        FrameResult(Frame(i, i / FPS, image), _objects(objects, i), True, i) for i in range(frames)
    ]
    t0 = time.process_time()
    for r in results:  # the baseline: the same loop, no stage
        r.detections.select(np.flatnonzero(r.detections.track_ids >= 0))  # type: ignore[operator]
    base = time.process_time() - t0
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        stage = _stage(Path(tmp), stack)
        t0 = time.process_time()
        for r in results:
            stage(r)
        stage.finish()
        stack.close()  # the writer thread's work counts too
        cost = time.process_time() - t0
        t0 = time.process_time()
        for r in results[:100]:
            stage.overlay(image, r)
        overlay = time.process_time() - t0
        summary = stage.summary()
    return {
        "frames": frames,
        "objects": objects,
        "size": list(SIZE),
        "cpu_ms_per_frame": (cost - base) * 1e3 / frames,
        "overlay_ms_per_frame": overlay * 1e3 / 100,
        "events": sum(summary["events"].values()),
        "crossings": sum(sum(v.values()) for ln in summary["lines"].values() for v in ln.values()),
    }


def clip_memory(frames: int = 900, every_s: float = 10.0) -> dict[str, Any]:
    """RSS while 1080p frames go to the clip recorder at ``FPS``, an event every ``every_s``."""

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (SIZE[1] // 8, SIZE[0] // 8, 3), dtype=np.uint8)
    base = cv2.resize(cv2.GaussianBlur(noise, (5, 5), 0), SIZE)  # a textured scene, not noise
    spec = ClipSpec(pre_s=3.0, post_s=5.0)
    rss: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        info = SourceInfo("bench", SourceKind.VIDEO, False, *SIZE, FPS, None)
        rec = ClipRecorder(Path(tmp) / "clips", "bench", spec, info.fps, live=False)
        t_start = time.perf_counter()
        cpu0 = time.process_time()
        for i in range(frames):
            image = np.roll(base, 8 * i, axis=1)  # motion the encoder has to follow
            r = FrameResult(Frame(i, i / FPS, image), _objects(20, i), True, i)
            annotate(image, r.detections, LABELS)
            if i % round(every_s * FPS) == round(FPS):
                rec.trigger({"type": "enter"}, i / FPS)
            rec.write(r, image)
            if i % max(1, frames // 10) == 0 or i == frames - 1:
                rss.append((i, round(rss_mb(), 1)))
            ahead = t_start + (i + 1) / FPS - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        rec.close()
        cpu = time.process_time() - cpu0
        d = rec.describe()
    return {
        "frames": frames,
        "fps": FPS,
        "size": list(SIZE),
        "rss_mb": rss,
        "rss_growth_mb": round(rss[-1][1] - rss[1][1], 1) if len(rss) > 2 else None,
        "cpu_ms_per_frame": cpu * 1e3 / frames,
        "clips": d["clips"],
        "frames_dropped": d["frames_dropped"],
        "buffer_peak_mb": round(d["buffer_peak_bytes"] / 2**20, 2),
    }


def events_bench(frames: int, clip_frames: int, progress: Any = None) -> dict[str, Any]:
    """Both measurements (``progress`` gets a line before each)."""
    say = progress or (lambda msg: None)
    say(f"events: zones + lines + events, 20 objects, {frames} frames at 1080p")
    out: dict[str, Any] = {"stage": stage_cost(frames)}
    say(f"events: clips from {clip_frames} 1080p frames at {FPS:g} fps, RSS along the way")
    out["clips"] = clip_memory(clip_frames)
    return out


def format_events(r: dict[str, Any] | None) -> list[str]:
    """Report lines of the events section."""
    if not r:
        return []
    s, c = r["stage"], r["clips"]
    return [
        "",
        f"events ({s['size'][0]}x{s['size'][1]}, {s['objects']} tracked objects, 2 zones, "
        f"2 lines, events.jsonl): {s['cpu_ms_per_frame']:.2f} CPU-ms/frame for the stage, "
        f"{s['overlay_ms_per_frame']:.2f} ms/frame to draw zones and counts "
        f"({s['events']} events, {s['crossings']} crossings in {s['frames']} frames)",
        f"clips at 1080p, {c['frames']} frames at {c['fps']:g} fps: RSS "
        + " → ".join(f"{mb:.0f} MB" for _, mb in c["rss_mb"])
        + f" (growth after warm-up {c['rss_growth_mb']} MB), encoder buffer peak "
        f"{c['buffer_peak_mb']} MB, {c['cpu_ms_per_frame']:.1f} CPU-ms/frame, "
        f"{c['clips']} clips, {c['frames_dropped']} frames dropped",
    ]
