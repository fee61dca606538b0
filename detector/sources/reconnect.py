"""Live sources that come back: reconnect with backoff and jitter, a stall watchdog, link health.

:class:`ReconnectingSource` wraps a live capture (camera or stream). A reader thread owns each
connection: it opens the capture, reads it and releases it, so a read that hangs inside
OpenCV/FFmpeg never blocks the pipeline or shutdown: the wrapper waits for frames with a
deadline, and a connection that stops delivering is abandoned (its thread ends when OpenCV's
own read timeout fires) while a new one is opened.

States, each logged once when it changes and counted for ``run.json`` and the HUD::

    connected ──lost / no frame for stall_timeout_s──▶ stalled / reconnecting 1, 2, ...
        ▲                                                      │
        └────────────── a frame arrives ◀──────────────────────┘──▶ gave up (SourceError)

Delays between attempts grow as ``first_delay_s · 2^(n-1)`` up to ``max_delay_s``, each
scaled by a random factor in ``[1 - jitter, 1]`` so many clients of one camera do not retry in
step. The first open is not retried (a wrong URL should fail at once, while the user watches).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np

from detector.errors import ConfigError, SourceError
from detector.sources.base import Source
from detector.types import SourceInfo, TextEnum

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Item = tuple[np.ndarray, str | None]

# A reader that outlives its connection ends when OpenCV's read timeout fires; closing
# waits this long for it so the capture is released on its own thread (never under a read).
_JOIN_S = 3.0
# Frames waiting between the reader thread and read(). The reader never waits: a live
# source must be drained as fast as it sends, or frames pile up in the socket and arrive
# seconds late (as they did while the model loaded). Beyond this the oldest are dropped.
_QUEUE = 4


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a live source reconnects.

    Attributes:
        attempts: Attempts per outage before giving up; ``None`` = forever, 0 = never
            reconnect (the first loss ends the run as an error).
        first_delay_s: Wait before the first attempt of an outage.
        max_delay_s: Longest wait between attempts (the doubling stops there).
        stall_timeout_s: No frame for this long counts as a stall: the capture is
            restarted. Also the longest wait for a reopened capture's first frame.
        jitter: Each wait is scaled by a random factor in ``[1 - jitter, 1]``.
    """

    attempts: int | None = None
    first_delay_s: float = 0.5
    max_delay_s: float = 10.0
    stall_timeout_s: float = 10.0
    jitter: float = 0.3

    def __post_init__(self) -> None:
        checks = {
            "attempts": self.attempts is None or self.attempts >= 0,
            "first_delay_s": self.first_delay_s >= 0,
            "max_delay_s": self.max_delay_s >= self.first_delay_s,
            "stall_timeout_s": self.stall_timeout_s > 0,
            "jitter": 0 <= self.jitter <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"reconnect setting {name}={getattr(self, name)!r} is out of range",
                    hint="attempts >= 0 or forever; 0 <= first delay <= longest delay; "
                    "stall timeout > 0; jitter in [0, 1]",
                )

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Wait before attempt ``attempt`` (1-based) of an outage."""
        base = min(self.max_delay_s, self.first_delay_s * 2.0 ** max(0, attempt - 1))
        return base * (1.0 - self.jitter * rng.random())


class LinkState(TextEnum):
    """Where a live source's connection stands."""

    CONNECTED = "connected"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    GAVE_UP = "gave up"


@dataclass(frozen=True)
class LinkHealth:
    """A snapshot of a live source's connection, for the HUD and ``run.json``.

    Attributes:
        state: The current state.
        attempt: The reconnect attempt under way (0 when connected).
        reconnects: Outages that ended with the source back.
        stalls: Times no frame came for ``stall_timeout_s`` and the capture was restarted.
        offline_s: Seconds without frames: from the last frame before each outage to the
            first after it (an outage still going counts up to now).
        outages: Connections lost (ended, failed or stalled).
        dropped: Frames the source delivered that nobody read in time (e.g. while the
            model loaded); the pipeline's own drops are counted in its stats.
    """

    state: LinkState
    attempt: int
    reconnects: int
    stalls: int
    offline_s: float
    outages: int
    dropped: int = 0

    @property
    def label(self) -> str:
        """``connected``, ``reconnecting 3``, ``stalled``, ``gave up``."""
        if self.state is LinkState.RECONNECTING:
            return f"reconnecting {self.attempt}"
        return str(self.state)

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.label,
            "reconnects": self.reconnects,
            "stalls": self.stalls,
            "outages": self.outages,
            "offline_s": round(self.offline_s, 3),
            "dropped": self.dropped,
        }


class _Link:
    """One connection: a daemon thread that opens (if needed), reads and releases a capture."""

    def __init__(self, name: str, source: Source | None, reopen: Callable[[], Source]) -> None:
        self.cond = threading.Condition()
        self.items: deque[tuple[str, Item | BaseException | None]] = deque()
        self.stop = threading.Event()
        self.dropped = 0
        self._source = source
        self._reopen = reopen
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _put(self, kind: str, value: Item | BaseException | None) -> None:
        with self.cond:
            if kind == "frame" and len(self.items) >= _QUEUE and self.items[0][0] == "frame":
                self.items.popleft()  # keep the newest: nobody read it in time
                self.dropped += 1
            self.items.append((kind, value))
            self.cond.notify_all()

    def _run(self) -> None:
        source = self._source
        try:
            if source is None:
                source = self._reopen()
            while not self.stop.is_set():
                item = source.read()
                if item is None:
                    self._put("end", None)
                    return
                self._put("frame", item)
        except BaseException as exc:  # handed to read(), which decides
            self._put("error", exc)
        finally:
            if source is not None:
                source.close()  # on this thread: never while another thread reads it

    def take(
        self, deadline: float, woken: threading.Event, clock: Clock
    ) -> tuple[str, Item | BaseException | None] | None:
        """Next ``(kind, value)``; ``None`` when ``deadline`` passed or ``woken`` was set."""
        with self.cond:
            while not self.items:
                if woken.is_set():
                    return None
                left = deadline - clock()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.1))
            item = self.items.popleft()
            self.cond.notify_all()
            return item

    def abandon(self) -> None:
        """Stop reading; the thread releases the capture when its current read returns."""
        self.stop.set()
        with self.cond:
            self.items.clear()
            self.cond.notify_all()


class ReconnectingSource(Source):
    """A live source that reconnects by itself and restarts a stalled capture.

    Args:
        first: The already opened live source (its first open is not retried).
        reopen: Opens the same source again; raises :class:`SourceError` when it cannot.
        policy: Attempts, delays and the stall timeout.
        clock: Monotonic seconds (injectable for tests).
        rng: Jitter's random numbers (seed it for repeatable tests).
    """

    def __init__(
        self,
        first: Source,
        reopen: Callable[[], Source],
        policy: ReconnectPolicy | None = None,
        *,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        info: SourceInfo = first.info
        super().__init__(info)
        self.policy = policy or ReconnectPolicy()
        self._reopen = reopen
        self._clock = clock
        self._rng = rng or random.Random()
        self._woken = threading.Event()
        self._state_lock = threading.Lock()
        self._state = LinkState.CONNECTED
        self._attempt = 0
        self._reconnects = 0
        self._stalls = 0
        self._outages = 0
        self._offline_s = 0.0
        self._dropped = 0
        self._outage_since: float | None = None  # last frame before the current outage
        self._generation = 1
        self._link: _Link | None = _Link(self._thread_name(), first, reopen)
        self._abandoned: list[_Link] = []
        self._last_frame = clock()

    # -- public -----------------------------------------------------------------------

    @property
    def health(self) -> LinkHealth:
        """The connection's state and counters now."""
        with self._state_lock:
            offline = self._offline_s
            if self._outage_since is not None:
                offline += max(0.0, self._clock() - self._outage_since)
            links = [*self._abandoned, *([self._link] if self._link is not None else [])]
            return LinkHealth(
                self._state,
                self._attempt,
                self._reconnects,
                self._stalls,
                offline,
                self._outages,
                self._dropped + sum(link.dropped for link in links),
            )

    def interrupt(self) -> None:
        """Wake a blocked :meth:`read` from another thread: it returns ``None`` soon."""
        self._woken.set()
        link = self._link
        if link is not None:
            with link.cond:
                link.cond.notify_all()

    def close(self) -> None:
        self.interrupt()
        super().close()

    # -- Source -----------------------------------------------------------------------

    def _read(self) -> Item | None:
        while not self._woken.is_set():
            if self._link is None:
                if not self._reconnect():
                    return None
                continue
            got = self._link.take(
                self._last_frame + self.policy.stall_timeout_s, self._woken, self._clock
            )
            if self._woken.is_set():
                return None
            if got is None:
                self._lost(f"no frame for {self.policy.stall_timeout_s:g} s", stalled=True)
            elif got[0] == "frame":
                self._last_frame = self._clock()
                if self._outage_since is not None:
                    self._back()
                frame = cast(Item, got[1])
                return frame
            elif got[0] == "end":
                self._lost("the stream ended")
            else:
                self._lost(_reason(got[1]))
        return None

    def _release(self) -> None:
        links = [*self._abandoned, *([self._link] if self._link is not None else [])]
        self._link = None
        for link in links:
            link.abandon()
        deadline = time.monotonic() + _JOIN_S
        for link in links:
            link.thread.join(max(0.0, deadline - time.monotonic()))
        stuck = sum(link.thread.is_alive() for link in links)
        if stuck:
            log.warning(
                "%s %s: %d capture read(s) still hung after %.0f s; left to time out",
                self.info.kind,
                self.info.uri,
                stuck,
                _JOIN_S,
            )

    # -- states -----------------------------------------------------------------------

    def _lost(self, reason: str, *, stalled: bool = False) -> None:
        """The connection stopped delivering: abandon it and start an outage."""
        assert self._link is not None
        self._link.abandon()
        with self._state_lock:
            self._dropped += sum(x.dropped for x in self._abandoned if not x.thread.is_alive())
            self._abandoned = [x for x in self._abandoned if x.thread.is_alive()]
        self._abandoned.append(self._link)
        self._link = None
        with self._state_lock:
            self._outages += 1
            if stalled:
                self._stalls += 1
            if self._outage_since is None:
                self._outage_since = self._last_frame
        if stalled:
            self._set_state(LinkState.STALLED, 0, detail=f"{reason}: restarting the capture")
        else:
            self._set_state(LinkState.RECONNECTING, 0, detail=f"lost ({reason})", quiet=True)
            log.warning("%s %s: lost (%s)", self.info.kind, self.info.uri, reason)

    def _reconnect(self) -> bool:
        """Wait out the backoff and open again until a frame comes; False if woken."""
        limit = self.policy.attempts
        attempt = self._attempt
        while limit is None or attempt < limit:
            attempt += 1
            delay = self.policy.delay_s(attempt, self._rng)
            self._set_state(LinkState.RECONNECTING, attempt, detail=f"in {delay:.1f} s")
            if self._woken.wait(delay):
                return False
            self._generation += 1
            link = _Link(self._thread_name(), None, self._reopen)
            got = link.take(self._clock() + self.policy.stall_timeout_s, self._woken, self._clock)
            if self._woken.is_set():
                self._link = link  # released by close()
                return False
            if got is not None and got[0] == "frame":
                self._link = link
                with link.cond:  # hand the first frame back to read()
                    link.items.appendleft(got)
                self._last_frame = self._clock()
                return True
            link.abandon()
            self._abandoned.append(link)
            reason = (
                f"no frame within {self.policy.stall_timeout_s:g} s"
                if got is None
                else "the stream ended at once"
                if got[0] == "end"
                else _reason(got[1])
            )
            log.info(
                "%s %s: reconnect attempt %d failed: %s",
                self.info.kind,
                self.info.uri,
                attempt,
                reason,
            )
        offline = self.health.offline_s
        self._set_state(LinkState.GAVE_UP, attempt, quiet=True)
        log.error(
            "%s %s: gave up after %d reconnect attempt(s), offline %.1f s",
            self.info.kind,
            self.info.uri,
            attempt,
            offline,
        )
        raise SourceError(
            f"{self.info.kind} {self.info.uri!r}: lost, gave up after {attempt} reconnect "
            f"attempt(s) (offline {offline:.1f} s)",
            hint="check the camera or stream is up; source.reconnect sets the attempts "
            "(forever to never give up) and source.reconnect_max_delay_s the longest wait",
        )

    def _back(self) -> None:
        now = self._clock()
        with self._state_lock:
            assert self._outage_since is not None
            gap = max(0.0, now - self._outage_since)
            self._offline_s += gap
            self._outage_since = None
            self._reconnects += 1
            attempts = self._attempt
        self._set_state(
            LinkState.CONNECTED,
            0,
            detail=f"back after {gap:.1f} s offline, {attempts} attempt(s)",
        )

    def _set_state(
        self, state: LinkState, attempt: int, *, detail: str = "", quiet: bool = False
    ) -> None:
        with self._state_lock:
            changed = (state, attempt) != (self._state, self._attempt)
            self._state, self._attempt = state, attempt
        if changed and not quiet:
            label = f"reconnecting {attempt}" if state is LinkState.RECONNECTING else str(state)
            level = (
                logging.INFO
                if state is LinkState.RECONNECTING and attempt > 1
                else (logging.WARNING)
            )
            log.log(
                level,
                "%s %s: %s%s",
                self.info.kind,
                self.info.uri,
                label,
                f" ({detail})" if detail else "",
            )

    def _thread_name(self) -> str:
        return f"detector-capture-link-{self._generation}"


def _reason(exc: object) -> str:
    if isinstance(exc, SourceError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
