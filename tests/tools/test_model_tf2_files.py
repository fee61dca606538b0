"""The toolkit on TF2 files made here with TF2 code, beside TensorFlow's own tools.

SavedModels from a ``tf.Module`` and from Keras (``model.export`` and, the unsupported way,
``tf.saved_model.save`` of a Keras 3 model), object-based checkpoints
(``tf.train.Checkpoint``), and graphs frozen the TF2 way
(``convert_variables_to_constants_v2``, no sidecar): compared with ``saved_model_cli show
--all``, ``tf.train.list_variables`` and the variables' own values.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from detector.cli import main
from detector.errors import CheckpointError, ModelError
from detector.tools.inspect import inspect_path
from detector.tools.weights import export_weights, load_npz

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def tf2(tmp_path_factory):
    """A tf.Module (w [3,2], b [2], an int step) as SavedModel and object checkpoint."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("tf2")

    class Affine(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2), name="w")
            self.b = tf.Variable([0.5, -0.5], name="b")
            self.step = tf.Variable(7, name="step")

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.matmul(x, self.w) + self.b}

    module = Affine()
    tf.saved_model.save(module, str(folder / "sm"), signatures=module.__call__)
    prefix = tf.train.Checkpoint(model=module).write(str(folder / "obj" / "ckpt"))
    return {"sm": folder / "sm", "prefix": prefix, "module": module, "folder": folder}


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """A Keras 3 Dense-BatchNorm-Dense model: export()ed, tf.saved_model.save()d, its
    object checkpoint, and its serving signature frozen by TF2's own freezer."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    folder = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="d1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(2, name="d2"),
        ],
        name="sequential",  # fixed: Keras numbers unnamed models per process
    )
    model(np.zeros((1, 4), np.float32))
    bn = model.get_layer("bn")
    bn.moving_mean.assign([0.1, 0.2, 0.3])
    bn.moving_variance.assign([1.5, 2.0, 2.5])
    model.export(str(folder / "export"), verbose=False)
    tf.saved_model.save(model, str(folder / "tfsave"))
    tf.train.Checkpoint(model=model).write(str(folder / "ckpt" / "ckpt"))
    loaded = tf.saved_model.load(str(folder / "export"))
    frozen = convert_variables_to_constants_v2(loaded.signatures["serving_default"])
    (folder / "tf2_frozen.pb").write_bytes(frozen.graph.as_graph_def().SerializeToString())
    values = {v.path: v.numpy() for v in model.variables}
    return {"folder": folder, "values": values}


def _saved_model_cli(path, capsys) -> str:
    from tensorflow.python.tools import saved_model_cli

    capsys.readouterr()
    saved_model_cli._show_all(str(path))
    return capsys.readouterr().out


def _cli_signatures(text: str) -> dict[str, dict[str, tuple[str, str, str]]]:
    """``signature -> {"in x" | "out y": (dtype, shape, tensor)}`` from saved_model_cli."""
    sigs: dict[str, dict[str, tuple[str, str, str]]] = {}
    pattern = (
        r"(inputs|outputs)\['([^']+)'\] tensor_info:\s+dtype: (\w+)\s+shape: ([^\n]+)\s+"
        r"name: (\S+)"
    )
    for block in re.split(r"signature_def\['", text)[1:]:
        key = block.split("'")[0]
        sigs[key] = {
            f"{'in' if d == 'inputs' else 'out'} {k}": (t, s.strip(), n)
            for d, k, t, s, n in re.findall(pattern, block)
        }
    return sigs


def _enum_name(dtype: str) -> str:
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    if dtype == "invalid":
        return "DT_INVALID"
    return types_pb2.DataType.Name(tf.as_dtype(dtype).as_datatype_enum)


def _ours(sig: dict) -> dict[str, tuple[str, str, str]]:
    def shape(s):
        if s is None:
            return "unknown_rank"
        return (
            "("
            + ", ".join("-1" if d is None else str(d) for d in s)
            + ("," if len(s) == 1 else "")
            + ")"
        )

    out = {}
    for side, key in (("inputs", "in"), ("outputs", "out")):
        for k, v in sig[side].items():
            out[f"{key} {k}"] = (_enum_name(v["dtype"]), shape(v["shape"]), v["name"])
    return out


@pytest.mark.parametrize("which", ["module", "keras_export"])
def test_tf2_saved_model_inspected_like_saved_model_cli(which, tf2, keras_files, capsys):
    path = tf2["sm"] if which == "module" else keras_files["folder"] / "export"
    theirs = _cli_signatures(_saved_model_cli(path, capsys))
    assert main(["model", "inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    (meta,) = info["meta_graphs"]
    assert meta["safety"] == "ok"
    assert set(meta["signatures"]) == set(theirs)
    for key, sig in meta["signatures"].items():
        assert _ours(sig) == theirs[key], key
    assert meta["signatures"]["__saved_model_init_op"]["init_op"] is True
    assert meta["functions"]  # saved_model_cli's "Concrete Functions", read without loading
    if which == "module":
        (option,) = meta["functions"]["__call__"]
        assert option["inputs"][0][0] == {"name": "x", "dtype": "float32", "shape": [None, 3]}
        assert info["variables"] == {"w": [3, 2], "b": [2], "step": []}
    else:
        assert "sequential/d1/kernel" in info["variables"]
        assert len(info["variables"]) == 8  # each listed once, though stored twice
    assert main(["model", "inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "'__saved_model_init_op': the init op" in text and "safety: ok" in text


def test_tf2_saved_model_converts_and_exports_every_variable(tf2, tmp_path):
    from detector.tools.convert import convert

    report = convert(tf2["sm"], tmp_path / "m.pb")
    assert report["max_diff"] == 0.0 and report["outputs"] == ["y"]
    done = export_weights(tf2["sm"], tmp_path / "w.npz")
    weights = load_npz(tmp_path / "w.npz")
    assert done["kinds"] == {"array": 2, "scalar": 1}
    assert weights["step"] == 7 and weights["w"].shape == (3, 2)
    np.testing.assert_array_equal(weights["b"], tf2["module"].b.numpy())


@pytest.fixture(scope="module")
def simple_save(tmp_path_factory):
    """A TF1 graph saved with tf.compat.v1.saved_model.simple_save."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("simple") / "sm"
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        w = tf.compat.v1.get_variable("w", initializer=np.arange(6, dtype=np.float32).reshape(3, 2))
        y = tf.identity(tf.nn.relu(tf.matmul(x, w) - 2.0), name="y")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.saved_model.simple_save(sess, str(folder), {"x": x}, {"y": y})
    return folder


@pytest.mark.parametrize("kind", ["module", "keras_export", "keras_tf_save", "simple_save"])
def test_every_saved_model_tf_loads_converts_like_tf_saved_model_load(
    kind, tf2, keras_files, simple_save, tmp_path
):
    import tensorflow as tf

    from detector.model.graphfile import load_graph
    from detector.tools.convert import convert

    path = {
        "module": tf2["sm"],
        "keras_export": keras_files["folder"] / "export",
        "keras_tf_save": keras_files["folder"] / "tfsave",
        "simple_save": simple_save,
    }[kind]
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    (key, spec), *_ = signature.structured_input_signature[1].items()
    x = np.random.default_rng(0).standard_normal((2, spec.shape[1])).astype(np.float32)
    (theirs,) = [v.numpy() for v in signature(**{key: tf.constant(x)}).values()]
    for target in ("pb", "checkpoint", "saved_model"):
        out = tmp_path / (f"{target}.pb" if target == "pb" else target)
        report = convert(path, out, to=target)
        assert report["max_diff"] is not None and report["max_diff"] < 1e-5, target
        with load_graph(out) as loaded:
            (ours,) = loaded.run({next(iter(loaded.inputs)): x}).values()
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6, err_msg=target)


def test_keras3_saved_with_tf_saved_model_save_is_named_and_loaded(keras_files):
    info = inspect_path(keras_files["folder"] / "tfsave")
    assert any("Keras 3" in w and "tf.saved_model.load" in w for w in info["warnings"])


def test_object_checkpoint_names_match_list_variables(tf, tf2, capsys):
    prefix = tf2["prefix"]
    info = inspect_path(prefix)
    assert info["kind"] == "object-based"
    theirs = {
        k: s for k, s in tf.train.list_variables(prefix) if k != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }
    assert {o["key"] for o in info["objects"].values()} == set(theirs)
    assert info["objects"]["w"] == {
        "path": "model/w",
        "name": "w",
        "key": "model/w/.ATTRIBUTES/VARIABLE_VALUE",
    }
    expected = tf.train.load_checkpoint(prefix).get_tensor("model/w/.ATTRIBUTES/VARIABLE_VALUE")
    for name in ("w", "model/w", "model/w/.ATTRIBUTES/VARIABLE_VALUE", "model/w:0"):
        got = inspect_path(prefix, tensor=name)["tensor"]
        assert got["key"] == "model/w/.ATTRIBUTES/VARIABLE_VALUE"
        np.testing.assert_array_equal(np.array(got["values"]), expected)
    with pytest.raises(ModelError, match="no tensor 'model/v'") as bad:
        inspect_path(prefix, tensor="model/v")
    assert "model/w" in str(bad.value)


def test_keras_object_checkpoint_by_layer_names(keras_files, tmp_path):
    prefix = keras_files["folder"] / "ckpt" / "ckpt"
    info = inspect_path(prefix)
    assert set(info["variables"]) == set(keras_files["values"])  # sequential/d1/kernel, ...
    got = inspect_path(prefix, tensor="sequential/bn/moving_variance")["tensor"]
    np.testing.assert_allclose(got["values"], [1.5, 2.0, 2.5])
    export_weights(prefix, tmp_path / "w.npz")
    weights = load_npz(tmp_path / "w.npz")
    assert set(weights) == set(keras_files["values"])
    for name, value in keras_files["values"].items():
        np.testing.assert_array_equal(weights[name], value)


def test_object_checkpoint_cannot_freeze_alone_and_says_what_to_do(tf2, tmp_path, capsys):
    from detector.tools.freeze import freeze_checkpoint

    with pytest.raises(CheckpointError, match="object-based") as bad:
        freeze_checkpoint(tf2["prefix"], tmp_path / "f.pb")
    assert "tf.train.Checkpoint(model=obj).read" in str(bad.value)
    assert main(["model", "freeze", str(tf2["prefix"]), "-o", str(tmp_path / "f.pb")]) == 1
    assert "unexpected" not in capsys.readouterr().err


MODEL_CODE = """
import numpy as np
import tensorflow as tf


class Affine(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.zeros((3, 2), np.float32), name="w")
        self.b = tf.Variable(np.zeros(2, np.float32), name="b")
        self.step = tf.Variable(0, name="step")

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def __call__(self, x):
        return {"y": tf.matmul(x, self.w) + self.b}


def build():
    return Affine()


def wrong():
    m = tf.Module()
    m.v = tf.Variable(1.0)
    return m
"""


def test_object_checkpoint_converts_with_the_named_model(tf2, tmp_path, capsys):
    code = tmp_path / "my_model.py"
    code.write_text(MODEL_CODE)
    out = tmp_path / "m.pb"
    args = ["model", "convert", str(tf2["prefix"]), "-o", str(out), "--json"]
    assert main([*args, "--model", f"{code}:build"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source_format"] == "object checkpoint" and report["max_diff"] == 0.0
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    expected = x @ tf2["module"].w.numpy() + tf2["module"].b.numpy()
    import tensorflow as tf

    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(tf.compat.v1.GraphDef.FromString(out.read_bytes()), name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            np.testing.assert_allclose(sess.run("y:0", {"x:0": x}), expected)
    assert main([*args[:-1], "-o", str(tmp_path / "n.pb"), "--model", f"{code}:wrong"]) == 1
    assert "does not match checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "n.pb").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".detector-objckpt")]


def test_tf2_frozen_graph_weights_recovered_by_kind(keras_files, tmp_path):
    """TF2's freezer names constants unknown_N; BatchNorm parameters, biases and kernels
    are found and named from where they are used, every one with its value."""
    pb = keras_files["folder"] / "tf2_frozen.pb"
    report = export_weights(pb, tmp_path / "w.npz")
    assert report["kinds"] == {"batchnorm": 4, "bias": 2, "matmul": 2}
    assert report["unattributed"] == {}
    weights = load_npz(tmp_path / "w.npz")
    assert not [n for n in weights if n.startswith("unknown")]
    values = keras_files["values"]
    np.testing.assert_array_equal(
        weights["sequential_1/d1_1/kernel"], values["sequential/d1/kernel"]
    )
    np.testing.assert_array_equal(weights["sequential_1/d2_1/bias"], values["sequential/d2/bias"])
    found = sorted(tuple(np.round(a, 6)) for n, a in weights.items() if "bn_1" in n)
    wanted = sorted(
        tuple(np.round(values[f"sequential/bn/{k}"], 6))
        for k in ("gamma", "beta", "moving_mean", "moving_variance")
    )
    assert found == wanted


def test_tf2_loop_weights_and_unattributed_constants_reported(tf, tmp_path, capsys):
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    class Loop(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.eye(2, dtype=np.float32) * 0.5, name="loop_w")
            self.scale = tf.Variable(3.0, name="scale")
            self.table = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])

        @tf.function(
            input_signature=[tf.TensorSpec([None, 2], tf.float32), tf.TensorSpec([None], tf.int32)]
        )
        def __call__(self, x, idx):
            _, y = tf.while_loop(
                lambda i, y: i < 3, lambda i, y: (i + 1, tf.matmul(y, self.w)), [0, x]
            )
            return y * self.scale + tf.gather(self.table, idx)

    module = Loop()
    frozen = convert_variables_to_constants_v2(module.__call__.get_concrete_function())
    pb = tmp_path / "loop.pb"
    pb.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    assert main(["model", "export-weights", str(pb), "-o", str(tmp_path / "w.npz")]) == 0
    text = capsys.readouterr().out
    weights = load_npz(tmp_path / "w.npz")
    arrays = {tuple(a.ravel().round(3)) for a in weights.values()}
    assert (0.5, 0.0, 0.0, 0.5) in arrays  # the loop body's weight
    assert (3.0,) in arrays  # the scalar variable
    assert "NOT exported: 1 float constant(s) not attributed" in text  # the gathered table
