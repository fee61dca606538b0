"""The older workflows' open findings, each on a file made here the way users make it.

A TF1 training graph (dense layers, a labels placeholder, a loss, Adam, a global step, an
``inference_op`` collection) saved with ``tf.train.Saver``: freezing it without outputs,
converting the frozen graph again, a ``.meta`` from another graph with ``--init-missing``,
and a failed ``--explain-outputs``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from detector.cli import main
from detector.errors import CheckpointError
from detector.model.outputs import EXPLAIN_OUTPUTS, OD_OUTPUTS, choose_outputs
from detector.tools.freeze import freeze_checkpoint
from detector.tools.weights import export_weights, load_npz

pytestmark = pytest.mark.tf


def _training_graph(tf, folder, *, names=("hidden", "logits"), collection=True):
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        labels = tf1.placeholder(tf.int64, [None], name="labels")
        w1 = tf1.get_variable(f"{names[0]}/kernel", [4, 8])
        b1 = tf1.get_variable(f"{names[0]}/bias", [8], initializer=tf1.zeros_initializer())
        w2 = tf1.get_variable(f"{names[1]}/kernel", [8, 3])
        b2 = tf1.get_variable(f"{names[1]}/bias", [3], initializer=tf1.zeros_initializer())
        hidden = tf.nn.relu(tf.matmul(x, w1) + b1)
        logits = tf.nn.bias_add(tf.matmul(hidden, w2), b2)
        probs = tf.nn.softmax(logits, name="probs")
        loss = tf1.losses.sparse_softmax_cross_entropy(labels, logits)
        step = tf1.train.get_or_create_global_step()
        train = tf1.train.AdamOptimizer(0.01).minimize(loss, global_step=step)
        if collection:
            tf1.add_to_collection("inference_op", probs)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            feed = {x: np.ones((2, 4), np.float32), labels: [0, 1]}
            sess.run(train, feed)
            return tf1.train.Saver().save(sess, str(folder / "model.ckpt"), global_step=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import tensorflow as tf

    root = tmp_path_factory.mktemp("train")
    (root / "a").mkdir()
    (root / "b").mkdir()
    (root / "plain").mkdir()
    return {
        "a": _training_graph(tf, root / "a"),
        "b": _training_graph(tf, root / "b", names=("enc", "head")),
        "plain": _training_graph(tf, root / "plain", collection=False),
    }


@pytest.mark.parametrize("which", ["a", "plain"])
def test_freeze_without_outputs_takes_the_inference_output(trained, tmp_path, which):
    report = freeze_checkpoint(trained[which], tmp_path / "f.pb")
    assert report["outputs"] == ["probs"]  # not the loss, Adam's reads or the step
    assert report["frozen_variables"] == 4  # 2 kernels + 2 biases, no slots, no step
    assert report["inputs"] == ["x"]  # the labels placeholder is not pulled in


def test_convert_pb_to_pb_writes_a_sidecar_export_weights_reads(trained, tmp_path):
    freeze_checkpoint(trained["a"], tmp_path / "a.pb")
    assert main(["model", "convert", str(tmp_path / "a.pb"), "-o", str(tmp_path / "b.pb")]) == 0
    side = json.loads((tmp_path / "b.variables.json").read_text(encoding="utf-8"))
    assert {v["variable"] for v in side["variables"].values()} == {
        "hidden/kernel",
        "hidden/bias",
        "logits/kernel",
        "logits/bias",
    }
    export_weights(tmp_path / "b.pb", tmp_path / "b.npz")
    assert set(load_npz(tmp_path / "b.npz")) == {
        "hidden/kernel",
        "hidden/bias",
        "logits/kernel",
        "logits/bias",
    }


def test_init_missing_refuses_a_meta_from_another_graph(trained, tmp_path):
    meta_b = trained["b"] + ".meta"
    with pytest.raises(CheckpointError, match="not saved from this graph") as caught:
        freeze_checkpoint(
            trained["a"], tmp_path / "x.pb", graph=meta_b, init_missing=True, outputs=["probs"]
        )
    assert "hidden/kernel" in caught.value.message  # what the checkpoint holds instead
    assert not (tmp_path / "x.pb").exists()


def test_failed_explain_outputs_leaves_no_plain_pb(trained, tmp_path, capsys):
    freeze_checkpoint(trained["a"], tmp_path / "a.pb")
    out = tmp_path / "explainable.pb"
    args = ["model", "convert", str(tmp_path / "a.pb"), "-o", str(out), "--explain-outputs"]
    assert main(args) == 1  # no SSD heads in this graph
    assert "error:" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "explainable.variables.json").exists()


def test_default_outputs_keep_explanation_outputs_other_nodes_read():
    from tensorflow.core.framework import graph_pb2

    g = graph_pb2.GraphDef()
    for name in OD_OUTPUTS:
        g.node.add(name=name, op="Identity", input=["x"])
    g.node.add(name="x", op="Placeholder")
    g.node.add(name="explain/feature_map", op="Identity", input=["x"])
    g.node.add(name="explain/grad", op="Identity", input=["explain/feature_map"])
    chosen = choose_outputs(g, None, "g")
    assert chosen[:4] == list(OD_OUTPUTS)
    assert "explain/feature_map" in chosen and "explain/grad" in chosen
    assert set(chosen) <= set(OD_OUTPUTS) | set(EXPLAIN_OUTPUTS)
