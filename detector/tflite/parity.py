"""Check a converted SSD graph against TFLite's own interpreter on the original file: parity
and speed.

``python -m detector.fetch.fidelity`` runs this on the fetched default model. Images are RGB
``uint8``; boxes normalized ``[ymin, xmin, ymax, xmax]``; class ids 1-based.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Found:
    """Detections of one image: boxes ``[N, 4]`` normalized yxyx, scores ``[N]``, ids ``[N]``."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box ``a`` [4] with boxes ``b`` [N, 4], both ``[ymin, xmin, ymax, xmax]``."""
    y1, x1 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    y2, x2 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(y2 - y1, 0, None) * np.clip(x2 - x1, 0, None)
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


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
        import cv2

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
        from detector.model.graphfile import load_graph
        from detector.model.session import SessionOptions, new_session

        options = SessionOptions("cpu", True, threads, threads, "fp32")
        self.loaded = load_graph(path, new_session=lambda g: new_session(g, options)[0])
        self.session = self.loaded.session
        self.fetches = [
            "detection_boxes:0",
            "detection_scores:0",
            "detection_classes:0",
            "num_detections:0",
        ]

    def __call__(self, rgb: np.ndarray) -> Found:
        boxes, scores, classes, num = self.session.run(self.fetches, {"image_tensor:0": rgb[None]})
        n = int(num[0])
        return Found(boxes[0, :n], scores[0, :n], classes[0, :n].astype(int))

    def close(self) -> None:
        self.session.close()


def compare(
    reference: Sequence[Found],
    converted: Sequence[Found],
    min_score: float = 0.5,
    min_iou: float = 0.5,
) -> dict[str, Any]:
    """How many reference detections (score ≥ min_score) the converted ones find again.

    Found again = a converted detection of the same class with IoU ≥ min_iou (the best
    such one gives the IoU and score difference figures).
    """
    total, found, ious, diffs, misses = 0, 0, [], [], []
    for k, (ref, got) in enumerate(zip(reference, converted, strict=False)):
        for box, score, cls in zip(ref.boxes, ref.scores, ref.classes, strict=True):
            if score < min_score:
                continue
            total += 1
            same = got.classes == cls
            overlaps = iou(box, got.boxes[same]) if same.any() else np.zeros(0)
            if overlaps.size and overlaps.max() >= min_iou:
                j = int(np.argmax(overlaps))
                found += 1
                ious.append(float(overlaps[j]))
                diffs.append(abs(float(got.scores[same][j]) - float(score)))
            else:
                misses.append({"image": k, "class": int(cls), "score": float(score)})
    return {
        "reference": total,
        "found": found,
        "ratio": found / total if total else 1.0,
        "median_iou": statistics.median(ious) if ious else None,
        "median_score_diff": statistics.median(diffs) if diffs else None,
        "max_score_diff": max(diffs) if diffs else None,
        "misses": misses,
    }


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


def load_rgb(paths: Sequence[Path]) -> list[np.ndarray]:
    """Images as RGB uint8 (unreadable files are skipped)."""
    import cv2

    out = []
    for p in paths:
        bgr = cv2.imread(str(p))
        if bgr is not None:
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return out
