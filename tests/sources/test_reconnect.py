"""ReconnectingSource: backoff, stall watchdog, giving up, shutdown while a read hangs.

Scripted sources stand in for a capture where the timing must be exact; the real MJPEG
server (stopped, restarted, stalled) drives OpenCV's FFmpeg backend for the end-to-end rows.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from detector.errors import ConfigError, SourceError
from detector.sources.base import Source
from detector.sources.reconnect import LinkState, ReconnectingSource, ReconnectPolicy
from detector.types import SourceInfo, SourceKind

FAST = ReconnectPolicy(attempts=None, first_delay_s=0.01, max_delay_s=0.05, stall_timeout_s=0.5)


class Scripted(Source):
    """A live source delivering ``frames`` numbered frames, then ending, failing or hanging."""

    def __init__(
        self, start: int, frames: int, then: str = "end", gate: threading.Event | None = None
    ) -> None:
        super().__init__(SourceInfo("cam://test", SourceKind.STREAM, True, 8, 8, 20.0))
        self.next = start
        self.stop_at = start + frames
        self.then = then
        self.gate = gate or threading.Event()
        self.released = threading.Event()

    def _read(self):
        if self.next < self.stop_at:
            image = np.full((8, 8, 3), self.next % 256, np.uint8)
            self.next += 1
            return image, None
        if self.then == "fail":
            raise SourceError("read failed")
        if self.then == "hang":
            self.gate.wait(10.0)  # a hung read: returns only when the test lets it
            return None
        return None

    def _release(self) -> None:
        self.released.set()


def opener(*sources: Scripted) -> tuple[Callable[[], Source], list[int]]:
    """``reopen`` returning ``sources`` in turn (then refusing), and a list counting calls."""
    queue = list(sources)
    calls: list[int] = []

    def reopen() -> Source:
        calls.append(1)
        if not queue:
            raise SourceError("connection refused")
        return queue.pop(0)

    return reopen, calls


def levels(source: Source, n: int) -> list[int]:
    out = []
    for _ in range(n):
        item = source.read()
        assert item is not None, f"source ended after {out}"
        out.append(int(item[0][0, 0, 0]))
    return out


def test_delays_double_up_to_the_longest_with_jitter_below() -> None:
    policy = ReconnectPolicy(first_delay_s=0.5, max_delay_s=4.0, jitter=0.0)
    assert [policy.delay_s(n, random.Random(0)) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]
    jittery = ReconnectPolicy(first_delay_s=1.0, max_delay_s=1.0, jitter=0.3)
    rng = random.Random(1)
    delays = [jittery.delay_s(3, rng) for _ in range(200)]
    assert all(0.7 <= d <= 1.0 for d in delays)
    assert max(delays) - min(delays) > 0.2  # really random, not a constant


@pytest.mark.parametrize(
    "bad",
    [
        dict(attempts=-1),
        dict(first_delay_s=2.0, max_delay_s=1.0),
        dict(stall_timeout_s=0),
        dict(jitter=1.5),
    ],
)
def test_policy_out_of_range_is_a_config_error(bad: dict) -> None:
    with pytest.raises(ConfigError, match="out of range"):
        ReconnectPolicy(**bad)


def test_ended_stream_reconnects_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "detector.sources.reconnect")
    reopen, calls = opener(Scripted(100, 3))
    with ReconnectingSource(Scripted(0, 3), reopen, FAST, rng=random.Random(0)) as src:
        assert levels(src, 6) == [0, 1, 2, 100, 101, 102]
        h = src.health
        assert (h.state, h.reconnects, h.stalls, h.outages) == (LinkState.CONNECTED, 1, 0, 1)
        assert h.offline_s > 0
    assert len(calls) == 1
    text = caplog.text
    assert "lost (the stream ended)" in text
    assert "reconnecting 1" in text and "connected (back after" in text
    assert text.count("reconnecting 1") == 1  # once per change


def test_gives_up_after_the_attempts_with_a_clear_error() -> None:
    policy = ReconnectPolicy(attempts=3, first_delay_s=0.01, max_delay_s=0.02, stall_timeout_s=0.5)
    reopen, calls = opener()  # the camera never comes back
    src = ReconnectingSource(Scripted(0, 2, then="fail"), reopen, policy)
    try:
        assert levels(src, 2) == [0, 1]
        with pytest.raises(SourceError, match=r"gave up after 3 reconnect attempt") as info:
            src.read()
        assert "cam://test" in str(info.value) and "source.reconnect" in str(info.value)
        assert src.health.state is LinkState.GAVE_UP
        assert len(calls) == 3
    finally:
        src.close()


def test_attempts_zero_means_the_first_loss_ends_the_run() -> None:
    reopen, calls = opener(Scripted(5, 1))
    src = ReconnectingSource(Scripted(0, 1), reopen, ReconnectPolicy(attempts=0))
    try:
        levels(src, 1)
        with pytest.raises(SourceError, match="gave up after 0"):
            src.read()
        assert calls == []
    finally:
        src.close()


def test_failed_attempts_back_off_then_recover() -> None:
    come_back = Scripted(50, 2)
    queue: list[Source | None] = [None, None, come_back]  # refused twice, then up

    def reopen() -> Source:
        nxt = queue.pop(0)
        if nxt is None:
            raise SourceError("connection refused")
        return nxt

    with ReconnectingSource(Scripted(0, 1), reopen, FAST) as src:
        assert levels(src, 3) == [0, 50, 51]
        assert src.health.reconnects == 1 and src.health.outages == 1


def test_stalled_read_is_abandoned_and_the_capture_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "detector.sources.reconnect")
    gate = threading.Event()
    hung = Scripted(0, 2, then="hang", gate=gate)
    reopen, _ = opener(Scripted(10, 2))
    policy = ReconnectPolicy(first_delay_s=0.01, max_delay_s=0.01, stall_timeout_s=0.3)
    src = ReconnectingSource(hung, reopen, policy)
    try:
        assert levels(src, 4) == [0, 1, 10, 11]
        h = src.health
        assert (h.stalls, h.reconnects) == (1, 1)
        assert h.offline_s >= 0.3
        assert "stalled (no frame for 0.3 s: restarting the capture)" in caplog.text
        assert not hung.released.is_set()  # never released under its hung read...
        gate.set()
        assert hung.released.wait(5.0)  # ...but by its own thread once the read returns
    finally:
        gate.set()
        src.close()


def test_close_from_another_thread_wakes_a_read_in_a_hung_stream() -> None:
    gate = threading.Event()
    policy = ReconnectPolicy(stall_timeout_s=60.0)
    src = ReconnectingSource(Scripted(0, 1, then="hang", gate=gate), opener()[0], policy)
    levels(src, 1)
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(src.read()), daemon=True)
    reader.start()
    time.sleep(0.1)
    started = time.monotonic()
    src.close()  # Ctrl-C while the stream hangs: the pipeline closes the source
    reader.join(5.0)
    assert not reader.is_alive() and result == [None]
    assert time.monotonic() - started < 5.0  # bounded by the link join, not the hang
    gate.set()


def test_interrupt_wakes_a_read_waiting_out_the_backoff() -> None:
    slow = ReconnectPolicy(first_delay_s=30.0, max_delay_s=30.0, stall_timeout_s=1.0)
    src = ReconnectingSource(Scripted(0, 1), opener()[0], slow)
    levels(src, 1)
    threading.Timer(0.2, src.interrupt).start()
    assert src.read() is None
    assert src.health.label == "reconnecting 1"
    src.close()
    assert src.health.label == "reconnecting 1"  # what it was doing when closed


# -- the real thing: OpenCV's FFmpeg backend on a local MJPEG camera ---------------------------


def _mjpeg_source(url: str) -> Source:
    from detector.sources.capture import open_stream
    from detector.sources.spec import parse_source

    return open_stream(parse_source(url))


def test_real_stream_dropped_and_restarted_comes_back() -> None:
    from helpers.mjpeg_server import MjpegServer

    policy = ReconnectPolicy(first_delay_s=0.05, max_delay_s=0.2, stall_timeout_s=3.0)
    with MjpegServer(fps=25) as cam:
        src = ReconnectingSource(_mjpeg_source(cam.url), lambda: _mjpeg_source(cam.url), policy)
        try:
            assert len([src.read() for _ in range(5)]) == 5
            cam.stop()
            threading.Timer(0.5, cam.start).start()  # back on the same port half a second later
            for _ in range(5):
                assert src.read() is not None
            assert cam.connections >= 2
            h = src.health
            assert h.state is LinkState.CONNECTED and h.reconnects == 1
        finally:
            src.close()


def test_real_stream_stall_is_noticed_and_restarted() -> None:
    from helpers.mjpeg_server import MjpegServer

    policy = ReconnectPolicy(first_delay_s=0.05, max_delay_s=0.2, stall_timeout_s=0.6)
    with MjpegServer(fps=25) as cam:
        src = ReconnectingSource(_mjpeg_source(cam.url), lambda: _mjpeg_source(cam.url), policy)
        try:
            assert src.read() is not None
            cam.stall()
            threading.Timer(1.0, cam.resume).start()
            # Frames already on their way come first; then the stall, then a new capture.
            for _ in range(50):
                assert src.read() is not None
                if src.health.stalls:
                    break
            assert src.health.stalls == 1
            assert src.read() is not None  # and it goes on
        finally:
            cam.resume()
            src.close()
