"""Events kept in memory for the Python API: the stream's caller drains them as it reads results."""

from __future__ import annotations

import collections
import threading
from typing import Any


class EventCollector:
    """An event sink holding events until :meth:`drain` (thread-safe; bounded: the oldest go
    first when ``maxlen`` events wait, counted in ``dropped``)."""

    name = "python"

    def __init__(self, maxlen: int = 10000) -> None:
        self._events: collections.deque[dict[str, Any]] = collections.deque()
        self._lock = threading.Lock()
        self.maxlen = maxlen
        self.collected = 0
        self.dropped = 0

    def send(self, event: dict[str, Any]) -> None:
        with self._lock:
            if len(self._events) >= self.maxlen:
                self._events.popleft()
                self.dropped += 1
            self._events.append(event)
            self.collected += 1

    @property
    def events_published(self) -> int:
        return self.collected

    def counts(self, topic: str, payload: dict[str, Any]) -> None:
        """The stream's counts are read from its stage; nothing to keep here."""

    def drain(self) -> list[dict[str, Any]]:
        """Every event waiting, oldest first (and forget them)."""
        with self._lock:
            out = list(self._events)
            self._events.clear()
        return out

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"collected": self.collected, "dropped": self.dropped}
