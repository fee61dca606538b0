"""The hub seen from the event loop: one pump wakes the waiting viewers and encodes each frame once.

The pipeline never calls into the loop: it only publishes into the hub (a reference and
counters under a lock). One pump task per server looks at the hub every few milliseconds;
when a feed someone watches has a newer frame it encodes it once, on an encoder thread (off
the pipeline's thread and off the loop), and wakes every viewer of that feed with the same
bytes. Viewers are coroutines, not threads: fifty of them cost one task each, and a viewer
that stops reading only ever blocks its own coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from detector.outputs.web.hub import Feed, Hub

POLL_S = 0.005  # how often the pump looks at the hub (a few attribute reads per feed)
ENCODERS = 2  # encoder threads: cv2.imencode releases the GIL, two keep two feeds apace


class Broadcaster:
    """Encoded frames and events of ``hub`` for coroutines on one event loop.

    Create it, then run :meth:`run` as a task on the loop the viewers live on.
    """

    def __init__(self, hub: Hub, poll_s: float = POLL_S) -> None:
        self.hub = hub
        self.poll_s = poll_s
        self._cond: asyncio.Condition | None = None
        self._encoder = ThreadPoolExecutor(ENCODERS, thread_name_prefix="detector-jpeg")
        self._latest: dict[str, tuple[int, bytes]] = {}  # feed key -> (frame number, JPEG)
        self._watchers: Counter[str] = Counter()  # feed key -> viewers waiting for frames
        self._ended: set[str] = set()
        self._events_seen = 0
        self.stopped = False

    @property
    def cond(self) -> asyncio.Condition:
        if self._cond is None:  # created on the loop that uses it
            self._cond = asyncio.Condition()
        return self._cond

    async def run(self) -> None:
        """Pump until the hub closes (or :meth:`stop`); then wake everyone one last time."""
        loop = asyncio.get_running_loop()
        # Start every encoder thread now (a fixed set for the server's life, not one more
        # each time frames are due together).
        ready = threading.Barrier(ENCODERS)
        for _ in range(ENCODERS):
            self._encoder.submit(ready.wait, 5.0)
        try:
            while not self.hub.closed and not self.stopped:
                changed = await self._encode_new(loop)
                for feed in list(self.hub.feeds):
                    if feed.ended and feed.key not in self._ended:
                        self._ended.add(feed.key)
                        changed = True
                if self.hub.events_published != self._events_seen:
                    self._events_seen = self.hub.events_published
                    changed = True
                if changed:
                    await self.wake()
                await asyncio.sleep(self.poll_s)
        finally:
            self.stopped = True
            await self.wake()
            self._encoder.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        self.stopped = True

    async def _encode_new(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Encode the newest frame of every watched feed that has one not yet encoded."""
        due = [
            f
            for f in list(self.hub.feeds)
            if self._watchers[f.key] and f.seq > self._latest.get(f.key, (0, b""))[0]
        ]
        if not due:
            return False
        done = await asyncio.gather(*(loop.run_in_executor(self._encoder, f.jpeg) for f in due))
        for feed, got in zip(due, done, strict=True):
            if got is not None:
                self._latest[feed.key] = got
        return True

    async def wake(self) -> None:
        """Wake every waiting viewer (they re-check what they wait for)."""
        async with self.cond:
            self.cond.notify_all()

    async def snapshot(self, feed: Feed) -> bytes | None:
        """The newest frame of ``feed`` as JPEG (the bytes the streams send), or None."""
        loop = asyncio.get_running_loop()
        try:
            got = await loop.run_in_executor(self._encoder, feed.jpeg)
        except RuntimeError:  # the server is stopping: its encoder takes no more work
            return None
        return None if got is None else got[1]

    async def frames(self, feed: Feed, gone: asyncio.Event) -> AsyncIterator[bytes]:
        """Each newer frame of ``feed`` as JPEG, until it ends, the server stops or ``gone``."""
        key, sent = feed.key, 0
        self._watchers[key] += 1
        try:
            while True:
                async with self.cond:
                    await self.cond.wait_for(functools.partial(self._ready, key, sent, gone))
                got = self._latest.get(key)
                if got is not None and got[0] > sent and not gone.is_set() and not self.stopped:
                    sent = got[0]
                    yield got[1]
                    continue
                return
        finally:
            self._watchers[key] -= 1

    def _ready(self, key: str, sent: int, gone: asyncio.Event) -> bool:
        """A viewer of ``key`` that has frame ``sent`` has something to do."""
        newer = self._latest.get(key, (0, b""))[0] > sent
        return newer or key in self._ended or self.stopped or gone.is_set()

    async def events(self, after: int, keepalive_s: float) -> list[tuple[int, dict[str, Any]]]:
        """Events numbered above ``after``, waiting up to ``keepalive_s``; [] on timeout."""
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            async with self.cond:
                await asyncio.wait_for(
                    self.cond.wait_for(lambda: self.hub.events_published > after or self.stopped),
                    keepalive_s,
                )
        return self.hub.wait_events(after, 0.0)
