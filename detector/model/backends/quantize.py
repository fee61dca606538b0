"""int8 for the openvino backend: NNCF post-training quantization behind a parity gate.

The network part of a frozen graph (as :mod:`detector.model.backends.openvino` converts
it) is quantized with ``nncf.quantize`` on calibration frames the user names (a folder of
images or a video, frames spread over its length). The result is then run beside the TF
graph on *held-apart* images (never the calibration ones): only when their detections
agree (:mod:`detector.model.backends.parity`: matched ≥ 95%, same class, IoU ≥ 0.5) is the
int8 model kept in the cache, with a JSON report of the figures next to it. Otherwise the
quantizer refuses with the figures and keeps nothing; ``precision: int8`` then refuses to
run until a quantized model has passed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.errors import ConfigError, ModelError
from detector.imagefiles import load_image
from detector.model.backends.auto import compare_with_tf
from detector.model.backends.extra import require
from detector.model.backends.ircache import cache_root, int8_report_path, ir_path, save_ir
from detector.model.backends.openvino import (
    PreparedGraph,
    convert_network,
    int8_rest_precision,
    prepare_graph,
)
from detector.model.backends.parity import MIN_IOU, MIN_RATIO, SCORE_THRESHOLD, ParityReport
from detector.model.loader import TensorNames

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_FRAMES = 300


class QuantizationRefused(ModelError):
    """A quantized model failed the parity gate; carries the figures (``report``)."""

    def __init__(self, message: str, report: ParityReport, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report


def read_images(source: str | Path, count: int | None = None) -> list[np.ndarray]:
    """RGB ``uint8`` images from a folder of images or a video (frames spread evenly).

    Args:
        source: A folder (``.jpg .jpeg .png .bmp``, sorted by name), a single image, or a
            video file.
        count: At most this many (``None``: every image; for a video, every frame).

    Raises:
        ConfigError: Missing, unreadable or empty.
    """
    path = Path(source)
    if not path.exists():
        raise ConfigError(
            f"image source '{path}' does not exist", hint="give a folder of images or a video file"
        )
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if count is not None and len(files) > count:
            files = [files[int(i)] for i in np.linspace(0, len(files) - 1, count)]
        images = [load_image(p, rgb=True) for p in files]
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        images = [load_image(path, rgb=True)]
    else:
        images = _read_video(path, count)
    if not images:
        raise ConfigError(
            f"no images in '{path}'", hint=f"a folder needs {' '.join(IMAGE_SUFFIXES)} files"
        )
    return images


def _read_video(path: Path, count: int | None) -> list[np.ndarray]:
    """Frames spread evenly over a video: one pass counts them (headers can be wrong), the
    second decodes only the chosen ones."""

    def opened() -> Any:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            cap.release()
            raise ConfigError(
                f"cannot open video '{path}'",
                hint="give a folder of images or a video OpenCV can read",
            )
        return cap

    cap = opened()
    try:
        total = 0
        while cap.grab():
            total += 1
    finally:
        cap.release()
    chosen = (
        set(range(total))
        if count is None or total <= count
        else {int(i) for i in np.linspace(0, total - 1, count)}
    )
    frames: list[np.ndarray] = []
    cap = opened()
    try:
        for index in range(total):
            if not cap.grab():
                break
            if index in chosen:
                ok, bgr = cap.retrieve()
                if ok:
                    frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return frames


def network_inputs(
    images: Sequence[np.ndarray], input_size: tuple[int, int] | None
) -> list[np.ndarray]:
    """Images as the network takes them: ``[1, H, W, 3]`` uint8, resized to its input size."""
    out = []
    for im in images:
        if input_size is not None and im.shape[:2] != input_size:
            im = cv2.resize(im, (input_size[1], input_size[0]), interpolation=cv2.INTER_LINEAR)
        out.append(np.ascontiguousarray(im[np.newaxis]))
    return out


@dataclass(frozen=True)
class QuantizeResult:
    """A quantized model that passed: its IR, report file, figures and timings."""

    ir: Path
    report_path: Path
    parity: ParityReport
    calibration_frames: int
    quantize_s: float


def quantize(
    graph: str | Path,
    calibration: str | Path,
    held_out: str | Path,
    *,
    frames: int = DEFAULT_FRAMES,
    held_out_count: int | None = None,
    tensors: Any = None,
    allow_unsafe_ops: bool = False,
    cache_dir: str | Path | None = None,
    threshold: float = SCORE_THRESHOLD,
    min_iou: float = MIN_IOU,
    min_ratio: float = MIN_RATIO,
) -> QuantizeResult:
    """Quantize a frozen graph's network to int8 and keep it only if it passes the gate.

    Args:
        graph: The frozen ``.pb``.
        calibration: Folder of images or a video to calibrate on.
        held_out: Folder of images or a video for the gate; must not be ``calibration``.
        frames: Calibration frames used (spread over the source).
        held_out_count: At most this many gate images (``None``: all of them).
        tensors: ``TensorNames`` (``None``: TF OD API names).
        allow_unsafe_ops: Skip the op allowlist (only for graphs you trust).
        cache_dir: The openvino cache folder (``None``: beside the graph, or the user cache).
        threshold, min_iou, min_ratio: The gate (score ≥ 0.5, IoU ≥ 0.5, matched ≥ 95%).

    Raises:
        MissingExtraError: openvino or nncf is not installed (exit 2).
        ConfigError: Bad image sources, or the gate images are the calibration images.
        QuantizationRefused: The quantized model failed the gate (the figures are in it).
    """
    ov = require("openvino")
    nncf = require("nncf")
    _check_sources(calibration, held_out, frames)
    tensors = tensors if tensors is not None else TensorNames()
    prep = prepare_graph(graph, tensors, allow_unsafe_ops=allow_unsafe_ops)
    root = cache_root(prep.path, cache_dir)
    model = _fp32_network(ov, root, prep)
    calib = network_inputs(read_images(calibration, frames), prep.input_size)
    gate_images = read_images(held_out, held_out_count)
    candidate = _calibrate(nncf, model, prep, calibration, calib)
    final, report = _keep_if_passes(
        candidate,
        root,
        held_out,
        gate_images,
        tensors=tensors,
        allow_unsafe_ops=allow_unsafe_ops,
        threshold=threshold,
        min_iou=min_iou,
        min_ratio=min_ratio,
    )
    log.info("quantize: %s", report.summary())
    return QuantizeResult(
        final, int8_report_path(final), report, candidate.frames, candidate.quantize_s
    )


def _check_sources(calibration: str | Path, held_out: str | Path, frames: int) -> None:
    """Refuse gate images that are the calibration frames, and fewer than 1 frame."""
    if Path(calibration).resolve() == Path(held_out).resolve():
        raise ConfigError(
            f"the gate images must be held apart from the calibration frames; both are "
            f"'{calibration}'",
            hint="give --held-out a different folder or video",
        )
    if frames < 1:
        raise ConfigError(f"calibration frames must be at least 1; got {frames}")


def _fp32_network(ov: Any, root: Path, prep: PreparedGraph) -> Any:
    """The graph's network in OpenVINO at fp32: from the IR cache, else converted and cached."""
    fp32_ir = ir_path(root, prep, "fp32")
    if fp32_ir.is_file():
        return ov.Core().read_model(str(fp32_ir))
    model = convert_network(prep)
    save_ir(model, fp32_ir)
    return model


@dataclass(frozen=True)
class _Candidate:
    """An int8 network fresh from NNCF, and what made it (for the gate and its report)."""

    network: Any
    prep: PreparedGraph
    calibration: str | Path
    frames: int
    quantize_s: float


def _calibrate(
    nncf: Any, model: Any, prep: PreparedGraph, calibration: str | Path, calib: list[np.ndarray]
) -> _Candidate:
    """Quantize the fp32 network on the calibration inputs (timed)."""
    log.info("quantize: calibrating on %d frames of '%s'", len(calib), calibration)
    t = time.perf_counter()
    quantized = nncf.quantize(model, nncf.Dataset(calib), subset_size=len(calib))
    return _Candidate(quantized, prep, calibration, len(calib), time.perf_counter() - t)


def _keep_if_passes(
    candidate: _Candidate,
    root: Path,
    held_out: str | Path,
    gate_images: list[np.ndarray],
    **compare: Any,
) -> tuple[Path, ParityReport]:
    """Run the candidate beside the TF graph on the held-apart images; move it into the cache
    with its JSON report when it passes, else raise :class:`QuantizationRefused`. Nothing of a
    refused candidate is kept. ``compare``: the keywords of ``compare_with_tf``."""
    prep = candidate.prep
    final = ir_path(root, prep, "int8")
    staged = final.with_name(final.name.replace(".int8.xml", ".int8-candidate.xml"))
    save_ir(candidate.network, staged)
    try:
        report = compare_with_tf(
            prep.path, gate_images, precision="int8", cache_dir=root, ir=staged, **compare
        )
        if not report.passed:
            raise QuantizationRefused(
                f"the int8 model of '{prep.path}' fails the parity gate against the TF graph "
                f"on '{held_out}': {report.summary()}",
                report,
                hint="calibrate on frames like the ones you will run on (--calibration), with "
                "more of them (--frames), or use --precision bf16",
            )
        doc = {
            "graph": str(prep.path),
            "graph_sha256": prep.sha256,
            "openvino": require("openvino").get_version(),
            "nncf": require("nncf").__version__,
            "calibration": str(candidate.calibration),
            "calibration_frames": candidate.frames,
            "held_out": str(held_out),
            "quantize_s": round(candidate.quantize_s, 2),
            "inference_precision": int8_rest_precision(),  # the unquantized layers, as gated
            "parity": report.to_dict(),
        }
        for suffix in (".bin", ".xml"):
            staged.with_suffix(suffix).replace(final.with_suffix(suffix))
        int8_report_path(final).write_text(json.dumps(doc, indent=2) + "\n")
    finally:
        for suffix in (".bin", ".xml"):
            staged.with_suffix(suffix).unlink(missing_ok=True)
    return final, report
