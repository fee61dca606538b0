"""Check the fetched default model against its TFLite source: detections found again, ms per frame.

``python -m detector.fetch.fidelity`` (after ``python main.py fetch``) prints, for the default
model, how many of the TFLite interpreter's detections on the sample photos the converted frozen
graph finds again, and the milliseconds per frame of both on a frame of the sample video. Any
other TFLite SSD and its conversion: ``--tflite IN.tflite --graph OUT.pb --photos DIR``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import cv2

from detector.fetch.assets import DEFAULT_MODEL_DIR, PHOTOS_DIR, SAMPLE_VIDEO, TFLITE_NAME
from detector.imagefiles import load_images
from detector.model.backends.parity import found_again
from detector.tflite.reference import FrozenGraph, TfliteReference, median_ms


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m detector.fetch.fidelity",
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

    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    images = load_images(photos, rgb=True)
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
