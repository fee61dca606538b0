"""The batcher alone (a slow stand-in engine): batches gathered, a full queue refused at once, and
the API's 503 + Retry-After when it is."""

from __future__ import annotations

import threading

import cv2
import httpx
import numpy as np
import pytest

from detector.labels import LabelMap
from detector.outputs.web import Hub, WebServer
from detector.service.batcher import Batcher, QueueFull
from detector.service.detect import DetectApi, detect_router
from detector.types import Detections


class _SlowEngine:
    """Answers one empty detection per image after ``gate`` opens; records batch sizes."""

    input_size = None

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def detect_batch(self, images, side):
        self.entered.set()
        self.gate.wait(30)
        self.batches.append(len(images))
        return [Detections.empty() for _ in images], 1.0


def _image() -> np.ndarray:
    return np.zeros((20, 30, 3), np.uint8)


def test_waiting_requests_share_a_call_and_a_full_queue_refuses_at_once():
    engine = _SlowEngine()
    batcher = Batcher(engine, batch_size=4, max_wait_s=0.005, queue_size=6, side=300)  # type: ignore[arg-type]
    try:
        first = batcher.submit(_image())  # taken by the worker, which then waits at the gate
        assert engine.entered.wait(30)
        waiting = [batcher.submit(_image()) for _ in range(6)]
        with pytest.raises(QueueFull, match="6 requests"):
            batcher.submit(_image())
        engine.gate.set()
        for f in [first, *waiting]:
            assert len(f.result(timeout=30)) == 0
        assert engine.batches[0] == 1 and sorted(engine.batches[1:]) == [2, 4]
    finally:
        engine.gate.set()
        batcher.close()


def test_the_api_answers_503_with_retry_after_when_the_queue_is_full():
    engine = _SlowEngine()
    batcher = Batcher(engine, batch_size=1, queue_size=1, side=0)  # type: ignore[arg-type]
    hub = Hub()
    server = WebServer(hub, port=0)
    api = DetectApi(batcher, LabelMap({}), 0.5, None, 10**7, server.metrics)
    server.routers.append(detect_router(api))
    jpeg = cv2.imencode(".jpg", _image())[1].tobytes()
    try:
        with server, httpx.Client(timeout=30) as http:
            url = f"{server.url}api/detect"
            busy = [threading.Thread(target=http.post, args=(url,), kwargs={"content": jpeg})]
            busy.append(threading.Thread(target=http.post, args=(url,), kwargs={"content": jpeg}))
            busy[0].start()  # one in the model...
            assert engine.entered.wait(30)
            busy[1].start()  # ...one in the queue
            assert _until(lambda: batcher.depth == 1)
            refused = http.post(url, content=jpeg)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert "busy" in refused.json()["error"]
            engine.gate.set()
            for t in busy:
                t.join(30)
            assert http.post(url, content=jpeg).status_code == 200
    finally:
        engine.gate.set()
        batcher.close()


def _until(predicate, timeout_s: float = 30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False
