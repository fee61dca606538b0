"""Round trips among checkpoint, frozen .pb and SavedModel, with equal outputs."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tk_models import conv_data, save_convnet

from detector.errors import ModelError
from detector.model.formats import detect_format
from detector.model.graphfile import load_graph
from detector.tools.convert import convert

pytestmark = pytest.mark.tf


def _outputs(path, outputs=None) -> np.ndarray:
    images, _ = conv_data(4)
    with load_graph(path, outputs=outputs) as loaded:
        (key,) = loaded.outputs
        return loaded.run({"x": images})[key]


@pytest.mark.parametrize("resource", [False, True], ids=["ref", "resource"])
def test_ckpt_to_pb_to_saved_model_to_ckpt(tf, tmp_path, resource):
    (tmp_path / "train").mkdir()
    prefix = save_convnet(tf, tmp_path / "train", resource=resource)
    reference = _outputs(prefix, ["logits/BiasAdd"])

    steps = [
        (prefix, tmp_path / "a.pb", None, "frozen_pb"),
        (tmp_path / "a.pb", tmp_path / "saved", "saved_model", "saved_model"),
        (tmp_path / "saved", tmp_path / "ckpt", "checkpoint", "checkpoint"),
        (tmp_path / "ckpt", tmp_path / "b.pb", None, "frozen_pb"),
    ]
    for src, out, to, fmt in steps:
        report = convert(src, out, to=to, outputs=["logits/BiasAdd"] if src == prefix else None)
        assert report["max_diff"] is not None and report["max_diff"] < 1e-5
        assert report["outputs"] == ["logits/BiasAdd"] and report["inputs"] == ["x"]
        assert detect_format(out) == fmt
        np.testing.assert_allclose(_outputs(out), reference, rtol=1e-5, atol=1e-6)
    # The checkpoint made from the SavedModel has the original variable names back.
    reader = tf.train.load_checkpoint(str(tmp_path / "ckpt"))
    assert {"conv1/kernel", "conv1/bias", "logits/kernel", "logits/bias"} <= set(
        reader.get_variable_to_shape_map()
    )


def test_tf2_saved_model_keys_become_node_names(tf, tmp_path):
    class Scale(tf.Module):
        def __init__(self):
            self.w = tf.Variable([2.0, 3.0])

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def f(self, x):
            return {"y": x * self.w, "total": tf.reduce_sum(x * self.w)}

    module = Scale()
    tf.saved_model.save(module, str(tmp_path / "tf2"), signatures=module.f)
    report = convert(tmp_path / "tf2", tmp_path / "tf2.pb")
    assert report["inputs"] == ["x"] and sorted(report["outputs"]) == ["total", "y"]
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((tmp_path / "tf2.pb").read_bytes())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            y = sess.run("y:0", {"x:0": [[1.0, 1.0]]})
    np.testing.assert_array_equal(y, [[2.0, 3.0]])
    # Its save and restore functions are gone: the frozen graph passes the allowlist.
    assert not any("traced_save" in f.signature.name for f in graph_def.library.function)


def test_existing_outputs_are_not_overwritten(tf, tmp_path):
    (tmp_path / "train").mkdir()
    prefix = save_convnet(tf, tmp_path / "train")
    convert(prefix, tmp_path / "ck", to="checkpoint", outputs=["logits/BiasAdd"])
    with pytest.raises(ModelError, match=r"already holds checkpoint model\.ckpt-0"):
        convert(prefix, tmp_path / "ck", to="checkpoint", outputs=["logits/BiasAdd"])
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "keep.txt").write_text("mine")
    with pytest.raises(ModelError, match="exists and is not empty"):
        convert(prefix, tmp_path / "sm", to="saved_model", outputs=["logits/BiasAdd"])


def test_unsafe_source_is_refused_before_import(tf, tmp_path):
    from detector.errors import UnsafeGraphError

    with tf.Graph().as_default() as graph:
        tf.io.write_file("/tmp/should-not-exist", "x", name="drop")
    (tmp_path / "evil.pb").write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(UnsafeGraphError, match="WriteFile"):
        convert(tmp_path / "evil.pb", tmp_path / "out.pb", outputs=["drop"])


@pytest.mark.e2e
def test_real_default_model_to_saved_model(default_graph, tmp_path):
    report = convert(default_graph, tmp_path / "sm", to="saved_model")
    assert report["outputs"] == [
        "detection_boxes",
        "detection_scores",
        "detection_classes",
        "num_detections",
    ]
    assert report["variables"] == 144 and report["max_diff"] < 1e-4


def test_text_graph_to_binary(tf, tmp_path):
    (tmp_path / "train").mkdir()
    prefix = save_convnet(tf, tmp_path / "train")
    convert(prefix, tmp_path / "a.pb", outputs=["logits/BiasAdd"])
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((tmp_path / "a.pb").read_bytes())
    (tmp_path / "a.pbtxt").write_text(str(graph_def))
    report = convert(tmp_path / "a.pbtxt", tmp_path / "b.pb", outputs=["logits/BiasAdd"])
    assert report["source_format"] == "pbtxt" and report["max_diff"] == 0.0
    np.testing.assert_array_equal(_outputs(tmp_path / "b.pb"), _outputs(tmp_path / "a.pb"))
