"""A bounded queue drained by one worker thread: what keeps every event sink off the pipeline.

``put`` never blocks: when the queue is full the item is dropped and counted (a warning is
logged at the first drop and then every 100th). ``close`` lets the worker finish what is
queued for at most ``drain_s`` seconds; what is left is counted as dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_STOP = object()


class QueueWorker:
    """Runs ``handle(item)`` for each item put, in order, on its own thread.

    Args:
        name: What the items go to, for the log and the thread's name (``mqtt``, ``webhook``).
        handle: Called with each item; an exception is logged and counted in ``failed``.
        maxsize: Items queued at most.
        drain_s: How long ``close`` waits for the queue to empty.
    """

    def __init__(
        self, name: str, handle: Callable[[Any], None], maxsize: int = 1000, drain_s: float = 10.0
    ) -> None:
        self.name = name
        self.handle = handle
        self.drain_s = drain_s
        self.dropped = 0
        self.failed = 0
        self.handled = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"events-{name}", daemon=True)
        self._thread.start()

    @property
    def abandoned(self) -> bool:
        """True once ``close`` stopped waiting: a handler should give up its retries."""
        return self._abandon.is_set()

    def put(self, item: Any) -> bool:
        """Queue ``item``; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning(
                    "%s: queue full (%d items): %d event(s) dropped so far",
                    self.name,
                    self._queue.maxsize,
                    self.dropped,
                )
            return False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._abandon.is_set():
                self.dropped += 1
                continue
            try:
                self.handle(item)
                self.handled += 1
            except Exception as exc:
                self.failed += 1
                log.warning("%s: %s", self.name, exc, exc_info=log.isEnabledFor(logging.DEBUG))

    def close(self) -> None:
        """Finish the queue (at most ``drain_s``), then stop the thread."""
        if not self._thread.is_alive():
            return
        deadline = time.monotonic() + self.drain_s
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._queue.empty():
            self._abandon.set()
        while True:
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                self._abandon.set()
        self._thread.join(timeout=max(0.5, deadline - time.monotonic()))
        if self._thread.is_alive():  # a handler still retrying: tell it to give up
            self._abandon.set()
            self._thread.join(timeout=5.0)
        if self._thread.is_alive():
            log.warning("%s: worker still busy after %.0f s; leaving it", self.name, self.drain_s)

    def stats(self) -> dict[str, int]:
        """Counts for ``run.json``."""
        return {"handled": self.handled, "dropped": self.dropped, "failed": self.failed}
