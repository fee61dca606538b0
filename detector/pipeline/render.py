"""The render stage: a ``FrameResult`` -> the annotated frame -> every sink, on the main thread.

:class:`Renderer` is the pipeline's ``consume`` callable for ``run`` and for the bench alike,
so the bench times exactly what a run does: draw the boxes (and the HUD), write each sink,
log the periodic detection report, and say whether to go on (q / Esc in the window, a
pending stop signal).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from detector.config import DEFAULT_THRESHOLD
from detector.draw import DrawStyle, annotate, draw_hud
from detector.labels import LabelMap
from detector.pipeline.fps import SlidingFps
from detector.types import FrameResult

log = logging.getLogger(__name__)


class FrameGuard(Protocol):
    """Holds a stop signal back while a frame is written (see ``detector.pipeline.signals``)."""

    deferring: bool
    pending: bool
    fired: bool


@dataclass(frozen=True)
class RenderOptions:
    """How frames are drawn and reported.

    Attributes:
        hud: Draw FPS and inference time on the frames.
        report_every: Log the detections every N frames (0: never).
        report_threshold: Minimum score of the detections in that report.
        fps_interval_s: Window of the HUD's FPS figure, seconds.
    """

    hud: bool = True
    report_every: int = 0
    report_threshold: float = DEFAULT_THRESHOLD
    fps_interval_s: float = 5.0


class Renderer:
    """Draw each result and write it to every sink; ``__call__`` returns False to stop.

    Args:
        labels: Names for class ids.
        sinks: Outputs, each with ``write(result, annotated)``; a window sink among them
            may report ``quit_requested``.
        options: Drawing and report settings.
        guard: Optional stop-signal guard: a signal arriving mid-frame waits until the
            frame is in every sink, so all outputs hold the same frames.
        on_output: Called with each result after every sink has it (the bench's clock).
        status: Optional source status for the HUD (e.g. ``reconnecting 2``); ``None``
            from it (a healthy source) draws nothing.
        overlays: Called with ``(image, result)`` after the boxes are drawn, before the
            HUD (zones, lines and their counts).

    Attributes:
        unknown_classes: Detections per class id the label map does not hold (drawn as
            ``class N``; each id warned about once). Empty when there is no label map.
    """

    def __init__(
        self,
        labels: LabelMap,
        sinks: Sequence[Any],
        options: RenderOptions,
        *,
        guard: FrameGuard | None = None,
        on_output: Callable[[FrameResult], None] | None = None,
        status: Callable[[], str | None] | None = None,
        overlays: Sequence[Callable[[np.ndarray, FrameResult], None]] = (),
    ) -> None:
        self.labels = labels
        self.sinks = list(sinks)
        self.options = options
        self.guard = guard
        self.on_output = on_output
        self.status = status
        self.overlays = list(overlays)
        self.unknown_classes: dict[int, int] = {}
        self.style = DrawStyle()
        self.fps = SlidingFps(options.fps_interval_s)
        self.inference_ms: float | None = None
        self.frames = 0
        self._quitters = [s for s in self.sinks if hasattr(s, "quit_requested")]

    def __call__(self, result: FrameResult) -> bool:
        guard = self.guard
        if guard is None:
            self.render(result)
        else:
            if guard.fired:  # a stop whose KeyboardInterrupt a library swallowed (start-up)
                return False
            guard.deferring = True  # a signal now waits until this frame is in every output
            try:
                self.render(result)
            finally:
                guard.deferring = guard.pending
            if guard.pending:
                return False
        return not any(s.quit_requested for s in self._quitters)

    def render(self, result: FrameResult) -> np.ndarray:
        """Annotate ``result``'s frame in place, write it everywhere; returns the image."""
        image = result.frame.image  # drawn in place: the model is done with this frame
        if not image.flags.c_contiguous or not image.flags.writeable:
            image = np.ascontiguousarray(image).copy()
        annotate(image, result.detections, self.labels, self.style, fresh=result.fresh)
        for overlay in self.overlays:
            overlay(image, result)
        self.fps.tick()
        if result.inference_ms is not None:
            self.inference_ms = result.inference_ms
        if result.fresh and self.labels.names and len(result.detections):
            self._count_unknown(result)
        if self.options.hud:
            ms = f"{self.inference_ms:.1f} ms" if self.inference_ms is not None else "-"
            lines = [
                f"FPS {self.fps.fps():.1f}",
                f"inference {ms}{'' if result.fresh else ' (carried)'}",
            ]
            state = self.status() if self.status is not None else None
            if state:
                lines.append(f"source {state}")
            draw_hud(image, lines, self.style)
        for sink in self.sinks:
            sink.write(result, image)
        self.frames += 1
        every = self.options.report_every
        if every and result.frame.index % every == 0:
            self._report(result)
        if self.on_output is not None:
            self.on_output(result)
        return image

    def _count_unknown(self, result: FrameResult) -> None:
        names = self.labels.names
        for cid in result.detections.class_ids.tolist():
            cid = int(cid)
            if cid in names:
                continue
            if cid not in self.unknown_classes:
                self.unknown_classes[cid] = 0
                where = f" '{self.labels.path}'" if self.labels.path else ""
                log.warning(
                    "frame %d: class id %d is not in the label map%s: drawn as 'class %d' "
                    "(counted in run.json; check the label map belongs to this model)",
                    result.frame.index,
                    cid,
                    where,
                    cid,
                )
            self.unknown_classes[cid] += 1

    def _report(self, result: FrameResult) -> None:
        d = result.detections
        keep = np.flatnonzero(d.scores >= self.options.report_threshold)
        found = ", ".join(
            f"{self.labels.name(int(d.class_ids[i]))} {d.scores[i]:.2f}" for i in keep
        )
        name = f" ({result.frame.name})" if result.frame.name else ""
        log.info(
            "frame %d%s: %s%s",
            result.frame.index,
            name,
            found or "no detections",
            "" if result.fresh else f" (carried from frame {result.detected_index})",
        )
