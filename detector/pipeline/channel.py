"""A bounded, closable hand-off between threads: ``block`` (files) or ``newest`` (live sources).

Why not :class:`queue.Queue`: it cannot be closed, so a producer blocked on a full queue
stays blocked forever once its consumer has died (the hang seen in other video helpers).
Here :meth:`Channel.close` wakes every waiter: blocked producers get ``False``, consumers
drain what is left and then get :class:`Closed`.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

Policy = Literal["block", "newest"]


class Closed(Exception):
    """Raised by :meth:`Channel.get` when the channel is closed and empty."""


class Channel(Generic[T]):
    """A bounded FIFO that can be closed from either end.

    Args:
        capacity: Most items held at once (at least 1).
        policy: ``block``: :meth:`put` waits while the channel is full, nothing is ever
            lost (files, folders). ``newest``: :meth:`put` never waits; when full, the
            oldest item is dropped and counted in :attr:`dropped` (live sources, so
            consumers always see the most recent frame).

    Attributes:
        dropped: Items discarded by the ``newest`` policy.
    """

    def __init__(self, capacity: int, policy: Policy = "block") -> None:
        if capacity < 1:
            raise ValueError(f"Channel capacity must be at least 1; got {capacity}")
        if policy not in ("block", "newest"):
            raise ValueError(f"Channel policy must be 'block' or 'newest'; got {policy!r}")
        self.capacity = capacity
        self.policy: Policy = policy
        self.dropped = 0
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called (items may still be waiting)."""
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T, timeout_s: float | None = None) -> bool:
        """Add ``item``, waiting for room under the ``block`` policy.

        Args:
            item: The item to hand over.
            timeout_s: Longest wait for room in seconds (``None``: wait until there is
                room or the channel closes). Ignored by the ``newest`` policy.

        Returns:
            True when the item was added; False when the channel is (or becomes) closed.

        Raises:
            TimeoutError: ``timeout_s`` passed with the channel still full.
        """
        with self._lock:
            if self._closed:
                return False
            if self.policy == "newest":
                if len(self._items) >= self.capacity:
                    self._items.popleft()
                    self.dropped += 1
            else:
                room = self._not_full.wait_for(
                    lambda: len(self._items) < self.capacity or self._closed, timeout_s
                )
                if not room:
                    raise TimeoutError(f"channel still full after {timeout_s} s")
                if self._closed:
                    return False
            self._items.append(item)
            self._not_empty.notify()
            return True

    def get(self, timeout_s: float | None = None) -> T:
        """Take the oldest item, waiting while the channel is empty.

        Items already in a closed channel are still delivered; only then does it raise.

        Args:
            timeout_s: Longest wait in seconds (``None``: until an item or close arrives).

        Raises:
            Closed: The channel is closed and empty.
            TimeoutError: ``timeout_s`` passed with nothing to take.
        """
        with self._lock:
            self._wait_for_items(timeout_s)
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def _wait_for_items(self, timeout_s: float | None) -> None:
        """Wait (holding the lock) until an item is there; raise ``Closed`` or ``TimeoutError``."""
        if not self._not_empty.wait_for(lambda: self._items or self._closed, timeout_s):
            raise TimeoutError(f"channel still empty after {timeout_s} s")
        if not self._items:
            raise Closed

    def get_latest(self, timeout_s: float | None = None) -> T:
        """Like :meth:`get`, but take the newest item and drop (and count) the older ones.

        For a consumer that has fallen behind a live source: the frames it skips are
        already stale, and handing them out in order would only add lag.
        """
        with self._lock:
            self._wait_for_items(timeout_s)
            item = self._items.pop()
            self.dropped += len(self._items)
            self._items.clear()
            self._not_full.notify_all()
            return item

    def close(self) -> None:
        """Close the channel and wake every waiting producer and consumer. Idempotent."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def clear(self) -> int:
        """Discard waiting items (a stop: nobody will use them); returns how many."""
        with self._lock:
            n = len(self._items)
            self._items.clear()
            self._not_full.notify_all()
            return n
