"""SlidingFps and Samples with an injected clock; RunStats serialisation."""

from __future__ import annotations

import json
import threading

import pytest

from detector.pipeline.fps import Samples, SlidingFps
from detector.types import RunStats


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_steady_rate():
    clock = FakeClock()
    fps = SlidingFps(5.0, clock=clock)
    assert fps.fps() == 0.0
    for _ in range(31):  # 30 intervals of 0.1 s
        fps.tick()
        clock.now += 0.1
    clock.now -= 0.1
    assert fps.fps() == pytest.approx(10.0)


def test_window_forgets_old_rate_and_stall_decays():
    clock = FakeClock()
    fps = SlidingFps(2.0, clock=clock)
    for _ in range(100):  # 100 fps for 1 s
        fps.tick()
        clock.now += 0.01
    for _ in range(30):  # then 10 fps for 3 s
        fps.tick()
        clock.now += 0.1
    clock.now -= 0.1
    assert fps.fps() == pytest.approx(10.0, rel=0.06)
    clock.now += 1.0  # a stall shows as a falling rate ...
    assert fps.fps() < 7.0
    clock.now += 5.0  # ... and nothing in the window gives 0
    assert fps.fps() == 0.0
    assert fps.total == 130


def test_tick_many_and_threads():
    clock = FakeClock()
    fps = SlidingFps(10.0, clock=clock)
    threads = [threading.Thread(target=lambda: [fps.tick(2) for _ in range(500)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5.0)
        assert not t.is_alive()
    assert fps.total == 4000


def test_samples_mean_and_percentiles_bounded():
    s = Samples(capacity=1000)
    assert s.mean() is None and s.percentile(50) is None
    for i in range(10_000):
        s.add(float(i % 100))
    assert s.count == 10_000
    assert s.mean() == pytest.approx(49.5)
    assert 40 <= s.percentile(50) <= 60
    assert len(s._kept) == 1000


def test_runstats_to_dict_is_json():
    stats = RunStats(10, 9, 1, 0, 5, 18.12345, 17.5, 29.987654, 1.5, False)
    d = stats.to_dict()
    assert d["inference_ms_mean"] == 18.123 and d["fps"] == 29.988
    assert d["latency_ms_p50"] is None
    json.dumps(d)


def test_run_meter_leaves_warm_up_out():
    from detector.pipeline.fps import RunMeter

    clock = FakeClock()
    meter = RunMeter(5.0, warmup_frames=1, clock=clock)
    meter.frame_read()
    meter.inference_done(500.0)  # graph warm-up: slow first run
    clock.now += 1.0
    meter.frame_output(clock.now - 0.6)
    for _ in range(10):  # then 20 fps, 30 ms model, 40 ms latency
        meter.frame_read()
        meter.inference_done(30.0)
        clock.now += 0.05
        meter.frame_output(clock.now - 0.04)
    stats = meter.stats(dropped=2, skipped=1, interrupted=False)
    assert stats.fps == pytest.approx(20.0)
    assert stats.inference_ms_mean == pytest.approx(30.0) and stats.inferences == 11
    assert stats.latency_ms_p50 == pytest.approx(40.0)
    assert (stats.frames_read, stats.frames_processed, stats.frames_dropped) == (11, 11, 2)
    assert stats.elapsed_s == pytest.approx(1.5)
    assert "output 20.0" in meter.rates()


def test_memory_does_not_grow_with_rate():
    clock = FakeClock()
    fps = SlidingFps(5.0, clock=clock)
    for _ in range(100_000):  # 10 000 ticks per second
        fps.tick()
        clock.now += 0.0001
    assert len(fps._buckets) <= 101
    assert fps.fps() == pytest.approx(10_000, rel=0.02)
