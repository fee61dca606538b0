"""The original ``.tflite`` run by TFLite's own interpreter, beside a converted frozen graph.

Both give ``Found`` detections of one RGB image, so a converted SSD graph can be checked
against the file it came from (``model.backends.parity.found_again``) and timed beside it.
``python -m detector.fetch.fidelity`` runs this on the fetched default model. Images are RGB
``uint8``; boxes normalized ``[ymin, xmin, ymax, xmax]``; class ids 1-based.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from detector.config import OD_INPUT, OD_OUTPUTS
from detector.model.backends.parity import Found
from detector.model.graphfile import load_graph
from detector.model.session import SessionOptions, new_session


class TfliteReference:
    """The original .tflite run by ``ai_edge_litert`` (else ``tf.lite``); class ids made 1-based."""

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - older set-ups
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = [o["index"] for o in self.interpreter.get_output_details()]
        self.height, self.width = (int(v) for v in self.input["shape"][1:3])

    def invoke_only(self, _: object = None) -> None:
        """Run the interpreter on whatever input is set (times ``invoke`` alone)."""
        self.interpreter.invoke()

    def __call__(self, rgb: np.ndarray) -> Found:
        # cv2's INTER_LINEAR uses half-pixel centres, as the graph's ResizeBilinear does.
        x = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        self.interpreter.set_tensor(self.input["index"], x[None])
        self.interpreter.invoke()
        boxes, classes, scores, num = (self.interpreter.get_tensor(i) for i in self.outputs)
        n = int(num[0])
        return Found(np.clip(boxes[0, :n], 0.0, 1.0), scores[0, :n], classes[0, :n].astype(int) + 1)


class FrozenGraph:
    """A frozen TF OD API graph in its own session, read and checked by the one model reader."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        options = SessionOptions("cpu", True, threads, threads, "fp32")
        self.loaded = load_graph(path, new_session=lambda g: new_session(g, options)[0])
        self.session = self.loaded.session
        self.fetches = list(OD_OUTPUTS)

    def __call__(self, rgb: np.ndarray) -> Found:
        boxes, scores, classes, num = self.session.run(self.fetches, {OD_INPUT: rgb[None]})
        n = int(num[0])
        return Found(boxes[0, :n], scores[0, :n], classes[0, :n].astype(int))

    def close(self) -> None:
        self.session.close()


def median_ms(fn: Callable[[], object], runs: int = 30, warmup: int = 5) -> float:
    """Median wall-clock milliseconds of ``fn()`` over ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)
