"""Tiny TF models for the toolkit tests, built in the test in milliseconds.

* ``v1v2``: the documents' own example, ``v1 = [1.0]``, ``v2 = [2.0]``, ``add = v1 + v2``,
  saved by ``tf.train.Saver(max_to_keep=3)`` with ``global_step=100``.
* ``convnet``: a 3×3 conv (``conv1``), ReLU, global mean and a dense layer (``logits``),
  with a softmax loss, so a test can train it and watch the loss go down.

Both come with ref variables (TF1's ``VariableV2``) or resource variables (TF2's
``VarHandleOp``), the two patterns every tool must handle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_v1v2(tf, folder: Path, *, resource: bool, step: int = 100) -> Path:
    """``v1 = [1.0]``, ``v2 = [2.0]``, ``add = v1 + v2`` saved at ``folder/model.ckpt-<step>``."""
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        v1 = tf1.Variable([1.0], name="v1", use_resource=resource)
        v2 = tf1.Variable([2.0], name="v2", use_resource=resource)
        tf.add(v1, v2, name="add")
        saver = tf1.train.Saver(max_to_keep=3)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            prefix = saver.save(sess, str(folder / "model.ckpt"), global_step=step)
    return Path(prefix)


def build_convnet(tf, *, classes: int = 2, resource: bool = True, seed: int = 0):
    """Build the conv net in the current default graph.

    Returns:
        ``(x, labels, logits, loss)``: ``x`` float32 ``[None, 8, 8, 3]``, ``labels`` int32
        ``[None]``, ``logits`` named ``logits/BiasAdd``, ``loss`` a scalar.
    """
    tf1 = tf.compat.v1
    init = tf1.initializers.glorot_uniform(seed=seed)
    x = tf1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
    labels = tf1.placeholder(tf.int32, [None], name="labels")
    with tf1.variable_scope("conv1"):
        k = tf1.get_variable("kernel", [3, 3, 3, 4], initializer=init, use_resource=resource)
        b = tf1.get_variable(
            "bias", [4], initializer=tf1.zeros_initializer(), use_resource=resource
        )
        h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, k, 1, "SAME"), b))
    pooled = tf.reduce_mean(h, axis=[1, 2])
    with tf1.variable_scope("logits"):
        w = tf1.get_variable("kernel", [4, classes], initializer=init, use_resource=resource)
        c = tf1.get_variable(
            "bias", [classes], initializer=tf1.zeros_initializer(), use_resource=resource
        )
        logits = tf.nn.bias_add(tf.matmul(pooled, w), c, name="BiasAdd")
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )
    return x, labels, logits, loss


def save_convnet(tf, folder: Path, *, resource: bool = True, train_steps: int = 5) -> Path:
    """Train the conv net a few steps on :func:`conv_data` and save it (step = train_steps)."""
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x, labels, _, loss = build_convnet(tf, resource=resource)
        step = tf1.train.get_or_create_global_step()
        train = tf1.train.GradientDescentOptimizer(0.5).minimize(loss, global_step=step)
        saver = tf1.train.Saver(max_to_keep=2)
        images, truth = conv_data()
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            for _ in range(train_steps):
                sess.run(train, {x: images, labels: truth})
            prefix = saver.save(sess, str(folder / "model.ckpt"), global_step=train_steps)
    return Path(prefix)


def conv_data(n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is which half (top or bottom) is bright: learnable in a few steps."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0.0, 0.2, (n, 8, 8, 3)).astype(np.float32)
    truth = np.arange(n, dtype=np.int32) % 2
    images[truth == 0, :4] += 0.8
    images[truth == 1, 4:] += 0.8
    return images, truth
