"""Run-time rates and timings: sliding-window FPS, bounded timing samples, the run summary."""

from __future__ import annotations

import random
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable

import numpy as np

from detector.types import RunStats

Clock = Callable[[], float]


class SlidingFps:
    """Events per second over the last ``window_s`` seconds of a monotonic clock.

    The rate is measured between events (``n - 1`` intervals for ``n`` ticks) up to
    *now*, so a source that stalls shows a falling rate and, after a whole window with no
    tick, 0. Ticks are kept in buckets of 1/100 of the window, so memory does not grow
    with the rate. Thread-safe: several workers may tick the same counter.

    Args:
        window_s: Width of the window in seconds.
        clock: Monotonic time in seconds (injectable for tests).
    """

    def __init__(self, window_s: float, clock: Clock = time.monotonic) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive; got {window_s}")
        self.window_s = float(window_s)
        self._bucket_s = self.window_s / 100
        self._clock = clock
        # [time of the bucket's first tick, ticks in it, size of that first tick]
        self._buckets: deque[list[float]] = deque()
        self._in_window = 0
        self._lock = threading.Lock()
        self.total = 0

    def tick(self, n: int = 1) -> None:
        """Record ``n`` events now."""
        now = self._clock()
        with self._lock:
            buckets = self._buckets
            if buckets and now - buckets[-1][0] < self._bucket_s:
                buckets[-1][1] += n
            else:
                buckets.append([now, n, n])
            self._in_window += n
            self.total += n
            self._expire(now)

    def fps(self) -> float:
        """Events per second over the window ending now (0.0 with fewer than two events)."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            if not self._buckets:
                return 0.0
            t_first, _, n_first = self._buckets[0]
            span = now - t_first
            counted = self._in_window - n_first
            if span <= 0 or counted <= 0:
                return 0.0
            return counted / span

    def _expire(self, now: float) -> None:
        limit = now - self.window_s
        buckets = self._buckets
        while buckets and buckets[0][0] < limit:
            self._in_window -= int(buckets.popleft()[1])


class Samples:
    """Timing samples with exact count and mean and a bounded reservoir for percentiles.

    Memory stays flat over any run length: beyond ``capacity`` samples, reservoir
    sampling keeps a uniform subset (seeded, so runs are repeatable). Thread-safe.

    Args:
        capacity: Most samples kept for percentiles.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.count = 0
        self._sum = 0.0
        self._kept = array("d")
        self._rng = random.Random(0)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self.count += 1
            self._sum += value
            if len(self._kept) < self.capacity:
                self._kept.append(value)
            else:
                j = self._rng.randrange(self.count)
                if j < self.capacity:
                    self._kept[j] = value

    def mean(self) -> float | None:
        """Exact mean, or ``None`` with no samples."""
        return self._sum / self.count if self.count else None

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100) of the kept samples, or ``None`` with none."""
        with self._lock:
            if not self._kept:
                return None
            return float(np.percentile(np.frombuffer(self._kept, dtype=np.float64), q))


class RunMeter:
    """Counts, rates and timings of one pipeline run, fed by its threads.

    Args:
        window_s: Sliding FPS window in seconds.
        warmup_frames: First output frames (and model runs) left out of the summary FPS,
            latency and inference-time figures.
        clock: Monotonic seconds; frame timestamps must come from the same clock.
    """

    def __init__(self, window_s: float, warmup_frames: int, clock: Clock = time.monotonic):
        self.clock = clock
        self.warmup_frames = warmup_frames
        self.capture = SlidingFps(window_s, clock)
        self.inference = SlidingFps(window_s, clock)
        self.output = SlidingFps(window_s, clock)
        self.inference_ms = Samples()
        self.latency_ms = Samples()
        self._warmup_ms = Samples()  # reported only when no run follows the warm-up ones
        self._lock = threading.Lock()
        self.frames_read = 0
        self.frames_processed = 0
        self.inferences = 0
        self.started = clock()
        self._warm_t: float | None = None
        self._last_t = self.started

    def frame_read(self) -> None:
        """Called by the capture thread for each frame delivered."""
        self.frames_read += 1
        self.capture.tick()

    def inference_done(self, inference_ms: float) -> None:
        """Called by an inference worker after each model run (thread-safe)."""
        with self._lock:
            self.inferences += 1
            warming = self.inferences <= self.warmup_frames
        (self._warmup_ms if warming else self.inference_ms).add(inference_ms)
        self.inference.tick()

    def frame_output(self, timestamp_s: float) -> None:
        """Called by the output stage once a frame captured at ``timestamp_s`` is written."""
        now = self._last_t = self.clock()
        self.frames_processed += 1
        self.output.tick()
        if self.frames_processed > self.warmup_frames:
            self.latency_ms.add((now - timestamp_s) * 1000.0)
        elif self.frames_processed == self.warmup_frames:
            self._warm_t = now

    def rates(self) -> str:
        """One log line: capture, inference and output rates over the window."""
        p50 = self.inference_ms.percentile(50) or self._warmup_ms.percentile(50)
        lat = self.latency_ms.percentile(50)
        return (
            f"fps: capture {self.capture.fps():.1f} | inference {self.inference.fps():.1f}"
            f" ({'-' if p50 is None else f'{p50:.1f}'} ms p50) | output {self.output.fps():.1f}"
            f" (latency {'-' if lat is None else f'{lat:.0f}'} ms p50)"
        )

    def stats(self, dropped: int, skipped: int, interrupted: bool) -> RunStats:
        """The summary so far."""
        elapsed = self.clock() - self.started
        done, warm, last = self.frames_processed, self.warmup_frames, self._last_t
        if self._warm_t is not None and done > warm and last > self._warm_t:
            fps = (done - warm) / (last - self._warm_t)
        elif warm == 0 and done and last > self.started:
            fps = done / (last - self.started)
        else:  # too short to leave the warm-up out
            fps = done / elapsed if elapsed > 0 else 0.0
        timing = self.inference_ms if self.inference_ms.count else self._warmup_ms
        return RunStats(
            frames_read=self.frames_read,
            frames_processed=done,
            frames_dropped=dropped,
            frames_skipped=skipped,
            inferences=self.inferences,
            inference_ms_mean=timing.mean(),
            inference_ms_p50=timing.percentile(50),
            fps=fps,
            elapsed_s=elapsed,
            interrupted=interrupted,
            latency_ms_p50=self.latency_ms.percentile(50),
            latency_ms_p95=self.latency_ms.percentile(95),
        )
