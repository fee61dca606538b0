"""The original ``.tflite`` run by TFLite's own interpreter, beside a converted frozen graph.

Both give ``Found`` detections of one RGB image, so a converted SSD graph can be checked
against the file it came from (``model.backends.parity.found_again``) and timed beside it.
Run ``python -m detector.tflite.reference`` (after ``python main.py fetch``) to print, for
the default model, how many of the interpreter's detections the frozen graph finds again
and the milliseconds per frame of both on a 768×576 frame. Images are RGB ``uint8``; boxes
normalized ``[ymin, xmin, ymax, xmax]``; class ids 1-based.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from detector.model.backends.parity import Found, found_again


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


def main(argv: Sequence[str] | None = None) -> int:
    from detector.fetch.assets import DEFAULT_MODEL_DIR, PHOTOS_DIR, SAMPLE_VIDEO, TFLITE_NAME

    ap = argparse.ArgumentParser(
        prog="python -m detector.tflite.reference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--graph", type=Path, default=DEFAULT_MODEL_DIR / "frozen_inference_graph.pb")
    ap.add_argument("--tflite", type=Path, default=DEFAULT_MODEL_DIR / "source" / TFLITE_NAME)
    ap.add_argument("--photos", type=Path, default=PHOTOS_DIR)
    ap.add_argument("--video", type=Path, default=SAMPLE_VIDEO, help="a frame for timing")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2, help="TFLite interpreter threads")
    args = ap.parse_args(argv)

    import cv2

    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    images = load_rgb(photos)
    ref, graph = TfliteReference(args.tflite, args.threads), FrozenGraph(args.graph)
    result = found_again([ref(im) for im in images], [graph(im) for im in images])
    result["images"] = len(images)
    cap = cv2.VideoCapture(str(args.video))
    ok, bgr = cap.read()
    cap.release()
    frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok else images[0]
    result["frame"] = list(frame.shape)
    result["graph_ms"] = median_ms(lambda: graph(frame), args.runs)
    result["tflite_ms"] = median_ms(lambda: ref(frame), args.runs)
    result["graph_bytes"] = args.graph.stat().st_size
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
