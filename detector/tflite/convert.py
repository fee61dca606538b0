"""Convert a TFLite SSD detector (uint8 or float) into a TF1 frozen GraphDef of standard ops.

The result follows the TF Object Detection API convention: ``image_tensor:0`` uint8
``[B, H, W, 3]`` RGB of any size goes in; ``detection_boxes:0`` (normalized ``[ymin, xmin,
ymax, xmax]``), ``detection_scores:0``, ``detection_classes:0`` (1-based label-map ids, COCO
ids for COCO models) and ``num_detections:0`` come out. Inside: bilinear resize to the
model's input size, normalisation taken from the input's quantization, the network rebuilt
in float from dequantized weights with every activation clamped to the range its uint8
tensor could hold, then box decoding, sigmoid scores without background, and per-class NMS.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from detector.config import OD_INPUT
from detector.errors import ConfigError, ModelError
from detector.tflite.network import NETWORK_OPS, NetworkBuilder
from detector.tflite.postprocess import (
    POSTPROCESS_OP,
    PostProcessParams,
    build_postprocess,
    generate_ssd_anchors,
)
from detector.tflite.reader import Operator, Tensor, TfliteModel, read_tflite

log = logging.getLogger(__name__)

# Bump when the graph this module writes changes, so `fetch` rebuilds cached graphs.
CONVERTER_VERSION = 2

# Every op a converted graph may hold; tests check the real model's graph against it.
CONVERTED_OPS = frozenset(
    {
        "Placeholder",
        "Const",
        "Identity",
        "Cast",
        "Sub",
        "Mul",
        "AddV2",
        "ResizeBilinear",
        "Conv2D",
        "DepthwiseConv2dNative",
        "BiasAdd",
        "Relu",
        "Relu6",
        "Minimum",
        "Maximum",
        "Reshape",
        "ConcatV2",
        "Sigmoid",
        "Tanh",
        "AvgPool",
        "MaxPool",
        "Pad",
        "Squeeze",
        "Mean",
        "Unpack",
        "Pack",
        "Exp",
        "ExpandDims",
        "StridedSlice",
        "CombinedNonMaxSuppression",
    }
)

SUPPORTED_OPS = NETWORK_OPS | {POSTPROCESS_OP}


@dataclass(frozen=True)
class ConvertOptions:
    """Choices for :func:`convert_tflite_ssd` (defaults chosen by measurement, see
    models/README.md).

    Attributes:
        nms_iou: IoU above which a lower-scored box of the same class is suppressed.
        score_threshold: Boxes scoring below this never enter NMS; the app's own display
            threshold is applied later, so this only needs to be below any useful one.
        max_detections: Detections kept per image.
        weights: ``"float"`` stores float32 weights (24 MB for the default model);
            ``"uint8"`` stores the quantized weights and dequantizes them in the graph (6 MB,
            but Grappler leaves part of the dequantization unfolded: about 3 ms more a frame).
        anchors: ``"file"`` uses the anchors stored in the .tflite (what the model was
            exported with); ``"generated"`` rebuilds them from the TF OD API SSD anchor spec.
    """

    nms_iou: float = 0.6
    score_threshold: float = 0.01
    max_detections: int = 100
    weights: Literal["uint8", "float"] = "float"
    anchors: Literal["file", "generated"] = "file"

    def validate(self) -> None:
        """Raise ConfigError naming the first option value that is out of range."""
        checks = [
            (0.0 < self.nms_iou <= 1.0, "nms_iou", self.nms_iou, "a number in (0, 1]"),
            (
                0.0 <= self.score_threshold < 1.0,
                "score_threshold",
                self.score_threshold,
                "a number in [0, 1)",
            ),
            (self.max_detections >= 1, "max_detections", self.max_detections, "an integer >= 1"),
            (self.weights in ("uint8", "float"), "weights", self.weights, "'uint8' or 'float'"),
            (
                self.anchors in ("file", "generated"),
                "anchors",
                self.anchors,
                "'file' or 'generated'",
            ),
        ]
        for ok, name, value, valid in checks:
            if not ok:
                raise ConfigError(
                    f"converter option {name}={value!r} is invalid", hint=f"use {valid}"
                )


def _check_ops(model: TfliteModel, path: str) -> Operator:
    """Refuse anything but a single-input SSD ending in TFLite_Detection_PostProcess."""
    names = Counter(op.name for op in model.operators)
    post = [op for op in model.operators if op.name == POSTPROCESS_OP]
    if len(post) != 1:
        raise ModelError(
            f"{path!r} is not a TFLite SSD detector: it has {len(post)} {POSTPROCESS_OP} ops "
            f"(ops: {dict(sorted(names.items()))})",
            hint="only SSD models exported with TFLite's detection post-processing can be "
            "converted; for other models use the TF model they came from",
        )
    unknown = sorted(set(names) - SUPPORTED_OPS)
    if unknown:
        raise ModelError(
            f"{path!r} uses TFLite ops this converter cannot rebuild: {unknown}",
            hint=f"supported ops: {sorted(SUPPORTED_OPS)}",
        )
    if len(model.inputs) != 1:
        raise ModelError(f"{path!r} has {len(model.inputs)} inputs; an SSD has one image input")
    t = model.tensors[model.inputs[0]]
    if len(t.shape) != 4 or t.shape[3] != 3 or t.shape[1] <= 0 or t.shape[2] <= 0:
        raise ModelError(f"{path!r} input {t.name!r} has shape {t.shape}; expected [1, H, W, 3]")
    p = post[0]
    if len(p.inputs) != 3 or model.tensors[p.inputs[2]].data is None:
        raise ModelError(
            f"{path!r}: {POSTPROCESS_OP} needs box encodings, scores and constant anchors"
        )
    return p


def _anchors(model: TfliteModel, post: Operator, which: str, path: str) -> tuple[np.ndarray, float]:
    t = model.tensors[post.inputs[2]]
    assert t.data is not None
    stored = t.quant.dequantize(t.data) if t.quant is not None else t.data.astype(np.float32)
    if stored.ndim != 2 or stored.shape[1] != 4:
        raise ModelError(f"{path!r}: anchors have shape {stored.shape}; expected [N, 4]")
    generated = generate_ssd_anchors()
    diff = (
        float(np.abs(generated - stored).max()) if generated.shape == stored.shape else float("nan")
    )
    if which == "file":
        return stored, diff
    if generated.shape != stored.shape:
        raise ModelError(
            f"{path!r} has {len(stored)} anchors; the SSD MobileNet V2 anchor spec gives "
            f"{len(generated)}",
            hint="use anchors='file' (the default) for this model",
        )
    return generated, diff


def _normalisation(t: Tensor) -> tuple[float, float]:
    """(offset, scale) with float input = (pixel - offset) * scale."""
    if t.quant is not None and t.dtype == np.uint8:
        return float(t.quant.zero_point[0]), float(t.quant.scale[0])
    # Float SSDs from the TF OD API export expect [-1, 1] from 0..255 pixels.
    return 127.5, 1.0 / 127.5


def build_graph_def(
    model: TfliteModel, options: ConvertOptions, path: str = "<model>"
) -> tuple[Any, dict[str, Any]]:
    """Build the frozen GraphDef for an already parsed model; returns (graph_def, facts)."""
    import tensorflow as tf

    post = _check_ops(model, path)
    params = PostProcessParams.from_flexbuffer(post.custom_options)
    anchors, anchor_diff = _anchors(model, post, options.anchors, path)
    in_t = model.tensors[model.inputs[0]]
    height, width = in_t.shape[1], in_t.shape[2]
    offset, scale = _normalisation(in_t)
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(
            tf.uint8, [None, None, None, 3], name=OD_INPUT.partition(":")[0]
        )
        with tf.name_scope("Preprocessor"):
            # ResizeBilinear takes uint8 and returns float32: no full-size float copy first.
            x = tf.raw_ops.ResizeBilinear(
                images=image, size=[height, width], align_corners=False, half_pixel_centers=True
            )
            x = (x - offset) * scale
        b = NetworkBuilder(tf, model, options.weights)
        b.values[model.inputs[0]] = x
        for op in model.operators:
            if op is post:
                break
            b.op(op)
        encodings = tf.reshape(b.value(post.inputs[0]), [-1, len(anchors), 4])
        scores = b.value(post.inputs[1])
        build_postprocess(
            tf,
            encodings,
            scores,
            anchors,
            params,
            nms_iou=options.nms_iou,
            score_threshold=options.score_threshold,
            max_detections=options.max_detections,
        )
    graph_def = graph.as_graph_def()
    facts = {
        "input_size": [height, width],
        "normalisation": {"offset": offset, "scale": scale},
        "postprocess": asdict(params),
        "anchors": len(anchors),
        "anchors_max_abs_diff_file_vs_generated": anchor_diff,
    }
    return graph_def, facts


def convert_tflite_ssd(
    tflite_path: str | Path, out_path: str | Path, options: ConvertOptions = ConvertOptions()
) -> dict[str, Any]:
    """Convert a TFLite SSD to a frozen TF1 GraphDef file (TF OD API tensor names).

    Args:
        tflite_path: The ``.tflite`` file (uint8 quantized or float).
        out_path: Where to write the frozen ``.pb`` (parent folders are created).
        options: NMS, score floor, max detections, weight storage and anchor source.

    Returns:
        A JSON-ready report: paths, sha256 of input and output, sizes, op histogram,
        input size, normalisation, post-processing parameters and options used.

    Raises:
        ModelError: The file is unreadable, malformed, or not a TFLite SSD.
    """
    options.validate()
    src, dst = Path(tflite_path), Path(out_path)
    model = read_tflite(src)
    graph_def, facts = build_graph_def(model, options, str(src))
    data = graph_def.SerializeToString(deterministic=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(dst)
    ops = Counter(n.op for n in graph_def.node)
    report = {
        "source": str(src),
        "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
        "output": str(dst),
        "output_sha256": hashlib.sha256(data).hexdigest(),
        "output_bytes": len(data),
        "nodes": len(graph_def.node),
        "ops": dict(sorted(ops.items())),
        "tflite_ops": dict(sorted(Counter(o.name for o in model.operators).items())),
        "options": asdict(options),
        "converter_version": CONVERTER_VERSION,
        **facts,
    }
    log.info(
        "converted %s → %s (%.1f MB, %d nodes)", src, dst, len(data) / 1e6, len(graph_def.node)
    )
    return report
