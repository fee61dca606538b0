"""A tiny detector that is slow on purpose: real matrix work per frame, no sleep op.

Same outputs as ``helpers.tiny_models.build_frozen`` (scores from the red level, classes 1
and 2), plus ``rounds`` products of ``size x size`` matrices built from the image, so the
model's cost is real compute that grappler cannot fold away (it depends on the input).
"""

from __future__ import annotations

from pathlib import Path

from helpers.tiny_models import RED, _heads


def build_slow_frozen(path: Path, *, size: int = 1024, rounds: int = 8) -> Path:
    """A frozen graph of about ``rounds * 2 * size**3`` flops a frame (~0.15 s a frame here)."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        image = tf1.placeholder(tf.uint8, [None, None, None, 3], name="image_tensor")
        level = tf.reduce_mean(tf.cast(image, tf.float32)) / 255.0
        m = tf.fill([size, size], level + 1.0) / float(size)
        for _ in range(rounds):
            m = tf.matmul(m, m) + 1.0 / size
        # 0 * (finite sum) keeps the work on the path to the outputs without changing them.
        w = tf.constant(RED) + 0.0 * tf.minimum(tf.reduce_sum(m), 1.0)
        for name, t in _heads(tf, image, w).items():
            tf.identity(t, name=name)
    path = Path(path)
    path.write_bytes(graph.as_graph_def().SerializeToString(deterministic=True))
    return path
