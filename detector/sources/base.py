"""The capture-source interface (read/close, a context manager) and a pacing wrapper."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from detector.errors import SourceError
from detector.types import SourceInfo

log = logging.getLogger(__name__)

_CLOSE_WAIT_S = 5.0


class Source:
    """Base of every capture source; a context manager.

    Attributes:
        info: What the source is and delivers.
        skipped: Unreadable items skipped so far (image folders), each logged.
        skips: ``(path, reason)`` of each skipped item, in order (for ``skipped.csv``).
        end_note: Why the source ended before its announced end (e.g. a cut video), or None.
    """

    info: SourceInfo

    def __init__(self, info: SourceInfo) -> None:
        self.info = info
        self.skipped = 0
        self.skips: list[tuple[str, str]] = []
        self.end_note: str | None = None
        # read() and close() may come from different threads; releasing an OpenCV
        # capture while another thread reads from it can crash the process.
        self._lock = threading.Lock()
        self._closed = False

    def read(self) -> tuple[np.ndarray, str | None] | None:
        """Next image as ``(BGR uint8 (H, W, 3), name or None)``; ``None`` at the end."""
        with self._lock:
            if self._closed:
                return None
            return self._read()

    def interrupt(self) -> None:
        """Wake a :meth:`read` blocked in another thread so it returns ``None`` soon.

        Files never block for long, so the base does nothing; live sources that wait for
        frames (:class:`~detector.sources.reconnect.ReconnectingSource`) override it.
        """

    def close(self) -> None:
        """Release the device or file. Idempotent; safe from another thread."""
        if not self._lock.acquire(timeout=_CLOSE_WAIT_S):
            log.warning(
                "source %s: still busy reading after %.0f s; not released",
                self.info.uri,
                _CLOSE_WAIT_S,
            )
            return
        try:
            if not self._closed:
                self._closed = True
                self._release()
        finally:
            self._lock.release()

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        raise NotImplementedError

    def _release(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.info.uri!r})"


class PacedSource(Source):
    """Deliver another source's frames at a fixed rate, like a camera would.

    Used to measure live behaviour (keep-newest, drops, capture-to-output latency)
    repeatably from a file. Each :meth:`read` returns when its frame is due; ``due[i]``
    is the monotonic time frame ``i`` became available (latency is measured from it).

    Args:
        inner: The source to pace (closed with this one).
        fps: Frames per second (default: the inner source's own rate).
        live: What :attr:`info` reports (True: the pipeline keeps the newest frame).
    """

    def __init__(self, inner: Source, fps: float | None = None, live: bool = True) -> None:
        rate = fps or inner.info.fps
        if not rate or rate <= 0:
            raise SourceError(
                f"cannot pace source {inner.info.uri!r}: it reports no frame rate",
                hint="give the rate explicitly",
            )
        info = SourceInfo(
            inner.info.uri,
            inner.info.kind,
            live,
            inner.info.width,
            inner.info.height,
            float(rate),
            inner.info.frame_count,
        )
        super().__init__(info)
        self._inner = inner
        self._period_s = 1.0 / rate
        self._due: float | None = None
        self.due: list[float] = []  # when each frame became available (monotonic s)

    @property
    def skipped(self) -> int:
        return self._inner.skipped

    @skipped.setter
    def skipped(self, value: int) -> None:
        pass

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        item = self._inner.read()
        now = time.monotonic()
        self._due = now if self._due is None else self._due + self._period_s
        if self._due > now:
            time.sleep(self._due - now)  # emulating a sensor's frame clock
        elif now - self._due > self._period_s:
            self._due = now  # fell behind (slow decode): do not burst to catch up
        if item is not None:
            self.due.append(self._due)
        return item

    def _release(self) -> None:
        self._inner.close()
