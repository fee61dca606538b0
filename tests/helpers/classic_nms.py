"""A frozen SSD graph rebuilt with the classic OD API post-processing (per-class NMS in a loop).

The TF Object Detection API's classic export (the 2018 model zoo's ``frozen_inference_graph.pb``)
ends in ``Postprocessor/BatchMultiClassNonMaxSuppression``: a ``map/while`` loop (TF1 control
flow) over the images; in it, per class, the scores above the threshold (``Greater`` + ``Where``
+ ``Gather``), the boxes clipped to the window ``[0, 0, 1, 1]`` with the ones left without area
dropped, ``NonMaxSuppressionV2`` with ``min(max per class, boxes)``, then every class
concatenated, sorted by score (``TopKV2``), cut to the total limit and zero-padded; classes
+ 1. :func:`classic_from` takes a graph with ``CombinedNonMaxSuppression`` (the default model,
a tiny SSD) and gives the same network and decoding with that tail instead, with the same
thresholds and limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers.tiny_ssd import save_graph


def classic_from(source: Path, path: Path) -> Path:
    """Write ``source``'s graph with its ``CombinedNonMaxSuppression`` replaced by the classic
    per-class loop to ``path`` (a frozen ``.pb``); returns ``path``."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(source).read_bytes())
    nms = next(n for n in graph_def.node if n.op == "CombinedNonMaxSuppression")
    inputs = [i.split(":")[0] for i in nms.input]
    consts = {n.name: n for n in graph_def.node}

    def value(i: int) -> Any:
        return tf.make_ndarray(consts[inputs[i]].attr["value"].tensor).item()

    settings = {
        "max_per_class": int(value(2)),
        "max_total": int(value(3)),
        "iou_threshold": float(value(4)),
        "score_threshold": float(value(5)),
    }
    kept = tf.compat.v1.graph_util.extract_sub_graph(graph_def, inputs[:2])
    graph = tf.Graph()
    was_v2 = tf.compat.v1.control_flow_v2_enabled()
    tf.compat.v1.disable_control_flow_v2()  # Enter / Exit / Switch / Merge, as TF1 exported
    try:
        with graph.as_default():
            boxes, scores = tf.compat.v1.import_graph_def(
                kept, name="", return_elements=[f"{n}:0" for n in inputs[:2]]
            )
            batch_multiclass_outputs(tf, boxes, scores, **settings)
    finally:
        if was_v2:
            tf.compat.v1.enable_control_flow_v2()
    return save_graph(graph, path)


def batch_multiclass_outputs(
    tf: Any,
    boxes: Any,
    scores: Any,
    *,
    score_threshold: float,
    iou_threshold: float,
    max_per_class: int,
    max_total: int,
) -> None:
    """``boxes`` ``[B, N, 1, 4]`` and ``scores`` ``[B, N, C]`` through the classic per-class
    NMS into the four OD API outputs (``detection_boxes`` ...)."""
    num_classes = int(scores.shape[-1])

    def one_image(args: Any) -> Any:
        image_boxes, image_scores = args
        per_class = [
            _one_class(
                tf,
                image_boxes[:, 0, :],
                image_scores[:, c],
                c,
                score_threshold,
                iou_threshold,
                max_per_class,
            )
            for c in range(num_classes)
        ]
        b, s, k = (tf.concat([p[i] for p in per_class], 0) for i in range(3))
        order = tf.nn.top_k(s, tf.size(s), sorted=True).indices
        n = tf.minimum(max_total, tf.size(s))
        order = order[:n]
        pad = max_total - n
        b = tf.pad(tf.gather(b, order), [[0, pad], [0, 0]])
        s = tf.pad(tf.gather(s, order), [[0, pad]])
        k = tf.pad(tf.gather(k, order), [[0, pad]])
        return b, s, k, n

    with tf.name_scope("Postprocessor"), tf.name_scope("BatchMultiClassNonMaxSuppression"):
        b, s, k, n = tf.map_fn(
            one_image,
            (boxes, scores),
            dtype=(tf.float32, tf.float32, tf.float32, tf.int32),
            parallel_iterations=32,
        )
    tf.identity(b, name="detection_boxes")
    tf.identity(s, name="detection_scores")
    tf.identity(k + 1.0, name="detection_classes")
    tf.cast(n, tf.float32, name="num_detections")


def _one_class(
    tf: Any,
    boxes: Any,
    scores: Any,
    cls: int,
    score_threshold: float,
    iou_threshold: float,
    max_per_class: int,
) -> tuple[Any, Any, Any]:
    """One class of one image: filter, clip to the window, drop empty boxes, NMS."""
    keep = tf.reshape(tf.where(tf.greater(scores, score_threshold)), [-1])
    boxes, scores = tf.gather(boxes, keep), tf.gather(scores, keep)
    y0, x0, y1, x1 = tf.split(boxes, 4, axis=1)
    y0, x0, y1, x1 = (tf.maximum(tf.minimum(v, 1.0), 0.0) for v in (y0, x0, y1, x1))
    boxes = tf.concat([y0, x0, y1, x1], 1)
    area = tf.squeeze((y1 - y0) * (x1 - x0), [1])
    keep = tf.reshape(tf.where(tf.greater(area, 0.0)), [-1])
    boxes, scores = tf.gather(boxes, keep), tf.gather(scores, keep)
    size = tf.minimum(max_per_class, tf.shape(boxes)[0])
    chosen = tf.raw_ops.NonMaxSuppressionV2(
        boxes=boxes, scores=scores, max_output_size=size, iou_threshold=iou_threshold
    )
    picked = tf.gather(scores, chosen)
    return tf.gather(boxes, chosen), picked, tf.zeros_like(picked) + float(cls)
