"""Feeding the web view in tests: numbered frames written to a ``WebSink`` at a steady rate.

:class:`Publisher` stands in for the pipeline's render stage (same ``write(result,
annotated)`` calls, on its own thread), so the server and the browser can be tested
without a model.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from detector.outputs.web import WebSink
from detector.types import Detections, Frame, FrameResult

WAIT_S = 10.0


def numbered(index: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """Frame ``index``: grey level ``index % 256`` and a bar whose width grows with it."""
    w, h = size
    image = np.full((h, w, 3), (index * 7) % 256, np.uint8)
    image[: h // 6, : (index * 3) % w] = 255
    return image


def result_for(index: int, image: np.ndarray) -> FrameResult:
    dets = Detections(
        np.array([[10, 10, 60, 80]], np.float32),
        np.array([0.9], np.float32),
        np.array([1], np.int32),
    )
    return FrameResult(Frame(index, time.monotonic(), image, None), dets, True, index, 3.0)


def record_for(result: FrameResult) -> dict:
    return {"frame": result.frame.index, "detections": [{"label": "person", "score": 0.9}]}


class Publisher:
    """Writes numbered frames to a sink at ``fps`` until stopped; counts its writes."""

    def __init__(self, sink: WebSink, fps: float = 40.0) -> None:
        self.sink, self.period_s = sink, 1.0 / fps
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            image = numbered(i)
            self.sink.write(result_for(i, image), image)
            self.written += 1
            i += 1
            self._stop.wait(self.period_s)

    def __enter__(self) -> Publisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT_S)


def wait_until(predicate, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
