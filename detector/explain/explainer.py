"""Explain the detections of images: heat maps per detection and method, PNGs and explain.json.

For each image: one forward pass gives the kept detections and the pre-NMS boxes and scores;
each detection is mapped to its anchor (:mod:`detector.explain.anchors`); then per method

* ``gradcam`` / ``gradxact``: one forward + backward pass per detection;
* ``occlusion``: one sweep per image for all its detections (the anchor's pre-NMS score is
  watched; without an anchor, the best same-class detection overlapping the box).

Maps are stretched to the image; the peak and the share of heat inside the box are read off;
overlays are written as PNG next to ``explain.json``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.boxes import MIN_IOU, class_iou
from detector.config import DEFAULT_THRESHOLD
from detector.errors import ConfigError, ModelError, SinkError
from detector.explain import DEFAULT_METHOD, METHODS
from detector.explain.anchors import AnchorMatch, match_anchor
from detector.explain.heatmaps import (
    HeatStats,
    grad_x_activation,
    gradcam,
    heat_stats,
    to_image,
)
from detector.explain.model import ExplainModel, Forward
from detector.explain.occlusion import occlusion_maps
from detector.explain.overlay import colormap_id, overlay
from detector.imagefiles import write_image
from detector.labels import LabelMap
from detector.outputs.rundir import write_json
from detector.sources import open_source, parse_source
from detector.sources.base import Source
from detector.types import SourceKind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExplainOptions:
    """What to explain and how.

    Attributes:
        methods: Methods to run, the first is the one reported at the top of each entry.
        detection: Explain only this kept detection (0-based, best score first); ``None``: all.
        threshold: Kept detections score at least this.
        max_detections: At most this many per image (best first).
        colormap: OpenCV colour map for the overlays.
        alpha: Weight of the heat colours in the overlays.
        occlusion_grid: Occlusion cells per image side.
        occlusion_patch: Occlusion patch side, in cells.
        write_png: Write overlays (off for measurements).
    """

    methods: tuple[str, ...] = (DEFAULT_METHOD,)
    detection: int | None = None
    threshold: float = DEFAULT_THRESHOLD
    max_detections: int = 100
    colormap: str = "jet"
    alpha: float = 0.45
    occlusion_grid: int = 16
    occlusion_patch: int = 3
    write_png: bool = True

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ConfigError(
                f"unknown explain method(s) {unknown or self.methods}",
                hint=f"choose from {', '.join(METHODS)} or 'all'",
            )
        if self.detection is not None and self.detection < 0:
            raise ConfigError(f"--detection must be 0 or more, got {self.detection}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"--threshold must be in [0, 1], got {self.threshold}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"--alpha must be in [0, 1], got {self.alpha}")
        if not 1 <= self.occlusion_patch <= self.occlusion_grid:
            raise ConfigError(
                f"occlusion patch {self.occlusion_patch} must be between 1 and the grid "
                f"{self.occlusion_grid}"
            )
        colormap_id(self.colormap)


@dataclass
class MethodResult:
    """One method's map for one detection.

    Attributes:
        heat: ``(H, W)`` float32 map at image resolution (``None`` when the method failed).
        stats: Peak and in-box share.
        time_ms: Time spent on this detection (occlusion: the image's sweep / its detections).
        layer: The feature map explained (gradient methods).
        error: Why the method could not run for this detection.
        png: The overlay written, if any.
    """

    heat: np.ndarray | None
    stats: HeatStats
    time_ms: float
    layer: str | None = None
    error: str | None = None
    png: str | None = None


@dataclass
class Explanation:
    """One detection and its maps."""

    index: int
    class_id: int
    label: str
    score: float
    box_xyxy: np.ndarray
    box_norm: np.ndarray
    anchor: AnchorMatch | None
    results: dict[str, MethodResult] = field(default_factory=dict)

    def to_json(self, first: str) -> dict[str, Any]:
        main = self.results.get(first)
        out: dict[str, Any] = {
            "index": self.index,
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 4),
            "box_xyxy": [round(float(v), 1) for v in self.box_xyxy],
            "method": first,
        }
        if main is not None:
            out.update(_method_json(main))
        out["anchor"] = self.anchor.anchor if self.anchor else None
        out["score_column"] = self.anchor.column if self.anchor else None
        out["methods"] = {m: _method_json(r) for m, r in self.results.items()}
        return out


def _method_json(r: MethodResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "peak_xy": list(r.stats.peak_xy) if r.stats.peak_xy else None,
        "heat_in_box": round(r.stats.in_box_share, 4),
        "peak_in_box": r.stats.peak_in_box,
        "time_ms": round(r.time_ms, 1),
    }
    if r.layer:
        out["layer"] = r.layer
    if r.png:
        out["png"] = r.png
    if r.error:
        out["error"] = r.error
    return out


_NO_STATS = HeatStats(None, 0.0, False)


def _failed(error: str) -> MethodResult:
    return MethodResult(None, _NO_STATS, 0.0, error=error)


def select(forward: Forward, options: ExplainOptions) -> list[int]:
    """Rows of ``forward.detections`` to explain: kept (score ≥ threshold), best first."""
    dets = forward.detections
    order = [
        int(i)
        for i in np.argsort(-dets.scores, kind="stable")
        if dets.scores[i] >= options.threshold
    ]
    order = order[: options.max_detections]
    if options.detection is not None:
        return [order[options.detection]] if options.detection < len(order) else []
    return order


def explain_image(
    model: ExplainModel,
    image_bgr: np.ndarray,
    options: ExplainOptions,
    labels: LabelMap | None = None,
) -> list[Explanation]:
    """Explain the kept detections of one BGR ``uint8`` image with every method asked."""
    rgb = np.ascontiguousarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
    forward = model.forward(rgb)
    rows = select(forward, options)
    if options.detection is not None and not rows:
        log.warning(
            "--detection %d: the image has only %d kept detection(s)",
            options.detection,
            int((forward.detections.scores >= options.threshold).sum()),
        )
    found = [_explanation(forward, row, k, options, labels) for k, row in enumerate(rows)]
    for method in options.methods:
        if method == "occlusion":
            _occlusion(model, rgb, found, options)
        else:
            _gradients(model, rgb, found, method)
    return found


def _explanation(
    forward: Forward, row: int, k: int, options: ExplainOptions, labels: LabelMap | None
) -> Explanation:
    """One kept detection, with the pre-NMS anchor it came from when the graph has them."""
    dets = forward.detections
    cid = int(dets.class_ids[row])
    anchor: AnchorMatch | None = None
    if forward.pre_boxes is not None and forward.pre_scores is not None:
        try:
            anchor = match_anchor(
                forward.boxes_norm[row],
                float(dets.scores[row]),
                cid,
                forward.pre_boxes,
                forward.pre_scores,
            )
        except ModelError as exc:
            log.warning("%s", exc.message)
    return Explanation(
        options.detection if options.detection is not None else k,
        cid,
        labels.name(cid) if labels else f"class {cid}",
        float(dets.scores[row]),
        dets.xyxy[row],
        forward.boxes_norm[row],
        anchor,
    )


def _gradients(model: ExplainModel, rgb: np.ndarray, found: list[Explanation], method: str) -> None:
    """Grad-CAM or gradient x activation for each detection, from its anchor's logit."""
    height, width = rgb.shape[:2]
    which = 0 if method == "gradcam" else 1
    layer = model.points.gradcam_layer if which == 0 else model.points.fine_layer
    for exp in found:
        if exp.anchor is None:
            exp.results[method] = _failed("no anchor for this detection (see the log)")
            continue
        t0 = time.perf_counter()
        try:
            ((act, grad),) = model.gradients(rgb, exp.anchor.anchor, exp.anchor.column, (which,))
        except ModelError as exc:
            exp.results[method] = _failed(exc.message)
            continue
        small = gradcam(act, grad) if which == 0 else grad_x_activation(act, grad)
        heat = to_image(small, width, height)
        ms = (time.perf_counter() - t0) * 1000.0
        exp.results[method] = MethodResult(heat, heat_stats(heat, exp.box_xyxy), ms, layer)


def _occlusion(
    model: ExplainModel, rgb: np.ndarray, found: list[Explanation], options: ExplainOptions
) -> None:
    if not found:
        return
    height, width = rgb.shape[:2]
    t0 = time.perf_counter()
    if all(e.anchor is not None for e in found) and model.points.scores:
        anchors = np.array([e.anchor.anchor for e in found])  # type: ignore[union-attr]
        columns = np.array([e.anchor.column for e in found])  # type: ignore[union-attr]

        def score_fn(images: np.ndarray) -> np.ndarray:
            return model.pre_scores(images)[:, anchors, columns]

    else:

        def score_fn(images: np.ndarray) -> np.ndarray:
            boxes, scores, classes, num = model.final_outputs(images)
            return np.stack(
                [
                    _tracked_scores(boxes[b], scores[b], classes[b], int(num[b]), found)
                    for b in range(len(images))
                ]
            )

    maps = occlusion_maps(
        rgb, score_fn, grid=options.occlusion_grid, patch_cells=options.occlusion_patch
    )
    ms = (time.perf_counter() - t0) * 1000.0 / len(found)
    for exp, small in zip(found, maps, strict=True):
        heat = to_image(small, width, height)
        exp.results["occlusion"] = MethodResult(heat, heat_stats(heat, exp.box_xyxy), ms)


def _tracked_scores(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    num: int,
    found: Sequence[Explanation],
) -> np.ndarray:
    """Each target's score in one run: the best same-class detection with IoU ≥ 0.5, else 0."""
    targets = np.array([exp.box_norm for exp in found], np.float64).reshape(-1, 4)
    target_classes = np.array([exp.class_id for exp in found])
    ious = class_iou(targets, target_classes, boxes[:num], np.rint(classes[:num]).astype(int))
    kept = np.where(ious >= MIN_IOU, np.asarray(scores[:num], np.float32)[None, :], 0.0)
    return np.asarray(kept.max(axis=1, initial=0.0), np.float32)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def write_overlays(
    image_bgr: np.ndarray,
    name: str,
    found: list[Explanation],
    out_dir: Path,
    options: ExplainOptions,
) -> None:
    """Write one PNG per detection and method; record its file name in the result."""
    stem = _UNSAFE.sub("_", Path(name).with_suffix("").as_posix()).strip("._") or "image"
    for exp in found:
        label = _UNSAFE.sub("_", exp.label).strip("._") or f"class{exp.class_id}"
        for method, result in exp.results.items():
            if result.heat is None:
                continue
            png = f"{stem}_det{exp.index}_{label}_{method}.png"
            image = overlay(
                image_bgr,
                result.heat,
                exp.box_xyxy,
                exp.class_id,
                colormap=options.colormap,
                alpha=options.alpha,
                peak_xy=result.stats.peak_xy,
            )
            try:
                write_image(out_dir / png, image)
            except ValueError as exc:
                raise SinkError(f"cannot encode overlay '{png}' as PNG") from exc
            except OSError as exc:
                raise SinkError(f"cannot write '{out_dir / png}': {exc.strerror or exc}") from exc
            result.png = png


def open_images(uri: str) -> Source:
    """Open an image file, folder or glob as the ``run`` command does (errors before any model).

    Raises:
        ConfigError: ``uri`` is a video, camera or stream.
        SourceError: Nothing readable there.
    """

    spec = parse_source(uri)
    if spec.kind is not SourceKind.IMAGES:
        raise ConfigError(
            f"explain reads images; {spec.shown!r} is a {spec.kind}",
            hint="pass an image file, a folder of images or a quoted glob like 'photos/*.jpg'",
        )
    return open_source(spec)


def read_images(source: Source) -> Iterator[tuple[np.ndarray, str]]:
    """BGR images and their names, in order; closes ``source`` at the end."""
    with source:
        while (item := source.read()) is not None:
            image, name = item
            yield image, name or Path(source.info.uri).name


def explain_images(
    model: ExplainModel,
    images: Iterable[tuple[np.ndarray, str]],
    out_dir: Path,
    options: ExplainOptions,
    labels: LabelMap | None = None,
) -> dict[str, Any]:
    """Explain every ``(BGR image, name)``; write overlays and ``explain.json`` into ``out_dir``.

    Returns:
        The JSON document written (also complete after an error or Ctrl-C: what was done).
    """

    doc: dict[str, Any] = {
        "model": str(model.path),
        "methods": list(options.methods),
        "threshold": options.threshold,
        "layers": {
            "gradcam": model.points.gradcam_layer,
            "gradxact": model.points.fine_layer,
        },
        "explain_outputs_in_graph": model.exported,
        "images": [],
    }
    try:
        for image, name in images:
            found = explain_image(model, image, options, labels)
            if options.write_png:
                write_overlays(image, name, found, out_dir, options)
            height, width = image.shape[:2]
            doc["images"].append(
                {
                    "image": name,
                    "width": width,
                    "height": height,
                    "detections": [e.to_json(options.methods[0]) for e in found],
                }
            )
            log.info("%s: %d detection(s) explained", name, len(found))
    finally:
        write_json(out_dir / "explain.json", doc)
    return doc
