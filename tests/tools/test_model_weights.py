"""Export weights, restore them into a new graph minus its last layer, and train on."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tk_models import build_convnet, conv_data, save_convnet

from detector.errors import CheckpointError
from detector.tools.freeze import freeze_checkpoint, sidecar_path
from detector.tools.unfreeze import unfreeze
from detector.tools.weights import export_weights, load_npz, read_weights, restore_weights

pytestmark = pytest.mark.tf


def _var(tf, name: str):
    return next(v for v in tf.compat.v1.global_variables() if v.op.name == name)


CONV_NAMES = {"conv1/kernel", "conv1/bias", "logits/kernel", "logits/bias"}


@pytest.fixture(params=[False, True], ids=["ref", "resource"])
def frozen_convnet(request, tf, tmp_path):
    (tmp_path / "train").mkdir()
    prefix = save_convnet(tf, tmp_path / "train", resource=request.param)
    pb = tmp_path / "frozen.pb"
    freeze_checkpoint(prefix, pb, outputs=["logits/BiasAdd"])
    return prefix, pb


@pytest.mark.parametrize("sidecar", [True, False], ids=["sidecar", "patterns"])
def test_export_from_frozen_graph_with_and_without_sidecar(frozen_convnet, tmp_path, sidecar):
    prefix, pb = frozen_convnet
    if not sidecar:
        sidecar_path(pb).unlink()  # the graph's Const -> read/ReadVariableOp patterns only
    report = export_weights(pb, tmp_path / "w.npz")
    assert set(report["names"]) == CONV_NAMES
    weights = load_npz(tmp_path / "w.npz")
    from_ckpt = read_weights(prefix)
    for name in CONV_NAMES:
        np.testing.assert_array_equal(weights[name], from_ckpt[name])


def test_restore_into_new_graph_skipping_last_layer_and_train(tf, frozen_convnet, tmp_path):
    tf1 = tf.compat.v1
    _, pb = frozen_convnet
    export_weights(pb, tmp_path / "w.npz")
    weights = load_npz(tmp_path / "w.npz")
    images, truth = conv_data()
    with tf.Graph().as_default() as graph:
        x, labels, _, loss = build_convnet(tf, classes=3, seed=7)  # a new 3-class last layer
        train = tf1.train.GradientDescentOptimizer(1.0).minimize(loss)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            report = restore_weights(sess, weights, skip="^logits/")
            assert report.matched == ["conv1/bias", "conv1/kernel"]
            assert report.skipped == ["logits/bias", "logits/kernel"]
            assert not (report.missing or report.unexpected or report.shape_mismatched)
            np.testing.assert_array_equal(
                sess.run(_var(tf, "conv1/kernel")), weights["conv1/kernel"]
            )
            losses = [sess.run([loss, train], {x: images, labels: truth})[0] for _ in range(15)]
    assert losses[-1] < losses[0]


def test_wrong_shapes_are_never_silent(tf, frozen_convnet):
    tf1 = tf.compat.v1
    _, pb = frozen_convnet
    weights = read_weights(pb)
    with tf.Graph().as_default() as graph:
        build_convnet(tf, classes=3)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            before = sess.run(_var(tf, "conv1/kernel"))
            with pytest.raises(
                CheckpointError,
                match=r"shape mismatched: logits/bias "
                r"variable \[3\] vs weight \[2\]",
            ):
                restore_weights(sess, weights)
            # Strict: nothing was assigned.
            np.testing.assert_array_equal(sess.run(_var(tf, "conv1/kernel")), before)
            report = restore_weights(sess, weights, strict=False)
            assert report.matched == ["conv1/bias", "conv1/kernel"]
            assert [m[0] for m in report.shape_mismatched] == ["logits/bias", "logits/kernel"]


def test_missing_and_unexpected_names(tf):
    tf1 = tf.compat.v1
    with tf.Graph().as_default() as graph:
        tf1.Variable(np.zeros(2, np.float32), name="a")
        tf1.Variable(np.zeros(2, np.float32), name="b")
        report = restore_weights(
            graph, {"a:0": np.ones(2, np.float32), "c/read": np.ones(1, np.float32)}, strict=False
        )
        assert (report.matched, report.missing, report.unexpected) == (["a"], ["b"], ["c"])
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            report.assign(sess)
            np.testing.assert_array_equal(sess.run(_var(tf, "a")), [1.0, 1.0])


def test_unfreeze_gives_a_trainable_checkpoint(tf, frozen_convnet, tmp_path):
    from detector.model.graphfile import load_graph

    tf1 = tf.compat.v1
    prefix, pb = frozen_convnet
    report = unfreeze(pb, tmp_path / "ckpt", step=7)
    assert report["max_diff"] == 0.0 and report["named_by"] == "sidecar"
    assert set(report["variables"]) == CONV_NAMES
    reader = tf.train.load_checkpoint(str(tmp_path / "ckpt" / "model.ckpt-7"))
    np.testing.assert_array_equal(
        reader.get_tensor("conv1/kernel"),
        tf.train.load_checkpoint(str(prefix)).get_tensor("conv1/kernel"),
    )
    # The restored graph trains: its variables are trainable and receive gradients.
    with load_graph(tmp_path / "ckpt") as loaded:
        assert sorted(loaded.variables) == sorted(CONV_NAMES)
        with loaded.graph.as_default():
            out = loaded.graph.get_tensor_by_name("logits/BiasAdd:0")
            grads = tf1.gradients(tf.reduce_sum(out), tf1.trainable_variables())
            assert all(g is not None for g in grads)


def test_npz_never_pickles(tmp_path, frozen_convnet):
    _, pb = frozen_convnet
    export_weights(pb, tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_non_trainable_variables_match_when_given_and_are_left_alone_otherwise(tf):
    tf1 = tf.compat.v1
    with tf.Graph().as_default() as graph:
        tf1.Variable(np.zeros(2, np.float32), name="w")
        tf1.Variable(np.zeros(2, np.float32), name="moving_mean", trainable=False)
        tf1.train.get_or_create_global_step()
        report = restore_weights(
            graph, {"w": np.ones(2, np.float32), "moving_mean": np.full(2, 3.0, np.float32)}
        )
    assert report.matched == ["moving_mean", "w"] and report.untouched == ["global_step"]
    assert report.ok
