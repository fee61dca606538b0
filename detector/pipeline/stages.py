"""Run a source through a detector: capture thread → inference worker(s) → main thread, in order.

Threads and hand-offs::

    capture thread ──Channel──▶ worker thread(s) ──ReorderBuffer──▶ main thread: consume()
    (source.read)   block/newest  (detect, or carry)   frame order      (render + sinks)

End of stream travels downstream by closing hand-offs; a stop (``consume`` returns False,
Ctrl-C, an error in any stage) closes all of them, which wakes every blocked thread. The
first error is re-raised on the calling thread as :class:`~detector.errors.StageError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from detector.errors import ConfigError, RunInterrupted, StageError
from detector.types import Detections, Frame, FrameResult, RunStats

from .channel import Channel, Closed
from .fps import Clock, RunMeter
from .reorder import ReorderBuffer

if TYPE_CHECKING:  # sources import OpenCV; the pipeline itself never needs it
    from detector.sources import Source

log = logging.getLogger(__name__)

Detect = Callable[[Frame], tuple[Detections, float]]
"""``detect(frame) -> (detections, inference_ms)``; must be thread-safe when ``workers`` > 1."""

Consume = Callable[[FrameResult], bool]

# Live sources: a short queue keeps capture-to-output latency low; two slots absorb one
# slow inference without dropping a frame.
_LIVE_QUEUE = 2


@dataclass(frozen=True)
class PipelineOptions:
    """How to run the pipeline.

    Attributes:
        detect_every: Run the model on every Nth frame (0, N, 2N, ...); the frames in
            between carry the last detections (``fresh=False``).
        workers: Inference threads for file sources (live sources always use one).
            TF's ``Session.run`` releases the GIL, so 2 keeps 2 cores busy.
        max_frames: Stop after this many output frames (``None``: the whole source).
        queue_size: Frames buffered between capture and inference (file sources), and
            how far results may run ahead of the output stage.
        fps_interval_s: Window of the sliding FPS and the period of its log line.
        join_timeout_s: Longest wait for all threads to end at shutdown.
        warmup_frames: First output frames left out of ``fps``, latency and the
            inference-time mean (graph warm-up, filling the queues).
        label: Names this run in its log lines and thread names (several sources in one
            process); empty for a lone run.
    """

    detect_every: int = 1
    workers: int = 1
    max_frames: int | None = None
    queue_size: int = 8
    fps_interval_s: float = 5.0
    join_timeout_s: float = 10.0
    warmup_frames: int = 1
    label: str = ""

    def __post_init__(self) -> None:
        checks = {
            "detect_every": self.detect_every >= 1,
            "workers": self.workers >= 1,
            "max_frames": self.max_frames is None or self.max_frames >= 1,
            "queue_size": self.queue_size >= 1,
            "fps_interval_s": self.fps_interval_s > 0,
            "join_timeout_s": self.join_timeout_s > 0,
            "warmup_frames": self.warmup_frames >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"pipeline option {name}={getattr(self, name)!r} is out of range",
                    hint="counts and times must be positive (max_frames may be null)",
                )


def inference_workers(live: bool, configured: int) -> int:
    """Inference threads for a source: live sources use one (frames arrive in real time,
    more workers would only add latency), files and folders the configured number."""
    return 1 if live else configured


def run_pipeline(
    source: Source,
    detect: Detect,
    consume: Consume,
    options: PipelineOptions = PipelineOptions(),
    *,
    clock: Clock = time.monotonic,
    stop: threading.Event | None = None,
) -> RunStats:
    """Read ``source`` to the end (or a stop), detect, and hand results to ``consume`` in order.

    ``consume`` runs on the calling thread (a GUI window must live there) and returns
    False to stop. Each frame's ``timestamp_s`` is ``clock()`` just after capture, so
    ``clock() - result.frame.timestamp_s`` in ``consume`` is the capture-to-output latency.
    The source is closed and the capture thread joined before this returns or raises.

    Args:
        source: Where frames come from; live sources keep the newest frame.
        detect: The model: BGR frame → (pixel ``xyxy`` detections, inference ms).
        consume: Render and write one result; return False to stop.
        options: Worker count, ``detect_every``, limits, queue sizes, timings.
        clock: Monotonic seconds (injectable for tests).
        stop: Set from another thread to end the run as if ``consume`` returned False
            (seen within 0.1 s, also while no frame arrives): several sources in one run
            stop together.

    Returns:
        The run's numbers.

    Raises:
        StageError: A stage failed; names the stage and the frame; ``stats`` holds the numbers.
        RunInterrupted: Ctrl-C / SIGTERM, after a clean shutdown; ``stats`` holds the numbers.
    """
    return _Run(source, detect, consume, options, clock, stop).run()


@dataclass(slots=True)
class _Work:
    seq: int
    frame: Frame
    detections: Detections | None  # None: carry the last fresh detections
    inference_ms: float | None


class _Run:
    """State of one run, shared by its threads."""

    def __init__(
        self,
        source: Source,
        detect: Detect,
        consume: Consume,
        opt: PipelineOptions,
        clock: Clock,
        external_stop: threading.Event | None = None,
    ) -> None:
        self.source, self.detect, self.consume, self.opt = source, detect, consume, opt
        self.external_stop = external_stop
        self.prefix = f"{opt.label}: " if opt.label else ""
        live = source.info.live
        self.workers = inference_workers(live, opt.workers)
        if live and opt.workers > 1:
            log.info(
                "live source: 1 inference worker instead of %d (frames arrive in real "
                "time; more workers would only add latency)",
                opt.workers,
            )
        if live:
            self.frames: Channel[Frame] = Channel(min(opt.queue_size, _LIVE_QUEUE), "newest")
        else:
            self.frames = Channel(opt.queue_size, "block")
        # Live: a finished result waits for at most one being shown, so under overload
        # frames are dropped at capture (counted) instead of going stale in a queue.
        window = 1 if live else max(opt.queue_size, 2 * self.workers)
        self.results: ReorderBuffer[_Work] = ReorderBuffer(window)
        self.read_limit = None if live else opt.max_frames
        self.meter = RunMeter(opt.fps_interval_s, opt.warmup_frames, clock)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.dispatch_lock = threading.Lock()
        self.error: tuple[str, int | None, BaseException] | None = None
        self.active_workers = self.workers
        self.next_seq = 0
        self.last_detected: int | None = None
        self.seen_dropped = 0
        self.lagging = False

    # -- worker threads ---------------------------------------------------------------

    def capture(self) -> None:
        index = 0
        clock = self.meter.clock
        try:
            while not self.stop.is_set():
                if self.read_limit is not None and index >= self.read_limit:
                    break
                item = self.source.read()
                if item is None:
                    break
                frame = Frame(index, clock(), item[0], item[1])  # stamped at capture
                self.meter.frame_read()
                index += 1
                if not self.frames.put(frame):
                    break
        except BaseException as exc:
            self.fail("capture", index, exc)
        finally:
            self.frames.close()
            self.source.close()

    def infer(self) -> None:
        every = self.opt.detect_every
        index: int | None = None
        try:
            while True:
                # Taking a frame and deciding detect-or-carry happen in frame order, so
                # sequence numbers follow frame order and carried frames never wait on
                # a model run other than the one they carry from.
                with self.dispatch_lock:
                    if self.stop.is_set():
                        break
                    try:
                        frame = self.take()
                    except Closed:
                        break
                    seq = self.next_seq
                    self.next_seq += 1
                    last = self.last_detected
                    # ">=" rather than "% every": a live source's dropped frames leave gaps.
                    fresh = last is None or frame.index >= last + every
                    if fresh:
                        self.last_detected = frame.index
                index = frame.index
                if fresh:
                    detections, ms = self.detect(frame)
                    self.meter.inference_done(ms)
                    work = _Work(seq, frame, detections, ms)
                else:
                    work = _Work(seq, frame, None, None)
                if not self.results.put(seq, work):
                    break
                index = None
        except BaseException as exc:
            self.fail("inference", index, exc)
        finally:
            with self.lock:
                self.active_workers -= 1
                if self.active_workers == 0:
                    self.results.close()

    def take(self) -> Frame:
        """Next frame; a live source that is losing frames skips to the newest one.

        FIFO rides out a single slow model run without a drop. Once the channel has had
        to drop a frame the model is not keeping up, and taking the oldest would only
        add a frame period of lag, so take the newest until the channel runs empty.
        """
        frames = self.frames
        if frames.policy != "newest":
            return frames.get()
        if len(frames) == 0:
            self.lagging = False
        elif frames.dropped > self.seen_dropped:
            self.lagging = True
        frame = frames.get_latest() if self.lagging else frames.get()
        self.seen_dropped = frames.dropped
        return frame

    def fail(self, stage: str, frame_index: int | None, exc: BaseException) -> None:
        """Record the first error and stop every stage."""
        with self.lock:
            if self.error is None:
                self.error = (stage, frame_index, exc)
        log.debug("%s stage failed on frame %s: %r", stage, frame_index, exc)
        self.halt()

    def halt(self) -> None:
        """Stop upstream: wake every blocked thread; queued work is discarded."""
        self.stop.set()
        self.source.interrupt()  # a live source waiting for a frame returns at once
        self.frames.close()
        self.frames.clear()
        self.results.close(discard=True)

    # -- main thread ------------------------------------------------------------------

    def run(self) -> RunStats:
        threads = self._threads()
        try:
            for thread in threads:
                thread.start()
            self._main_loop()
        except KeyboardInterrupt as exc:
            log.info("%sinterrupted: stopping", self.prefix)
            self.shutdown(threads)
            raise RunInterrupted(self.stats(interrupted=True)) from exc
        except BaseException:
            self.shutdown(threads)
            raise
        self.shutdown(threads)
        stats = self.stats(interrupted=False)
        if self.error is not None:
            stage, frame_index, cause = self.error
            raise StageError(stage, frame_index, cause, stats) from cause
        log.info(
            "%spipeline done: %s",
            self.prefix,
            ", ".join(f"{k} {v}" for k, v in stats.to_dict().items()),
        )
        return stats

    def _threads(self) -> list[threading.Thread]:
        tag = f"-{self.opt.label}" if self.opt.label else ""
        threads = [
            threading.Thread(target=self.capture, name=f"detector-capture{tag}", daemon=True)
        ]
        threads += [
            threading.Thread(target=self.infer, name=f"detector-infer{tag}-{i}", daemon=True)
            for i in range(self.workers)
        ]
        return threads

    def _main_loop(self) -> None:
        """Results in frame order to ``consume`` until the end, a limit, a stop or an error."""
        opt, meter = self.opt, self.meter
        external = self.external_stop
        wait_s = opt.fps_interval_s if external is None else min(opt.fps_interval_s, 0.1)
        carried: tuple[Detections, int] = (Detections.empty(), 0)
        next_log = meter.started + opt.fps_interval_s
        while opt.max_frames is None or meter.frames_processed < opt.max_frames:
            try:
                work = self.results.get(timeout_s=wait_s)
            except TimeoutError:
                work = None  # nothing for a whole interval: still log the rates
            except Closed:
                break
            if work is not None:
                if work.detections is not None:
                    carried = (work.detections, work.frame.index)
                if not self._output(work, carried):
                    break
            if external is not None and external.is_set():
                log.info("%sstopping with the run", self.prefix)
                break
            if meter.clock() >= next_log:
                log.info(
                    "%s%s | dropped %d, skipped %d",
                    self.prefix,
                    meter.rates(),
                    self.frames.dropped,
                    self.source.skipped,
                )
                next_log = meter.clock() + opt.fps_interval_s

    def _output(self, work: _Work, carried: tuple[Detections, int]) -> bool:
        """Hand one frame's result to ``consume``; False when the run must stop."""
        frame = work.frame
        if work.detections is not None:
            result = FrameResult(frame, work.detections, True, frame.index, work.inference_ms)
        else:
            result = FrameResult(frame, carried[0], False, carried[1], None)
        try:
            keep = self.consume(result)
        except Exception as exc:
            self.fail("output", frame.index, exc)
            return False
        self.meter.frame_output(frame.timestamp_s)
        if keep is not None and not keep:
            log.info(
                "%soutput asked to stop after %d frames", self.prefix, self.meter.frames_processed
            )
            return False
        return True

    def shutdown(self, threads: list[threading.Thread]) -> None:
        """Stop every stage, join threads within the timeout, make sure the source is closed."""
        self.halt()
        deadline = time.monotonic() + self.opt.join_timeout_s
        for thread in threads:
            if thread.ident is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            log.error(
                "threads still running after %.1f s: %s (a read or model call is hung)",
                self.opt.join_timeout_s,
                ", ".join(stuck),
            )
        if not threads[0].is_alive():
            self.source.close()

    def stats(self, *, interrupted: bool) -> RunStats:
        return self.meter.stats(self.frames.dropped, self.source.skipped, interrupted)
