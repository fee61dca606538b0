"""Tracking: how much of the every-frame detections the carried boxes cover, id switches, cost.

The sample video goes through the model once, on every frame, at the tracker's low score
threshold; those detections are kept for the whole measurement (the "reference" is them at
the app's threshold). A run with ``detect_every N`` sees the same detections on frames 0, N,
2N, ... (the model is deterministic), so every N and every tracker is replayed from memory:

* coverage: on the frames between model runs, the share of reference detections that a
  shown box covers (same class, IoU >= 0.5, one-to-one) — static carrying (the last boxes,
  as without a tracker) beside each tracker;
* id switches per 100 frames at N = 1 (no ground truth: an object matched frame to frame,
  same class and IoU >= 0.5, whose id changes; see ``detector.track.metrics.id_switches``);
* the stage's CPU time per frame (thread time), on the sample and on a synthetic scene of
  ``objects`` moving boxes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.track import TrackSettings, TrackStage
from detector.track.metrics import covered, id_switches
from detector.types import Detections, Frame, FrameResult, SourceInfo, SourceKind

EVERY = (2, 4, 8)
KINDS = ("bytetrack", "sort")
_BLANK = np.zeros((1, 1, 3), np.uint8)  # the stage never looks at pixels


def reference_detections(
    video: Path, detect: Callable[[Frame], tuple[Detections, float]], max_frames: int | None
) -> tuple[list[Detections], float]:
    """Every frame of ``video`` through ``detect`` (read one at a time: only boxes are kept).

    Returns:
        The detections per frame and the video's frame rate.
    """

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise RuntimeError(f"cannot open '{video}'")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    out: list[Detections] = []
    try:
        while max_frames is None or len(out) < max_frames:
            ok, img = cap.read()
            if not ok:
                break
            out.append(detect(Frame(len(out), 0.0, img))[0])
    finally:
        cap.release()
    return out, float(fps)


def decoded(video: Path, limit: int) -> Iterator[np.ndarray]:
    """The first ``limit`` frames of ``video``, one at a time (BGR)."""

    cap = cv2.VideoCapture(str(video))
    try:
        for _ in range(limit):
            ok, img = cap.read()
            if not ok:
                return
            yield img
    finally:
        cap.release()


def replay(
    stage: Any,
    frames: Sequence[Detections],
    images: Iterable[np.ndarray],
    every: int,
    threshold: float,
) -> tuple[list[Detections], float]:
    """Feed the stage as the pipeline would with ``detect_every``; shown detections and
    the stage's mean CPU ms per frame (thread time)."""
    shown: list[Detections] = []
    cpu_s = 0.0
    for i, image in zip(range(len(frames)), images, strict=False):
        k = i - i % every
        result = FrameResult(Frame(i, 0.0, image), frames[k].filter(threshold), i == k, k)
        t0 = time.thread_time()
        shown.append(stage(result).detections)
        cpu_s += time.thread_time() - t0
    return shown, cpu_s * 1e3 / max(1, len(shown))


def coverage(
    reference: Sequence[Detections], shown: Callable[[int], Detections], every: int
) -> float:
    """Share of reference detections on the in-between frames that ``shown(i)`` covers."""
    total = hit = 0
    for i in range(len(reference)):
        if i % every:
            total += len(reference[i])
            hit += covered(reference[i], shown(i))
    return hit / total if total else float("nan")


def _carried(reference: Sequence[Detections], every: int) -> Callable[[int], Detections]:
    """Static carrying: frame i shows the detections of the last model run."""

    def shown(i: int) -> Detections:
        return reference[i - i % every]

    return shown


VARIANTS = {
    "bytetrack": ("bytetrack", "flow"),
    "bytetrack_kalman": ("bytetrack", "kalman"),
    "sort": ("sort", "flow"),
}
"""Reported name → (tracker, motion)."""


def tracking_quality(
    video: Path,
    frames_low: Sequence[Detections],
    fps: float,
    threshold: float,
    variants: dict[str, tuple[str, str]] = VARIANTS,
    every: Sequence[int] = EVERY,
) -> dict[str, Any]:
    """Coverage for static carrying and each tracker at each N; id switches at N = 1.

    ``frames_low`` are the model's detections of the first frames of ``video`` (which is
    decoded again for each replay: the flow motion reads the pixels).
    """

    reference = [d.filter(threshold) for d in frames_low]
    n = len(reference)
    info = SourceInfo("bench", SourceKind.VIDEO, False, fps=fps, frame_count=n)
    out: dict[str, Any] = {
        "frames": n,
        "fps": fps,
        "threshold": threshold,
        "reference_per_frame": float(np.mean([len(d) for d in reference])) if n else 0.0,
        "static": {str(k): coverage(reference, _carried(reference, k), k) for k in every},
    }
    for name, (kind, motion) in variants.items():
        settings = TrackSettings(kind, threshold=threshold, motion=motion)
        row: dict[str, Any] = {"coverage": {}, "cpu_ms_per_frame": {}}
        for k in (1, *every):
            stage = TrackStage(settings, info, detect_every=k)
            shown, cpu_ms = replay(
                stage, frames_low, decoded(video, n), k, settings.detect_threshold
            )
            row["cpu_ms_per_frame"][str(k)] = cpu_ms
            if k == 1:
                row["id_switches_per_100"] = 100.0 * id_switches(shown) / max(1, n)
                row["ids"] = stage.tracker.ids_given
            else:
                row["coverage"][str(k)] = coverage(reference, shown.__getitem__, k)
        out[name] = row
    return out


class SyntheticScene:
    """``objects`` textured boxes of two classes moving at constant speed over a textured
    background, and detections of them with 2 px of jitter (what a model would report).

    Frames are drawn on demand (``image(i)``) so a long scene costs no memory.
    """

    def __init__(
        self, objects: int, frames: int, size: tuple[int, int] = (1280, 720), seed: int = 0
    ) -> None:
        rng = np.random.default_rng(seed)
        self.size = size
        w, h = size
        self.background = rng.integers(0, 256, (h, w, 3), np.uint8)
        self.start = rng.uniform([0, 0], [w - 60, h - 120], (objects, 2))
        self.velocity = rng.uniform(-4, 4, (objects, 2))
        self.dims = rng.uniform([30, 60], [60, 120], (objects, 2)).astype(int)
        self.textures = [rng.integers(0, 256, (d[1], d[0], 3), np.uint8) for d in self.dims]
        classes = np.where(np.arange(objects) % 4 == 0, 3, 1)
        self.detections = []
        for i in range(frames):
            xy = self._xy(i)
            boxes = np.hstack([xy, xy + self.dims]) + rng.normal(0, 2, (objects, 4))
            scores = rng.uniform(0.55, 0.95, objects)
            self.detections.append(Detections(boxes, scores, classes))

    def _xy(self, i: int) -> np.ndarray:
        w, h = self.size
        xy = self.start + self.velocity * i
        xy[:, 0] %= w - 60  # wrap around so they stay in view
        xy[:, 1] %= h - 120
        return xy

    def image(self, i: int) -> np.ndarray:
        img = self.background.copy()
        for (x, y), tex in zip(self._xy(i).astype(int), self.textures, strict=True):
            img[y : y + tex.shape[0], x : x + tex.shape[1]] = tex
        out: np.ndarray = img
        return out

    def images(self) -> Iterator[np.ndarray]:
        for i in range(len(self.detections)):
            yield self.image(i)


def tracking_cost(
    objects: int = 20,
    frames: int = 120,
    variants: dict[str, tuple[str, str]] = VARIANTS,
    every: Sequence[int] = (1, 4),
) -> dict[str, Any]:
    """CPU ms per frame of the stage with ``objects`` objects in view (synthetic 720p)."""

    scene = SyntheticScene(objects, frames)
    info = SourceInfo("synthetic", SourceKind.VIDEO, False, fps=30.0, frame_count=frames)
    out: dict[str, Any] = {"objects": objects, "frames": frames, "size": list(scene.size)}
    for name, (kind, motion) in variants.items():
        settings = TrackSettings(kind, motion=motion)
        out[name] = {
            str(k): replay(
                TrackStage(settings, info, detect_every=k),
                scene.detections,
                scene.images(),
                k,
                0.0,
            )[1]
            for k in every
        }
    return out


def tracking_bench(
    video: Path,
    detect_low: Callable[[Frame], tuple[Detections, float]],
    threshold: float,
    max_frames: int | None,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The whole section: reference run, quality replays, synthetic cost."""
    progress(f"track: every frame of {video.name} through the model (reference)")
    t0 = time.perf_counter()
    frames_low, fps = reference_detections(video, detect_low, max_frames)
    reference_s = time.perf_counter() - t0
    progress(f"track: replaying {len(frames_low)} frames at detect_every {EVERY}")
    out = tracking_quality(video, frames_low, fps, threshold)
    out["reference_run_s"] = reference_s
    out["cost_synthetic"] = tracking_cost()
    return out
