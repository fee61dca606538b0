"""Ctrl-C and SIGTERM turned into one clean stop that never cuts a frame's writes short."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

_requested = threading.Event()
_installed = 0  # StopSignals blocks open on the main thread (a run inside a command nests)


def stop_requested() -> bool:
    """True once SIGINT or SIGTERM reached a :class:`StopSignals` during this run: code
    that catches broad errors (an import that wraps every failure) tells a stop from a fault."""
    return _requested.is_set()


def new_run() -> None:
    """Forget the stop an earlier run received (unless a run is going on): a program that
    caught one Ctrl-C can run again (:meth:`StopSignals.installed` and ``Detector`` call it)."""
    if not _installed:
        _requested.clear()


class StopSignals:
    """Ctrl-C and SIGTERM, turned into one clean stop.

    Outside a frame's writes a signal raises ``KeyboardInterrupt`` at once (it may wake a
    blocked wait); while a frame is being written to the sinks (``deferring``) it is held
    until that frame is complete (``pending``), so every output holds the same frames.
    Repeats are ignored, so the shutdown that follows (joins, video finalization) is not
    cut short. ``fired`` stays set, so a stop whose ``KeyboardInterrupt`` a library caught
    (one arriving during start-up, inside an import) still ends the run at the next frame.
    """

    def __init__(self) -> None:
        self.fired = False
        self.pending = False
        self.deferring = False

    def handler(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.fired:
            log.warning("%s: already stopping, finishing the outputs", name)
            return
        self.fired = True
        _requested.set()
        log.info("%s received: stopping", name)
        if self.deferring:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        """Handle SIGINT and SIGTERM for the block (main thread only; restored after)."""
        global _installed
        new_run()
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals can only be handled on the main thread
            return
        previous = {s: signal.signal(s, self.handler) for s in (signal.SIGTERM, signal.SIGINT)}
        _installed += 1
        try:
            yield self
        finally:
            _installed -= 1
            for s, h in previous.items():
                signal.signal(s, h)
