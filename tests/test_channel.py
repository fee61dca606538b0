"""Channel: block and newest policies, close wakes everyone, timeouts."""

from __future__ import annotations

import threading

import pytest

from detector.pipeline.channel import Channel, Closed

JOIN_S = 5.0


def start(fn) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # reported to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def finish(thread: threading.Thread) -> None:
    thread.join(JOIN_S)
    assert not thread.is_alive(), "thread still blocked"


def test_block_policy_keeps_everything_in_order():
    ch: Channel[int] = Channel(2, "block")

    def produce():
        for i in range(50):
            assert ch.put(i)
        ch.close()

    thread, _ = start(produce)
    got = []
    while True:
        try:
            got.append(ch.get(timeout_s=JOIN_S))
        except Closed:
            break
    finish(thread)
    assert got == list(range(50))
    assert ch.dropped == 0


def test_block_put_times_out_when_full():
    ch: Channel[int] = Channel(1)
    assert ch.put(1)
    with pytest.raises(TimeoutError):
        ch.put(2, timeout_s=0.01)
    with pytest.raises(TimeoutError):
        Channel(1).get(timeout_s=0.01)


def test_newest_drops_oldest_and_counts():
    ch: Channel[int] = Channel(2, "newest")
    for i in range(5):
        assert ch.put(i)
    assert ch.dropped == 3
    assert [ch.get(), ch.get()] == [3, 4]


def test_close_wakes_blocked_producer():
    ch: Channel[int] = Channel(1)
    ch.put(0)
    thread, box = start(lambda: ch.put(1))
    thread.join(0.05)
    assert thread.is_alive()  # really blocked on the full channel
    ch.close()
    finish(thread)
    assert box == {"value": False}
    assert not ch.put(2)


def test_close_wakes_consumer_after_drain():
    ch: Channel[int] = Channel(4)
    ch.put(7)
    ch.close()
    assert ch.get() == 7  # items already in a closed channel are delivered
    thread, box = start(ch.get)
    finish(thread)
    assert isinstance(box.get("error"), Closed)


def test_close_wakes_many_waiting_consumers():
    ch: Channel[int] = Channel(1)
    threads = [start(ch.get) for _ in range(4)]
    ch.close()
    for thread, box in threads:
        finish(thread)
        assert isinstance(box.get("error"), Closed)


def test_clear_makes_room():
    ch: Channel[int] = Channel(2)
    ch.put(1)
    ch.put(2)
    assert ch.clear() == 2
    assert len(ch) == 0 and ch.put(3)


def test_bad_arguments():
    with pytest.raises(ValueError):
        Channel(0)
    with pytest.raises(ValueError):
        Channel(1, "oldest")  # type: ignore[arg-type]


def test_get_latest_skips_stale_items_and_counts_them():
    ch: Channel[int] = Channel(3, "newest")
    for i in range(5):
        ch.put(i)
    assert ch.dropped == 2
    assert ch.get_latest() == 4
    assert ch.dropped == 4 and len(ch) == 0
    ch.put(5)
    assert ch.get_latest() == 5 and ch.dropped == 4
    ch.close()
    with pytest.raises(Closed):
        ch.get_latest()
