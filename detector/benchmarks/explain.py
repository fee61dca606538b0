"""Explain on the sample photos: how often each method's peak lies in the box, and its cost.

For every detection scoring at least the threshold on every photo, each method's map is
made (the same code as ``python main.py explain``); the table gives per method the share of
detections whose peak lies inside their box, the mean share of heat inside the box and the
median milliseconds per detection (occlusion: the image's sweep divided by its detections).
On ``dog.jpg`` it also checks that the dog's and the bicycle's maps peak on different objects.

    python main.py bench --only explain [--photos samples/photos] [--json OUT] [--overlays DIR]
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detector.config import DEFAULT_THRESHOLD
from detector.explain import METHODS
from detector.explain.explainer import (
    ExplainOptions,
    Explanation,
    explain_image,
    open_images,
    read_images,
    write_overlays,
)
from detector.explain.model import ExplainModel
from detector.labels import load_label_map

log = logging.getLogger(__name__)


def explain_bench(
    model_path: Path,
    photos: Path,
    *,
    labels_path: Path | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    overlays: Path | None = None,
) -> dict[str, Any]:
    """Run every method on every kept detection of the photos; return the measurements."""

    labels = load_label_map(labels_path) if labels_path else None
    options = ExplainOptions(methods=METHODS, threshold=threshold, write_png=False)
    rows: list[dict[str, Any]] = []
    dog: dict[str, Any] | None = None
    with ExplainModel(model_path) as model:
        images = list(read_images(open_images(str(photos))))
        explain_image(model, images[0][0], options, labels)  # warm-up: graph built, kernels ready
        for image, name in images:
            found = explain_image(model, image, options, labels)
            if overlays is not None:
                overlays.mkdir(parents=True, exist_ok=True)
                write_overlays(image, name, found, overlays, options)
            for exp in found:
                rows.append(_row(name, exp))
            if Path(name).stem == "dog":
                dog = _dog_check(found)
            log.info("%s: %d detection(s)", name, len(found))
        layers = {"gradcam": model.points.gradcam_layer, "gradxact": model.points.fine_layer}
    return {
        "model": str(model_path),
        "photos": str(photos),
        "images": len(images),
        "threshold": threshold,
        "layers": layers,
        "occlusion": {"grid": options.occlusion_grid, "patch_cells": options.occlusion_patch},
        "methods": {m: _summary(rows, m) for m in METHODS},
        "dog": dog,
        "detections": rows,
    }


def _row(name: str, exp: Explanation) -> dict[str, Any]:
    row: dict[str, Any] = {
        "image": name,
        "label": exp.label,
        "score": round(exp.score, 3),
        "box_xyxy": [round(float(v), 1) for v in exp.box_xyxy],
    }
    for method, r in exp.results.items():
        row[method] = {
            "peak_xy": list(r.stats.peak_xy) if r.stats.peak_xy else None,
            "peak_in_box": r.stats.peak_in_box,
            "heat_in_box": round(r.stats.in_box_share, 3),
            "ms": round(r.time_ms, 1),
            "error": r.error,
        }
    return row


def _summary(rows: Sequence[dict[str, Any]], method: str) -> dict[str, Any]:
    done = [r[method] for r in rows if method in r]
    n = len(done)
    inside = sum(1 for d in done if d["peak_in_box"])
    return {
        "detections": n,
        "peak_in_box": inside,
        "peak_in_box_share": inside / n if n else float("nan"),
        "mean_heat_in_box": float(np.mean([d["heat_in_box"] for d in done])) if n else float("nan"),
        "median_ms_per_detection": statistics.median(d["ms"] for d in done) if n else float("nan"),
    }


def _inside(peak: Sequence[int] | None, box: Sequence[float] | np.ndarray) -> bool:
    return bool(peak is not None and box[0] <= peak[0] <= box[2] and box[1] <= peak[1] <= box[3])


def _dog_check(found: Sequence[Explanation]) -> dict[str, Any] | None:
    """Per method: do the dog's and the bicycle's maps peak on different objects?

    Their boxes overlap, so a peak counts as on its own object when it lies inside its own box;
    the peaks are also reported outside the other's box or not, and how far apart they are.
    """
    dog = next((e for e in found if e.label == "dog"), None)
    bike = next((e for e in found if e.label == "bicycle"), None)
    if dog is None or bike is None:
        return None
    out: dict[str, Any] = {}
    for m in METHODS:
        p_dog, p_bike = dog.results[m].stats.peak_xy, bike.results[m].stats.peak_xy
        own = _inside(p_dog, dog.box_xyxy) and _inside(p_bike, bike.box_xyxy)
        apart = (
            float(np.hypot(p_dog[0] - p_bike[0], p_dog[1] - p_bike[1]))
            if p_dog and p_bike
            else None
        )
        out[m] = {
            "dog_peak": list(p_dog) if p_dog else None,
            "bicycle_peak": list(p_bike) if p_bike else None,
            "each_in_own_box": own,
            "dog_peak_outside_bicycle_box": not _inside(p_dog, bike.box_xyxy),
            "bicycle_peak_outside_dog_box": not _inside(p_bike, dog.box_xyxy),
            "peaks_apart_px": round(apart, 1) if apart is not None else None,
        }
    return out


def format_table(result: dict[str, Any]) -> str:
    """The measurement as a Markdown table, then the dog.jpg check."""
    lines = [
        f"{result['images']} photos, detections with score >= {result['threshold']}; "
        f"Grad-CAM at {result['layers']['gradcam']}, gradient x activation at "
        f"{result['layers']['gradxact']}, occlusion grid {result['occlusion']['grid']} "
        f"patch {result['occlusion']['patch_cells']} cells",
        "",
        "| method | detections | peak in box | share | mean heat in box | ms / detection |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m, s in result["methods"].items():
        lines.append(
            f"| {m} | {s['detections']} | {s['peak_in_box']} | {100 * s['peak_in_box_share']:.0f}% "
            f"| {100 * s['mean_heat_in_box']:.0f}% | {s['median_ms_per_detection']:.0f} |"
        )
    dog = result.get("dog")
    if dog:
        lines += [
            "",
            "dog.jpg: dog vs bicycle",
            "",
            "| method | dog peak | bicycle peak | each in own box | dog peak outside bicycle box "
            "| bicycle peak outside dog box | apart (px) |",
            "|---|---|---|---|---|---|---:|",
        ]
        for m, d in dog.items():
            lines.append(
                f"| {m} | {d['dog_peak']} | {d['bicycle_peak']} | {d['each_in_own_box']} "
                f"| {d['dog_peak_outside_bicycle_box']} | {d['bicycle_peak_outside_dog_box']} "
                f"| {d['peaks_apart_px']} |"
            )
    return "\n".join(lines)
