"""Keras 3 files made here with plain Keras, read beside Keras' and TensorFlow's own tools.

``model.save("m.keras")``, ``model.save_weights("w.weights.h5")`` and a model with a
``Lambda`` layer: inspect against ``keras.saving.load_model``, export-weights against the
model's own variables, convert against Keras' forward pass and ``tf.saved_model.load``.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from detector.cli import main
from detector.errors import ConfigError, ModelError
from detector.model.formats import detect_format
from detector.tools.inspect import inspect_path
from detector.tools.weights import export_weights, load_npz

pytestmark = pytest.mark.tf

_BUILD = """
import keras

def build():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="d1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(2, activation="softmax", name="d2"),
        ]
    )
"""


@pytest.fixture(scope="module")
def keras3(tmp_path_factory):
    """A Dense-BatchNorm-Dense model (BN statistics set) as .keras and .weights.h5, the code
    that builds it, and a model with a Lambda layer."""
    import keras

    folder = tmp_path_factory.mktemp("keras3")
    (folder / "my_model.py").write_text(textwrap.dedent(_BUILD), encoding="utf-8")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="d1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(2, activation="softmax", name="d2"),
        ],
        name="small",
    )
    bn = model.get_layer("bn")
    bn.moving_mean.assign([0.1, 0.2, 0.3])
    bn.moving_variance.assign([1.5, 2.0, 2.5])
    bn.gamma.assign([1.1, 0.9, 1.2])
    bn.beta.assign([-0.3, 0.4, 0.05])
    model.save(folder / "m.keras")
    model.save_weights(folder / "w.weights.h5")
    lam = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="d1"), keras.layers.Lambda(lambda x: x * 2)],
        name="with_lambda",
    )
    lam.save(folder / "lam.keras")
    return {"folder": folder, "model": model, "values": {v.path: v.numpy() for v in model.weights}}


def test_recognised_by_content_not_suffix(keras3, tmp_path):
    renamed = tmp_path / "model.bin"
    renamed.write_bytes((keras3["folder"] / "m.keras").read_bytes())
    assert detect_format(renamed) == "keras"
    assert detect_format(keras3["folder"] / "w.weights.h5") == "keras_weights"


def test_inspect_matches_keras_load_model(keras3, capsys):
    import keras

    theirs = keras.saving.load_model(keras3["folder"] / "m.keras")
    assert main(["model", "inspect", str(keras3["folder"] / "m.keras"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["safety"] == "ok" and info["model_class"] == "Sequential"
    assert info["variables"] == {v.path: list(v.shape) for v in theirs.weights}
    assert info["dtypes"] == {v.path: str(v.dtype) for v in theirs.weights}
    assert [layer["name"] for layer in info["layers"]] == ["input_layer", "d1", "bn", "d2"]
    assert info["inputs"][0]["shape"] == [None, 4] and info["outputs"][0]["shape"] == [None, 2]
    assert info["parameters"] == theirs.count_params()
    got = inspect_path(keras3["folder"] / "m.keras", tensor="bn/moving_variance")["tensor"]
    np.testing.assert_allclose(got["values"], [1.5, 2.0, 2.5])


def test_weights_only_file_is_listed_and_explains_what_converting_needs(keras3, tmp_path, capsys):
    path = keras3["folder"] / "w.weights.h5"
    info = inspect_path(path)
    shapes = sorted(tuple(s) for s in info["variables"].values())
    assert shapes == sorted(tuple(v.shape) for v in keras3["values"].values())
    assert any("--model" in w for w in info["warnings"])
    assert main(["model", "convert", str(path), "-o", str(tmp_path / "w.pb")]) == 2
    err = capsys.readouterr().err
    assert "weights only" in err and "--model my_model.py:build" in err
    assert not list(tmp_path.iterdir())


def test_export_weights_gives_what_keras_loads(keras3, tmp_path):
    import keras

    theirs = keras.saving.load_model(keras3["folder"] / "m.keras").weights
    report = export_weights(keras3["folder"] / "m.keras", tmp_path / "w.npz")
    weights = load_npz(tmp_path / "w.npz")
    assert report["arrays"] == 8 and set(weights) == {v.path for v in theirs}
    for v in theirs:
        np.testing.assert_array_equal(weights[v.path], v.numpy())
    np.testing.assert_allclose(weights["bn/moving_mean"], [0.1, 0.2, 0.3], rtol=1e-6)


@pytest.mark.parametrize("to", ["pb", "saved_model", "checkpoint"])
def test_convert_matches_keras_forward_pass(keras3, tmp_path, to):
    import tensorflow as tf

    from detector.model.graphfile import load_graph

    out = tmp_path / ("k.pb" if to == "pb" else "k")
    args = ["model", "convert", str(keras3["folder"] / "m.keras"), "-o", str(out), "--to", to]
    assert main(args) == 0
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    expected = keras3["model"](x, training=False).numpy()
    with load_graph(out) as loaded:
        (got,) = loaded.run({next(iter(loaded.inputs)): x}).values()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    if to == "saved_model":  # TensorFlow's own loader runs it the same
        sig = tf.saved_model.load(str(out)).signatures["serving_default"]
        (theirs,) = sig(**{next(iter(loaded.inputs)): tf.constant(x)}).values()
        np.testing.assert_allclose(theirs.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_weights_h5_converts_with_the_models_code(keras3, tmp_path):
    from detector.tools.keras_convert import convert_keras

    report = convert_keras(
        keras3["folder"] / "w.weights.h5",
        "keras_weights",
        tmp_path / "w.pb",
        to="pb",
        model=f"{keras3['folder'] / 'my_model.py'}:build",
    )
    assert report["keras_max_diff"] is not None and report["keras_max_diff"] < 1e-5
    assert (tmp_path / "w.pb").is_file() and (tmp_path / "w.variables.json").is_file()


def test_lambda_layer_is_refused_by_name_but_still_described(keras3, tmp_path, capsys):
    path = keras3["folder"] / "lam.keras"
    assert main(["model", "inspect", str(path)]) == 3
    captured = capsys.readouterr()
    assert "Lambda" in captured.err and "d1/0" in captured.out
    with pytest.raises(ModelError, match="Lambda: runs Python code"):
        from detector.tools.keras_convert import convert_keras

        convert_keras(path, "keras", tmp_path / "lam.pb", to="pb")
    assert not list(tmp_path.iterdir())
    weights = export_weights(path, tmp_path / "lam.npz")  # data only: nothing is run
    assert weights["names"]["d1/0"][0] == [4, 3]


def test_custom_module_is_refused_before_keras_imports_it(tmp_path):
    import zipfile

    config = {
        "module": "os",
        "class_name": "system",
        "config": {
            "name": "x",
            "inner": {"module": "m", "class_name": "C", "registered_name": "pkg>C"},
        },
    }
    path = tmp_path / "evil.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", b"")
    from detector.model.keras_file import open_keras

    with open_keras(path) as archive:
        refused = " ".join(archive.review.refused)
        assert "module 'os'" in refused and "'pkg>C'" in refused
    with pytest.raises((ModelError, ConfigError)):
        from detector.tools.keras_convert import convert_keras

        convert_keras(path, "keras", tmp_path / "e.pb", to="pb")


def test_tf2_frozen_batchnorm_weights_are_named_by_their_role(keras3, tmp_path):
    """TF2's freezer leaves Keras 3 batch norm as Cast..Cast_3 reads; each is named from
    what the inference math does with it, and holds that variable's values."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    keras3["model"].export(str(tmp_path / "export"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))  # keeps the variables alive
    frozen = convert_variables_to_constants_v2(loaded.signatures["serving_default"])
    pb = tmp_path / "frozen.pb"
    pb.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    export_weights(pb, tmp_path / "w.npz")
    weights = load_npz(tmp_path / "w.npz")
    bn = keras3["model"].get_layer("bn")
    for role in ("gamma", "beta", "moving_mean", "moving_variance"):
        (name,) = [k for k in weights if k.endswith(f"/{role}")]
        np.testing.assert_array_equal(weights[name], getattr(bn, role).numpy(), err_msg=role)
    assert not any("Cast" in k for k in weights)
