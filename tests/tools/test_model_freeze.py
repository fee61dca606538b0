"""Freeze: the documents' v1 + v2 example, deny lists, devices, misuse messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detector.errors import CheckpointError, ModelError
from detector.tools.freeze import freeze_checkpoint, sidecar_path
from detector.tools.inspect import inspect_path

pytestmark = pytest.mark.tf


def _run(tf, pb, fetch: str, feed=None):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            return sess.run(fetch, feed), graph_def


@pytest.mark.parametrize("resource", [False, True], ids=["ref", "resource"])
def test_v1_plus_v2_inspect_and_freeze(tf, v1v2, tmp_path, resource):
    prefix = v1v2(resource=resource)
    info = inspect_path(prefix.parent)
    assert info["variables"] == {"v1": [1], "v2": [1]}
    assert info["step"] == 100 and info["state_file"]["latest"]["step"] == 100
    assert info["saver"]["max_to_keep"] == 3

    report = freeze_checkpoint(prefix, tmp_path / "frozen.pb", outputs=["add"])
    assert report["frozen_variables"] == 2 and report["max_diff"] == 0.0
    value, graph_def = _run(tf, tmp_path / "frozen.pb", "add:0")
    np.testing.assert_array_equal(value, [3.0])
    assert not {n.op for n in graph_def.node} & {"VariableV2", "VarHandleOp", "SaveV2"}
    side = json.loads(sidecar_path(tmp_path / "frozen.pb").read_text())
    assert side["variables"]["v1"] == {"variable": "v1", "dtype": "float32", "shape": [1]}
    assert side["step"] == 100 and side["outputs"] == ["add"]


@pytest.mark.parametrize("resource", [False, True], ids=["ref", "resource"])
def test_exclude_keeps_a_variable(tf, v1v2, tmp_path, resource):
    report = freeze_checkpoint(
        v1v2(resource=resource), tmp_path / "f.pb", outputs=["add"], exclude=["v2"]
    )
    assert report["kept"] == ["v2"] and list(report["variables"]) == ["v1"]
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((tmp_path / "f.pb").read_bytes())
    ops = {n.name: n.op for n in graph_def.node}
    assert ops["v1"] == "Const" and ops["v2"] in ("VariableV2", "VarHandleOp")


def test_devices_are_cleared(tf, tmp_path):
    tf1 = tf.compat.v1
    with tf.Graph().as_default() as graph:
        with tf.device("/device:GPU:3"):
            v = tf1.Variable([4.0], name="w")
            tf.multiply(v, 2.0, name="out")
        saver = tf1.train.Saver()
        config = tf1.ConfigProto(allow_soft_placement=True)
        with tf1.Session(graph=graph, config=config) as sess:
            sess.run(tf1.global_variables_initializer())
            prefix = saver.save(sess, str(tmp_path / "model.ckpt"), global_step=1)
    freeze_checkpoint(prefix, tmp_path / "f.pb", outputs=["out"])
    value, graph_def = _run(tf, tmp_path / "f.pb", "out:0")
    np.testing.assert_array_equal(value, [8.0])
    assert all(n.device == "" for n in graph_def.node)


def test_missing_output_node_names_candidates(v1v2, tmp_path):
    with pytest.raises(ModelError, match="has no node 'ad'") as err:
        freeze_checkpoint(v1v2(), tmp_path / "f.pb", outputs=["ad"])
    assert "did you mean ['add']" in str(err.value)


def test_checkpoint_without_meta(v1v2, tmp_path):
    prefix = v1v2()
    (prefix.parent / "model.ckpt-100.meta").unlink()
    with pytest.raises(CheckpointError, match=r"has no \.meta graph"):
        freeze_checkpoint(prefix, tmp_path / "f.pb", outputs=["add"])


def test_wrong_shapes_in_checkpoint(tf, v1v2, tmp_path):
    """A .meta whose variable shapes differ from the checkpoint's: named, never silent."""
    tf1 = tf.compat.v1
    prefix = v1v2(resource=True)
    with tf.Graph().as_default():
        tf1.Variable([1.0, 1.0], name="v1")  # [2] instead of [1]
        v2 = tf1.Variable([2.0], name="v2")
        tf.add(v2, 1.0, name="add")
        tf1.train.Saver().export_meta_graph(str(prefix) + ".meta")
    with pytest.raises(
        CheckpointError,
        match=r"shape mismatches: \['v1: graph \[2\] vs "
        r"checkpoint \[1\]'\]",
    ):
        freeze_checkpoint(prefix, tmp_path / "f.pb", outputs=["add"])


def test_outputs_default_to_the_od_api_names(tf, tmp_path):
    tf1 = tf.compat.v1
    names = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
    with tf.Graph().as_default() as graph:
        image = tf1.placeholder(tf.uint8, [None, None, None, 3], name="image_tensor")
        w = tf1.Variable(0.5, name="w")
        level = tf.reduce_mean(tf.cast(image, tf.float32), axis=[1, 2, 3]) * w
        for name in names:
            tf.identity(level, name=name)
        tf.identity(level, name="debug_only")
        saver = tf1.train.Saver()
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            prefix = saver.save(sess, str(tmp_path / "model.ckpt"), global_step=3)
    report = freeze_checkpoint(prefix, tmp_path / "f.pb")
    assert report["outputs"] == list(names) and report["inputs"] == ["image_tensor"]
    value, graph_def = _run(
        tf,
        tmp_path / "f.pb",
        "detection_scores:0",
        {"image_tensor:0": np.full((1, 2, 2, 3), 100, np.uint8)},
    )
    np.testing.assert_allclose(value, [50.0])
    assert "debug_only" not in {n.name for n in graph_def.node}
