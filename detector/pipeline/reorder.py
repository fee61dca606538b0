"""A bounded, closable reorder buffer: items put by sequence number in any order come out in order.

Several inference workers finish frames out of order; the output stage must see them in
frame order. A put waits while its sequence number is ``window`` or more ahead of the next
one to deliver, so memory stays bounded; the next expected number is always admitted, so
this can never deadlock while its producer is alive.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

from .channel import Closed

T = TypeVar("T")


class ReorderBuffer(Generic[T]):
    """Deliver items in sequence order ``0, 1, 2, ...`` whatever order they arrive in.

    Args:
        window: How far ahead of the next delivery a put may be before it waits (>= 1).
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"ReorderBuffer window must be at least 1; got {window}")
        self.window = window
        self._items: dict[int, T] = {}
        self._next = 0
        self._closed = False
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def next_seq(self) -> int:
        """Sequence number the next :meth:`get` delivers."""
        return self._next

    def __len__(self) -> int:
        return len(self._items)

    def put(self, seq: int, item: T) -> bool:
        """Hand over item number ``seq``, waiting while it is too far ahead.

        Returns:
            True when stored; False when the buffer is (or becomes) closed.
        """
        with self._lock:
            while seq >= self._next + self.window and not self._closed:
                self._room.wait()
            if self._closed:
                return False
            if seq < self._next or seq in self._items:
                raise ValueError(f"sequence number {seq} already delivered or pending")
            self._items[seq] = item
            if seq == self._next:
                self._ready.notify()
            return True

    def get(self, timeout_s: float | None = None) -> T:
        """The next item in sequence, waiting until it arrives.

        Raises:
            Closed: Closed and the next item is not there (nothing more will come).
            TimeoutError: ``timeout_s`` seconds passed without the next item.
        """
        with self._lock:
            if not self._ready.wait_for(
                lambda: self._next in self._items or self._closed, timeout_s
            ):
                raise TimeoutError(f"item {self._next} not ready after {timeout_s} s")
            if self._next not in self._items:
                raise Closed
            item = self._items.pop(self._next)
            self._next += 1
            self._room.notify_all()
            return item

    def close(self, *, discard: bool = False) -> None:
        """Close and wake everyone; with ``discard`` drop what is still waiting. Idempotent."""
        with self._lock:
            self._closed = True
            if discard:
                self._items.clear()
            self._ready.notify_all()
            self._room.notify_all()
