"""A tiny SSD-like frozen graph, built in milliseconds for the split and bench tests; the SSD
tail (box decoding, NMS, the OD API outputs) and the graph writer every tiny SSD shares.

Same shape as the default model: ``image_tensor:0`` uint8 [B,H,W,3] RGB → resize →
(x − 128)/128 → a few convolutions with clamped activations → box and class heads on two
feature maps → box decoding from constant anchors → sigmoid, background column dropped →
``CombinedNonMaxSuppression`` → the TF Object Detection API outputs. Weights are seeded
random numbers, so detections are arbitrary but deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def build_tiny_ssd(
    path: Path,
    *,
    num_classes: int = 3,
    size: int = 32,
    nms: bool = True,
    conv: bool = True,
    seed: int = 0,
) -> Path:
    """Write the tiny graph to ``path`` (a frozen ``.pb``) and return ``path``."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    tf1 = tf.compat.v1

    def w(*shape: int) -> tf.Tensor:
        return tf.constant(rng.normal(0, 0.3, shape).astype(np.float32))

    graph = tf.Graph()
    with graph.as_default():
        image = tf1.placeholder(tf.uint8, [None, None, None, 3], name="image_tensor")
        x = tf.image.resize(tf.cast(image, tf.float32), [size, size])
        x = (x - 128.0) / 128.0
        feats = []
        if conv:
            x = tf.clip_by_value(tf.nn.conv2d(x, w(3, 3, 3, 8), 2, "SAME") + w(8), 0.0, 6.0)
            x = tf.nn.depthwise_conv2d(x, w(3, 3, 8, 1), [1, 1, 1, 1], "SAME")
            x = tf.clip_by_value(tf.nn.conv2d(x, w(1, 1, 8, 8), 1, "SAME"), 0.0, 6.0)
            feats.append(x)  # 16x16
            feats.append(tf.clip_by_value(tf.nn.conv2d(x, w(3, 3, 8, 8), 2, "SAME"), 0.0, 6.0))
        else:
            feats.append(tf.nn.avg_pool2d(x, 2, 2, "SAME"))
        batch = tf.shape(image)[0]
        boxes, logits = [], []
        for f in feats:
            c = int(f.shape[-1])
            if conv:
                b = tf.nn.conv2d(f, w(1, 1, c, 4), 1, "SAME") + w(4)
                k = tf.nn.conv2d(f, w(1, 1, c, num_classes + 1), 1, "SAME") + w(num_classes + 1)
            else:
                b = f[..., :1] * w(4)
                k = f[..., :1] * w(num_classes + 1)
            boxes.append(tf.reshape(b, tf.stack([batch, -1, 4])))
            logits.append(tf.reshape(k, tf.stack([batch, -1, num_classes + 1])))
        enc = tf.concat(boxes, 1, name="box_encodings")
        cls = tf.concat(logits, 1, name="class_predictions")
        n_anchors = sum(int(f.shape[1]) * int(f.shape[2]) for f in feats)
        anchors = rng.uniform(0.1, 0.9, (n_anchors, 4)).astype(np.float32)
        anchors[:, 2:] = rng.uniform(0.05, 0.3, (n_anchors, 2))
        decoded = decode_boxes(tf, enc, anchors)
        scores = tf.sigmoid(cls)[:, :, 1:]
        if nms:
            od_outputs(tf, decoded, scores, 10, 0.05)
        else:
            top = tf.argmax(scores, axis=-1)
            tf.identity(decoded[:, :10], name="detection_boxes")
            tf.identity(tf.reduce_max(scores, -1)[:, :10], name="detection_scores")
            tf.identity(tf.cast(top[:, :10], tf.float32) + 1.0, name="detection_classes")
            tf.cast(tf.fill([batch], 10), tf.float32, name="num_detections")
    return save_graph(graph, path)


def decode_boxes(tf: Any, enc: Any, anchors: np.ndarray) -> Any:
    """Box encodings ``[B, N, 4]`` on anchors ``[N, 4]`` (``[yc, xc, h, w]``) → normalized
    ``[ymin, xmin, ymax, xmax]``, with the TF OD API's scales (10, 10, 5, 5)."""
    a = tf.constant(np.asarray(anchors, np.float32))
    ty, tx, th, tw = tf.unstack(enc, axis=-1)
    yc = ty / 10.0 * a[:, 2] + a[:, 0]
    xc = tx / 10.0 * a[:, 3] + a[:, 1]
    h = tf.exp(th / 5.0) * a[:, 2]
    wd = tf.exp(tw / 5.0) * a[:, 3]
    return tf.stack([yc - h / 2, xc - wd / 2, yc + h / 2, xc + wd / 2], axis=-1)


def od_outputs(tf: Any, decoded: Any, scores: Any, max_boxes: int, min_score: float) -> None:
    """Per-class NMS (IoU 0.5) into the four TF Object Detection API outputs."""
    nmsed = tf.image.combined_non_max_suppression(
        tf.expand_dims(decoded, 2), scores, max_boxes, max_boxes, 0.5, min_score, clip_boxes=True
    )
    tf.identity(nmsed.nmsed_boxes, name="detection_boxes")
    tf.identity(nmsed.nmsed_scores, name="detection_scores")
    tf.identity(nmsed.nmsed_classes + 1.0, name="detection_classes")
    tf.cast(nmsed.valid_detections, tf.float32, name="num_detections")


def save_graph(graph: Any, path: Path) -> Path:
    """Write ``graph`` as a frozen ``.pb`` (deterministic bytes) and return the path."""
    path = Path(path)
    path.write_bytes(graph.as_graph_def().SerializeToString(deterministic=True))
    return path
