"""A tiny SSD whose answer is known: it fires on bright red squares (class 1) and green ones (2).

Same shape as the default model: ``image_tensor:0`` uint8 RGB → resize to 64×64 → scale to
0..1 → a 1×1 colour convolution (redness, greenness) → 4×4/4 average convolution (16×16, the
finer backbone map) → 2×2/2 (8×8, the finest head map) → 2×2/2 (4×4) → 1×1 box and class heads
on the 8×8 and 4×4 maps → clamped logits (saturated on a square, like the default model's
clamp) → sigmoid, background column dropped → anchors = the cells → CombinedNonMaxSuppression
→ the TF Object Detection API outputs. Weights are set by hand, so where each class's evidence
lies is known: on the squares of its colour and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from helpers.tiny_ssd import decode_boxes, od_outputs, save_graph

SIZE = 64
RED = (255, 0, 0)  # RGB
GREEN = (0, 255, 0)


def build_square_detector(path: Path) -> Path:
    """Write the frozen graph to ``path`` and return it."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        image = tf1.placeholder(tf.uint8, [None, None, None, 3], name="image_tensor")
        x = tf.image.resize(tf.cast(image, tf.float32), [SIZE, SIZE]) / 255.0
        colour = np.array([[1.0, -0.5], [-0.5, 1.0], [-0.5, -0.5]], np.float32)  # RGB -> r, g
        c = tf.nn.relu(tf.nn.conv2d(x, tf.constant(colour.reshape(1, 1, 3, 2)), 1, "VALID"))

        def pool(t: tf.Tensor, k: int, name: str) -> tf.Tensor:
            kernel = np.zeros((k, k, 2, 2), np.float32)
            kernel[:, :, 0, 0] = kernel[:, :, 1, 1] = 1.0 / (k * k)
            return tf.nn.relu(tf.nn.conv2d(t, tf.constant(kernel), k, "VALID"), name=name)

        f1 = pool(c, 4, "fine")  # 16x16
        f2 = pool(f1, 2, "head_8")  # 8x8
        f3 = pool(f2, 2, "head_4")  # 4x4
        cls_w = np.array([[0.0, 8.0, 0.0], [0.0, 0.0, 8.0]], np.float32).reshape(1, 1, 2, 3)
        cls_b = np.array([0.0, -2.0, -2.0], np.float32)
        boxes, logits, anchors = [], [], []
        for f, n in ((f2, 8), (f3, 4)):
            b = tf.nn.conv2d(f, tf.constant(np.zeros((1, 1, 2, 4), np.float32)), 1, "SAME")
            k = tf.nn.bias_add(tf.nn.conv2d(f, tf.constant(cls_w), 1, "SAME"), cls_b)
            boxes.append(tf.reshape(b, [-1, n * n, 4]))
            logits.append(tf.reshape(k, [-1, n * n, 3]))
            centres = (np.arange(n, dtype=np.float32) + 0.5) / n
            yc, xc = np.meshgrid(centres, centres, indexing="ij")
            anchors.append(
                np.stack([yc.ravel(), xc.ravel(), np.full(n * n, 1 / n), np.full(n * n, 1 / n)], 1)
            )
        enc = tf.concat(boxes, 1, name="box_encodings")
        cls = tf.concat(logits, 1, name="class_predictions")
        clamped = tf.identity(tf.clip_by_value(cls, -4.0, 4.0), name="clamped_logits")
        decoded = decode_boxes(tf, enc, np.concatenate(anchors))  # [yc, xc, h, w]
        od_outputs(tf, decoded, tf.sigmoid(clamped)[:, :, 1:], 20, 0.3)
    return save_graph(graph, path)


def squares_image(
    squares: Sequence[tuple[int, int, int, tuple[int, int, int]]], size: int = SIZE
) -> np.ndarray:
    """A dark BGR ``uint8`` image with ``(x, y, side, rgb)`` squares on it."""
    image = np.full((size, size, 3), 20, np.uint8)
    for x, y, side, rgb in squares:
        image[y : y + side, x : x + side] = rgb[::-1]
    return image
