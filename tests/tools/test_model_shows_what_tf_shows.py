"""What TensorFlow's own tools show, shown by ``model inspect`` too, compared on files made here.

``inspect_checkpoint --all_tensors`` (every variable's values), the shapes
``graph.get_operations()`` infers, and ``tf.lite.Interpreter``'s op names and quantization.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from detector.cli import main

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def quantized_tflite(tmp_path_factory):
    """A Dense-Dense Keras model converted to a full-int8 .tflite (per-channel weights)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)],
        name="q",
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: (
        [rng.random((1, 4), dtype=np.float32)] for _ in range(16)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("tflite") / "q.tflite"
    path.write_bytes(converter.convert())
    return path


def test_tflite_op_names_and_quantization_match_the_interpreter(quantized_tflite, capsys):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(str(quantized_tflite))
    assert main(["model", "inspect", str(quantized_tflite), "--all-tensors", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    ops = [o["op_name"] for o in interpreter._get_ops_details()]
    assert info["ops"] == {name: ops.count(name) for name in set(ops)}  # FULLY_CONNECTED
    theirs = {t["index"]: t for t in interpreter.get_tensor_details()}
    for ours in info["all_tensors"]:
        t = theirs[ours["index"]]
        assert ours["name"] == t["name"] and ours["shape"] == list(t["shape"])
        q = t["quantization_parameters"]
        if len(q["scales"]) == 1:
            assert ours["quantization"] == {
                "scale": pytest.approx(float(q["scales"][0])),
                "zero_point": int(q["zero_points"][0]),
            }
        elif len(q["scales"]) > 1:
            assert ours["quantization"]["per_channel"] == len(q["scales"])
            assert ours["quantization"]["axis"] == q["quantized_dimension"]
            np.testing.assert_allclose(ours["quantization"]["scale"], q["scales"][:16])
    (inp,) = interpreter.get_input_details()
    assert info["inputs"][0]["quantization"]["zero_point"] == inp["quantization"][1]


def test_all_tensors_matches_load_checkpoint(tmp_path, capsys):
    import tensorflow as tf
    from helpers.tk_models import save_v1v2

    prefix = save_v1v2(tf, tmp_path, resource=True)
    assert main(["model", "inspect", str(prefix), "--all-tensors", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    reader = tf.train.load_checkpoint(str(prefix))
    names = set(reader.get_variable_to_shape_map())
    assert set(info["all_tensors"]) == names
    for name in names:
        np.testing.assert_allclose(info["all_tensors"][name]["values"], reader.get_tensor(name))


def test_node_shapes_are_what_tensorflow_infers(tmp_path, capsys):
    import tensorflow as tf

    with tf.Graph().as_default() as graph:
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        kernel = tf.constant(np.ones((3, 3, 3, 4), np.float32), name="k")
        conv = tf.nn.conv2d(x, kernel, strides=2, padding="SAME", name="conv")
        tf.reduce_mean(conv, axis=[1, 2], name="pooled")
    (tmp_path / "g.pb").write_bytes(graph.as_graph_def().SerializeToString())
    assert main(["model", "inspect", str(tmp_path / "g.pb"), "--nodes", "--json"]) == 0
    nodes = {n["name"]: n for n in json.loads(capsys.readouterr().out)["nodes"]}
    for op in graph.get_operations():
        expected = [t.shape.as_list() for t in op.outputs]
        assert [o["shape"] for o in nodes[op.name]["outputs"]] == expected, op.name
    assert nodes["conv"]["outputs"][0]["shape"] == [None, 4, 4, 4]
