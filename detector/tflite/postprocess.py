"""SSD post-processing: anchors, centre-size box decoding and per-class NMS, in NumPy and as TF ops.

The parameters come from TFLite's ``TFLite_Detection_PostProcess`` custom op (its options
are a FlexBuffer map). Anchors are ``[yc, xc, h, w]`` in normalized image coordinates;
boxes come out as normalized ``[ymin, xmin, ymax, xmax]`` (the TF Object Detection API
convention). The NumPy functions are the reference the TF graph is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from flatbuffers import flexbuffers

from detector.config import OD_OUTPUT_NODES
from detector.errors import ModelError
from detector.model.backends.ssd_post import decode_centre_size

POSTPROCESS_OP = "TFLite_Detection_PostProcess"


@dataclass(frozen=True)
class PostProcessParams:
    """The custom op's options that matter for decoding and NMS."""

    num_classes: int
    y_scale: float
    x_scale: float
    h_scale: float
    w_scale: float
    max_detections: int
    nms_iou_threshold: float
    nms_score_threshold: float
    use_regular_nms: bool

    @classmethod
    def from_flexbuffer(cls, data: bytes) -> PostProcessParams:
        """Parse the op's FlexBuffer options; ModelError if a needed key is missing."""

        try:
            opts: dict[str, Any] = flexbuffers.Loads(data)
        except Exception as exc:  # the FlexBuffer decoder raises bare errors of many kinds
            raise ModelError(
                f"{POSTPROCESS_OP} options are not a readable FlexBuffer: {exc}"
            ) from exc
        if not isinstance(opts, dict):
            raise ModelError(f"{POSTPROCESS_OP} options are not a map: {type(opts).__name__}")
        try:
            return cls(
                num_classes=int(opts["num_classes"]),
                y_scale=float(opts["y_scale"]),
                x_scale=float(opts["x_scale"]),
                h_scale=float(opts["h_scale"]),
                w_scale=float(opts["w_scale"]),
                max_detections=int(opts["max_detections"]),
                nms_iou_threshold=float(opts["nms_iou_threshold"]),
                nms_score_threshold=float(opts["nms_score_threshold"]),
                use_regular_nms=bool(opts.get("use_regular_nms", False)),
            )
        except KeyError as exc:
            raise ModelError(
                f"{POSTPROCESS_OP} options lack {exc.args[0]!r}; found {sorted(opts)}"
            ) from exc


@dataclass(frozen=True)
class SsdAnchorSpec:
    """TF Object Detection API ``ssd_anchor_generator`` settings (the SSD MobileNet V2 defaults)."""

    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = True
    feature_map_sizes: tuple[int, ...] = (19, 10, 5, 3, 2, 1)


def generate_ssd_anchors(spec: SsdAnchorSpec = SsdAnchorSpec()) -> np.ndarray:
    """Anchors as the TF OD API builds them for a square input: float32 ``[N, 4]`` = yc, xc, h, w.

    Order is layer, then grid row, then grid column, then box spec: the order the box
    predictor's reshapes and concatenation produce.
    """
    n = len(spec.feature_map_sizes)
    scales = [spec.min_scale + (spec.max_scale - spec.min_scale) * i / (n - 1) for i in range(n)]
    scales.append(1.0)
    out = []
    for layer, size in enumerate(spec.feature_map_sizes):
        scale, scale_next = scales[layer], scales[layer + 1]
        if layer == 0 and spec.reduce_boxes_in_lowest_layer:
            box_specs = [(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
        else:
            box_specs = [(scale, ar) for ar in spec.aspect_ratios]
            if spec.interpolated_scale_aspect_ratio > 0:
                box_specs.append(
                    (np.sqrt(scale * scale_next), spec.interpolated_scale_aspect_ratio)
                )
        s = np.array([b[0] for b in box_specs], np.float64)
        ar = np.sqrt(np.array([b[1] for b in box_specs], np.float64))
        heights, widths = s / ar, s * ar
        centers = (np.arange(size, dtype=np.float64) + 0.5) / size
        yc, xc, k = np.meshgrid(centers, centers, np.arange(len(box_specs)), indexing="ij")
        layer_anchors = np.stack([yc, xc, heights[k], widths[k]], axis=-1).reshape(-1, 4)
        out.append(layer_anchors)
    return np.concatenate(out).astype(np.float32)


def decode_boxes_np(encodings: np.ndarray, anchors: np.ndarray, p: PostProcessParams) -> np.ndarray:
    """Reference centre-size decoding: ``[..., N, 4]`` (ty, tx, th, tw) → ymin, xmin, ymax, xmax."""
    return decode_centre_size(encodings, anchors, (p.y_scale, p.x_scale, p.h_scale, p.w_scale))


def build_postprocess(
    tf: Any,
    encodings: Any,
    class_scores: Any,
    anchors: np.ndarray,
    params: PostProcessParams,
    *,
    nms_iou: float,
    score_threshold: float,
    max_detections: int,
) -> None:
    """Add decoding, background drop, NMS and the TF OD API outputs to the default graph.

    Args:
        tf: The TensorFlow module (passed in so this module never imports it).
        encodings: float32 ``[B, N, 4]`` box encodings (ty, tx, th, tw).
        class_scores: float32 ``[B, N, C]`` per-class probabilities (already sigmoid),
            ``C - params.num_classes`` leading background columns.
        anchors: float32 ``[N, 4]`` yc, xc, h, w.
        params: Scales and class count from the TFLite op.
        nms_iou: IoU above which a lower-scored box of the same class is suppressed.
        score_threshold: Boxes scoring below this never enter NMS.
        max_detections: Detections kept per image (and per class).
    """
    with tf.name_scope("Postprocessor"):
        a = tf.constant(anchors.astype(np.float32), name="anchors")
        ya, xa, ha, wa = tf.unstack(a, axis=1, name="unstack_anchors")
        ty, tx, th, tw = tf.unstack(encodings, axis=2, name="unstack_encodings")
        yc = ty * (1.0 / params.y_scale) * ha + ya
        xc = tx * (1.0 / params.x_scale) * wa + xa
        half_h = 0.5 * tf.exp(th * (1.0 / params.h_scale)) * ha
        half_w = 0.5 * tf.exp(tw * (1.0 / params.w_scale)) * wa
        boxes = tf.stack([yc - half_h, xc - half_w, yc + half_h, xc + half_w], axis=2)
        # [B, N, 1, 4]: one box shared by all classes
        boxes = tf.expand_dims(boxes, 2, name="boxes")
        background = int(class_scores.shape[-1]) - params.num_classes
        scores = class_scores[:, :, background:] if background else class_scores
        nms = tf.image.combined_non_max_suppression(
            boxes,
            scores,
            max_output_size_per_class=max_detections,
            max_total_size=max_detections,
            iou_threshold=nms_iou,
            score_threshold=score_threshold,
            pad_per_class=False,
            clip_boxes=True,
        )
        # CombinedNonMaxSuppression numbers classes from 0; label-map ids start at 1.
        classes = nms.nmsed_classes + 1.0
        num = tf.cast(nms.valid_detections, tf.float32)
    for value, name in zip(
        (nms.nmsed_boxes, nms.nmsed_scores, classes, num), OD_OUTPUT_NODES, strict=True
    ):
        tf.identity(value, name=name)
