"""Pipeline with a fake detector: order, detect_every, errors naming the frame, stops, drops."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from detector.errors import StageError
from detector.pipeline.channel import Closed
from detector.pipeline.reorder import ReorderBuffer
from detector.pipeline.stages import PipelineOptions, run_pipeline
from detector.sources import Source, open_source
from detector.types import Detections, Frame, FrameResult, SourceInfo

TIMEOUT_S = 20.0


class ListSource(Source):
    """``n`` tiny frames whose pixel (0, 0) encodes the frame number."""

    def __init__(
        self, n: int, *, live: bool = False, fail_at: int | None = None, period_s: float = 0.0
    ) -> None:
        super().__init__(
            SourceInfo(
                "memory", "camera" if live else "video", live, 8, 6, 25.0, None if live else n
            )
        )
        self.n, self.fail_at, self.period_s = n, fail_at, period_s
        self.i = 0
        self.released = False

    def _read(self):
        if self.i >= self.n:
            return None
        if self.i == self.fail_at:
            raise OSError("disk went away")
        if self.period_s:
            time.sleep(self.period_s)  # a camera's frame clock
        image = np.zeros((6, 8, 3), np.uint8)
        image[0, 0, 0], image[0, 0, 1] = self.i % 256, self.i // 256
        self.i += 1
        return image, f"f{self.i - 1}"

    def _release(self):
        self.released = True


def frame_number(frame: Frame) -> int:
    return int(frame.image[0, 0, 0]) + 256 * int(frame.image[0, 0, 1])


def fake_detect(
    delay_s: float = 0.0,
    jitter_s: float = 0.0,
    fail_at: int | None = None,
    calls: list[int] | None = None,
):
    """One box whose x1 is the number read from the image, so mix-ups show."""
    rng = random.Random(1)
    lock = threading.Lock()

    def detect(frame: Frame) -> tuple[Detections, float]:
        if frame.index == fail_at:
            raise ValueError("model exploded")
        with lock:
            pause = delay_s + rng.random() * jitter_s
            if calls is not None:
                calls.append(frame.index)
        if pause:
            time.sleep(pause)
        k = float(frame_number(frame))
        return Detections(np.array([[k, 0, k + 1, 1]]), np.array([0.9]), np.array([1])), 1.5

    return detect


def run(source, detect, consume=None, **options):
    """run_pipeline on a helper thread so that a hang fails the test instead of blocking it."""
    results: list[FrameResult] = []

    def keep(result: FrameResult) -> bool:
        results.append(result)
        return True

    box: dict = {}
    before = set(threading.enumerate())  # other tests' session services keep their threads

    def target():
        try:
            box["stats"] = run_pipeline(source, detect, consume or keep, PipelineOptions(**options))
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(TIMEOUT_S)
    assert not thread.is_alive(), "run_pipeline hung"
    left = set(threading.enumerate()) - before
    assert not [t.name for t in left if t.name.startswith("detector-")]
    return box.get("stats"), box.get("error"), results


def test_order_preserved_with_two_workers_and_random_delays():
    source = ListSource(60)
    stats, error, results = run(source, fake_detect(jitter_s=0.004), workers=2, queue_size=4)
    assert error is None
    assert [r.frame.index for r in results] == list(range(60))
    assert all(r.detections.xyxy[0, 0] == r.frame.index for r in results)
    assert all(r.fresh and r.detected_index == r.frame.index for r in results)
    assert [r.frame.name for r in results[:3]] == ["f0", "f1", "f2"]
    assert (stats.frames_read, stats.frames_processed, stats.inferences) == (60, 60, 60)
    assert stats.frames_dropped == 0 and not stats.interrupted
    assert stats.inference_ms_mean == pytest.approx(1.5)
    assert source.released


@pytest.mark.parametrize("workers", [1, 2])
def test_detect_every_carries_boxes(workers):
    calls: list[int] = []
    stats, error, results = run(
        ListSource(20), fake_detect(jitter_s=0.003, calls=calls), detect_every=3, workers=workers
    )
    assert error is None
    assert sorted(calls) == list(range(0, 20, 3))
    assert [r.frame.index for r in results] == list(range(20))
    for r in results:
        assert r.fresh == (r.frame.index % 3 == 0)
        assert r.detected_index == r.frame.index - r.frame.index % 3
        assert r.detections.xyxy[0, 0] == r.detected_index
        assert (r.inference_ms is None) != r.fresh
    assert stats.inferences == 7 and stats.frames_processed == 20


def test_video_file_through_pipeline_in_order(tmp_path):
    from helpers.media import grey_index, make_video

    source = open_source(str(make_video(tmp_path / "clip.avi", n=15)))
    stats, error, results = run(source, lambda f: (Detections.empty(), 0.1), workers=2)
    assert error is None
    assert [grey_index(r.frame.image) for r in results] == list(range(15))
    assert stats.frames_read == 15 and stats.frames_processed == 15
    assert source.read() is None  # closed by the pipeline


def check_stage_error(error, stage: str, source: ListSource):
    assert isinstance(error, StageError), error
    assert error.stage == stage and error.frame_index == 5
    assert "on frame 5" in str(error)
    assert error.__cause__ is error.cause
    assert error.stats.frames_processed <= 5
    assert source.released


def test_detect_failing_on_frame_5_stops_everything():
    source = ListSource(10_000)
    _, error, _ = run(source, fake_detect(fail_at=5), workers=2)
    check_stage_error(error, "inference", source)
    assert "model exploded" in str(error)


def test_consume_failing_on_frame_5_stops_everything():
    source = ListSource(10_000)

    def consume(result: FrameResult) -> bool:
        if result.frame.index == 5:
            raise RuntimeError("disk full")
        return True

    _, error, _ = run(source, fake_detect(), consume, queue_size=2)
    check_stage_error(error, "output", source)


def test_source_failing_on_frame_5_stops_everything():
    source = ListSource(10_000, fail_at=5)
    _, error, _ = run(source, fake_detect(delay_s=0.01), workers=2)
    check_stage_error(error, "capture", source)
    assert "disk went away" in str(error)


def test_consume_false_stops_cleanly_with_blocked_producer():
    source = ListSource(10_000)
    seen: list[int] = []

    def consume(result: FrameResult) -> bool:
        seen.append(result.frame.index)
        return result.frame.index < 3

    stats, error, _ = run(source, fake_detect(), consume, queue_size=1)
    assert error is None
    assert seen == [0, 1, 2, 3]
    assert stats.frames_processed == 4 and not stats.interrupted
    assert stats.frames_read < 10_000 and source.released


def test_keyboard_interrupt_shuts_down_then_propagates():
    source = ListSource(10_000)

    def consume(result: FrameResult) -> bool:
        if result.frame.index == 2:
            raise KeyboardInterrupt
        return True

    _, error, _ = run(source, fake_detect(), consume, workers=2)
    assert isinstance(error, KeyboardInterrupt)
    assert error.stats.interrupted and error.stats.frames_processed == 2
    assert source.released


def test_live_source_keeps_newest_and_counts_drops():
    source = ListSource(200, live=True, period_s=0.0005)
    stats, error, results = run(source, fake_detect(delay_s=0.01), workers=2, queue_size=8)
    assert error is None
    indices = [r.frame.index for r in results]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert stats.frames_dropped > 0
    assert stats.frames_read == 200
    assert stats.frames_processed + stats.frames_dropped == 200
    assert indices[-1] == 199  # the newest frame always makes it


def test_live_detect_every_counts_from_last_detection():
    _, error, results = run(ListSource(100, live=True), fake_detect(delay_s=0.005), detect_every=4)
    assert error is None
    for r in results:
        assert r.detections.xyxy[0, 0] == r.detected_index <= r.frame.index
        assert r.fresh == (r.detected_index == r.frame.index)
        assert r.frame.index - r.detected_index < 4 or not r.fresh


def test_max_frames():
    source = ListSource(1000)
    stats, error, results = run(source, fake_detect(), max_frames=7, detect_every=2)
    assert error is None
    assert [r.frame.index for r in results] == list(range(7))
    assert stats.frames_read == 7 and stats.frames_processed == 7 and stats.inferences == 4


def test_stats_fps_and_latency_present():
    stats, _, _ = run(ListSource(30), fake_detect(delay_s=0.001))
    assert stats.fps > 0 and stats.elapsed_s > 0
    assert stats.latency_ms_p50 is not None and stats.latency_ms_p95 >= stats.latency_ms_p50 >= 0
    assert stats.to_dict()["frames_processed"] == 30


def test_bad_options():
    with pytest.raises(ValueError, match="detect_every"):
        PipelineOptions(detect_every=0)


def test_reorder_buffer_orders_and_bounds():
    buf: ReorderBuffer[int] = ReorderBuffer(window=3)
    order = list(range(30))
    random.Random(2).shuffle(order)
    got: list[int] = []
    consumer = threading.Thread(target=lambda: got.extend(buf.get(5.0) for _ in range(30)))
    consumer.start()
    producers = [threading.Thread(target=lambda s=s: buf.put(s, s * 10)) for s in order]
    for p in producers:
        p.start()
    consumer.join(TIMEOUT_S)
    for p in producers:
        p.join(TIMEOUT_S)
    assert got == [s * 10 for s in range(30)]


def test_reorder_buffer_close_wakes_putter_and_getter():
    buf: ReorderBuffer[int] = ReorderBuffer(window=1)
    box: dict = {}
    putter = threading.Thread(target=lambda: box.setdefault("put", buf.put(5, 5)))
    putter.start()
    putter.join(0.05)
    assert putter.is_alive()  # 5 is too far ahead of 0
    buf.close()
    putter.join(TIMEOUT_S)
    assert box["put"] is False
    with pytest.raises(Closed):
        buf.get(1.0)


def test_hung_source_does_not_hang_shutdown(caplog):
    release = threading.Event()

    class Hangs(ListSource):
        def _read(self):
            if self.i == 3:
                release.wait(TIMEOUT_S)  # a network read that never returns
                return None
            return super()._read()

    source = Hangs(100, live=True)
    with pytest.raises(AssertionError, match="detector-capture"):
        run(source, fake_detect(), lambda r: r.frame.index < 2, join_timeout_s=0.2)
    assert "still running after 0.2 s: detector-capture" in caplog.text
    release.set()
    for thread in threading.enumerate():
        if thread.name.startswith("detector-capture"):
            thread.join(TIMEOUT_S)
    assert source.released


SIGINT_SCRIPT = r"""
import os, signal, sys, threading
sys.path.insert(0, {tests!r})
from test_pipeline import fake_detect
from detector.pipeline.stages import PipelineOptions, run_pipeline
from detector.sources import open_source

source = open_source({video!r})
def consume(result):
    if result.frame.index == 3:  # Ctrl-C arrives from outside while the main thread waits
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
    return True
try:
    run_pipeline(source, fake_detect(delay_s=0.5), consume, PipelineOptions(workers=2))
except KeyboardInterrupt as exc:
    alive = [t.name for t in threading.enumerate() if t.name.startswith("detector-")]
    print("interrupted", exc.stats.interrupted, exc.stats.frames_processed, alive,
          source.read() is None)
    sys.exit(130)
"""


def test_sigint_in_main_thread_shuts_down_cleanly(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from helpers.media import make_video

    tests = str(Path(__file__).parent)
    video = str(make_video(tmp_path / "clip.avi", n=30))
    script = SIGINT_SCRIPT.format(tests=tests, video=video)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(tests).parent,
    )
    assert proc.returncode == 130, proc.stderr  # not 134: no capture thread left at exit
    assert "interrupted True" in proc.stdout and "[] True" in proc.stdout


def test_importing_the_pipeline_loads_neither_tensorflow_nor_opencv():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, detector.pipeline.stages; "
        "print(sorted({'tensorflow', 'cv2'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert out.stdout.strip() == "[]", out.stderr
