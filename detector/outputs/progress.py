"""Progress of a video file or image folder run: a tqdm bar on a terminal, else a log line.

On a terminal (stderr is a TTY and the log shows INFO records, i.e. no ``-q``) a tqdm bar
shows frames done / total, frames/s and the ETA (a plain counter when the length is
unknown), and log records are routed through tqdm so that they print above the bar instead
of tearing it. Elsewhere (CI logs, pipes, files) a ``progress:`` log line every few seconds
says the same. Live sources get no progress sink: they have no end, and the pipeline's FPS
line already reports them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from detector.outputs.base import Sink
from detector.types import FrameResult

log = logging.getLogger(__name__)

MODES = ("auto", "bar", "log", "off")
LOG_INTERVAL_S = 5.0


def choose_mode(mode: str, stream: TextIO | None = None) -> str:
    """``bar``, ``log`` or ``off`` for a configured ``mode`` (``auto``: a bar only when
    ``stream`` — stderr by default — is a terminal and INFO records are shown)."""
    if mode != "auto":
        return mode
    stream = stream if stream is not None else sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    return "bar" if tty and not quiet else "log"


def _eta(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class ProgressSink(Sink):
    """Counts written frames and shows it (a sink, so it sees exactly what every output got).

    Args:
        total: Frames expected (a video's frame count, a folder's images, capped by
            ``run.max_frames``), or ``None`` when unknown.
        desc: A short label (the source's name).
        mode: ``auto``, ``bar``, ``log`` or ``off`` (see :func:`choose_mode`).
        interval_s: Seconds between ``progress:`` log lines.
        stream: Where the bar goes (stderr by default).
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        mode: str = "auto",
        *,
        interval_s: float = LOG_INTERVAL_S,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r} is not one of {', '.join(MODES)}")
        self.total = total if total and total > 0 else None
        self.desc = desc
        self.mode = choose_mode(mode, stream)
        self.interval_s = interval_s
        self.clock = clock
        self.done = 0
        self._start = clock()
        self._next_log = self._start + interval_s
        self._bar: Any = None
        self._redirect: contextlib.ExitStack | None = None
        if self.mode == "bar":
            self._bar = tqdm(
                total=self.total,
                desc=desc,
                unit="frame",
                file=stream if stream is not None else sys.stderr,
                dynamic_ncols=True,
                smoothing=0.1,
            )
            self._redirect = contextlib.ExitStack()
            self._redirect.enter_context(logging_redirect_tqdm(tqdm_class=tqdm))

    def write(self, result: FrameResult | None, annotated: np.ndarray | None = None) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif self.mode == "log":
            now = self.clock()
            if now >= self._next_log:
                self._next_log = now + self.interval_s
                log.info("progress: %s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """``120/795 frames (15%), 24.1 frames/s, ETA 0:00:28`` (no total: ``120 frames, …``)."""
        now = self.clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        if self.total is None:
            return f"{self.done} frames, {rate:.1f} frames/s"
        pct = 100.0 * self.done / self.total
        eta = _eta((self.total - self.done) / rate) if rate > 0 else "?"
        return f"{self.done}/{self.total} frames ({pct:.0f}%), {rate:.1f} frames/s, ETA {eta}"

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._bar is not None:
            try:
                self._bar.close()
            finally:
                if self._redirect is not None:
                    self._redirect.close()
        elif self.mode == "log" and self.done:
            log.info("progress: %s", self.line())

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "frames": self.done, "total": self.total}
