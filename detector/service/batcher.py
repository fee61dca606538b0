"""Concurrent detection requests become model calls of several images: bounded wait and queue.

Callers :meth:`Batcher.submit` an image and get a future. Worker threads take the first
waiting request, then wait at most ``max_wait_s`` for more (up to ``batch_size``), and run
them through the model in one call (:meth:`detector.engine.Engine.detect_batch`). The queue
holds at most ``queue_size`` requests: beyond that :class:`QueueFull` is raised at once, so
a flood of requests is refused (the service answers 503) instead of piling up.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from detector.engine import Engine
from detector.types import Detections

log = logging.getLogger(__name__)

OnBatch = Callable[[int, float], None]
"""Called after each model call with ``(images in it, model milliseconds)``."""


class QueueFull(Exception):
    """The batcher holds ``queue_size`` requests already."""


@dataclass
class _Job:
    image: np.ndarray
    future: Future[Detections] = field(default_factory=Future)


class Batcher:
    """Batches concurrent detection requests onto ``engine``'s model.

    Args:
        engine: The loaded model (its ``max_boxes`` applies; score and class filtering is
            the caller's, per request).
        batch_size: Most images in one model call (1: one at a time).
        max_wait_s: Longest wait for more requests once one is waiting.
        queue_size: Requests that may wait; more raise :class:`QueueFull`.
        side: Images are resized to ``side`` x ``side`` before batching (0: keep their
            size; then only images of one size share a call).
        workers: Threads making model calls (the model is thread-safe).
        on_batch: Told of each model call (for metrics).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int = 8,
        max_wait_s: float = 0.005,
        queue_size: int = 32,
        side: int = 300,
        workers: int = 1,
        on_batch: OnBatch | None = None,
    ) -> None:
        self.engine = engine
        self.batch_size = max(1, batch_size)
        self.max_wait_s = max(0.0, max_wait_s)
        self.side = side
        self.on_batch = on_batch
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max(1, queue_size))
        self._take = threading.Lock()  # one worker gathers a batch at a time
        self._threads = [
            threading.Thread(target=self._run, name=f"detector-batch-{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()
        self.closed = False

    @property
    def depth(self) -> int:
        """Requests waiting now."""
        return self._queue.qsize()

    def submit(self, image_bgr: np.ndarray) -> Future[Detections]:
        """Queue one BGR image; its future gets its unfiltered detections.

        Raises:
            QueueFull: ``queue_size`` requests are already waiting (or the batcher closed).
        """
        if self.closed:
            raise QueueFull("the service is shutting down")
        job = _Job(image_bgr)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"{self._queue.maxsize} requests are already waiting") from None
        return job.future

    def close(self) -> None:
        """Finish what is queued, then stop the workers."""
        if self.closed:
            return
        self.closed = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10.0)

    def _gather(self) -> list[_Job] | None:
        """The next batch: one request, then more until full or ``max_wait_s`` passed."""
        with self._take:
            first = self._queue.get()
            if first is None:
                return None
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.batch_size:
                left = deadline - time.monotonic()
                try:
                    job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:  # closing: leave the sentinel for the others
                    self._queue.put(None)
                    break
                batch.append(job)
            return batch

    def _run(self) -> None:
        while (batch := self._gather()) is not None:
            for group in self._groups(batch):
                self._call(group)

    def _groups(self, batch: list[_Job]) -> list[list[_Job]]:
        """One group when images are resized to one size, else one group per size."""
        if self.side > 0 or self.engine.input_size is not None:
            return [batch]
        groups: dict[tuple[int, ...], list[_Job]] = {}
        for job in batch:
            groups.setdefault(job.image.shape, []).append(job)
        return list(groups.values())

    def _call(self, group: list[_Job]) -> None:
        try:
            found, ms = self.engine.detect_batch([j.image for j in group], self.side)
        except Exception as exc:  # the request fails, the service goes on
            log.error("detection of %d image(s) failed: %s", len(group), exc)
            for job in group:
                job.future.set_exception(exc)
            return
        for job, dets in zip(group, found, strict=True):
            job.future.set_result(dets)
        if self.on_batch is not None:
            self.on_batch(len(group), ms)
