"""The toolkit on TF1 workflows' files made here with TF1-style code, beside TF's own tools.

``tf.io.write_graph`` + a checkpoint (what ``freeze_graph --input_graph`` reads), a
``Saver(var_list=...)`` subset, text ``.meta``, damaged files, a failing conversion, and
a state file written on Windows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from detector.cli import main
from detector.errors import CheckpointError, ModelError
from detector.tools.inspect import inspect_path

pytestmark = pytest.mark.tf

X = np.array([[1.0, 2.0, 3.0]], np.float32)


def _write(tf, folder: Path, *, resource: bool) -> dict[str, Path]:
    """y = x @ w + b (+ 0 * extra); write_graph (.pbtxt, .pb), a full and a partial
    (Saver([w, b])) checkpoint, a text .meta."""
    tf1 = tf.compat.v1
    tag = "res" if resource else "ref"
    folder.mkdir(parents=True, exist_ok=True)
    with tf.Graph().as_default() as graph:
        x = tf1.placeholder(tf.float32, [None, 3], name="x")
        w = tf1.Variable([[1.0], [2.0], [3.0]], name="w", use_resource=resource)
        b = tf1.Variable([0.5], name="b", use_resource=resource)
        extra = tf1.Variable([9.0], name="extra", use_resource=resource)
        tf.add(tf.matmul(x, w), b + 0.0 * extra, name="y")
        full, part = tf1.train.Saver(), tf1.train.Saver([w, b])
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(w.assign([[3.0], [2.0], [1.0]]))
            tf.io.write_graph(sess.graph_def, str(folder), f"{tag}.pbtxt")
            tf.io.write_graph(sess.graph_def, str(folder), f"{tag}.pb", as_text=False)
            full_prefix = full.save(sess, str(folder / f"{tag}_full" / "model.ckpt"))
            part_prefix = part.save(sess, str(folder / f"{tag}_part" / "model.ckpt"), global_step=3)
            tf1.train.export_meta_graph(str(folder / f"{tag}_text.meta"), as_text=True)
    return {
        "pbtxt": folder / f"{tag}.pbtxt",
        "pb": folder / f"{tag}.pb",
        "full": Path(full_prefix),
        "part": Path(part_prefix),
        "text_meta": folder / f"{tag}_text.meta",
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import tensorflow as tf

    root = tmp_path_factory.mktemp("tf1")
    return {r: _write(tf, root / r, resource=r == "resource") for r in ("ref", "resource")}


def _run(pb: Path, feed: np.ndarray = X) -> np.ndarray:
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef.FromString(pb.read_bytes())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            return sess.run("y:0", {"x:0": feed})


@pytest.mark.parametrize("kind", ["ref", "resource"])
@pytest.mark.parametrize("graph", ["pbtxt", "pb"])
def test_freeze_write_graph_with_checkpoint(files, kind, graph, tmp_path, capsys):
    f = files[kind]
    out = tmp_path / "frozen.pb"
    args = ["model", "freeze", "--graph", str(f[graph]), "--checkpoint", str(f["full"])]
    assert main([*args, "-o", str(out), "--outputs", "y", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frozen_variables"] == 3 and report["max_diff"] == 0.0
    np.testing.assert_allclose(_run(out), [[10.5]])  # 3*1 + 2*2 + 1*3 + 0.5
    if kind == "ref":  # TF's freeze_graph reads the same workflow for ref variables
        from tensorflow.python.tools import freeze_graph

        theirs = tmp_path / "theirs.pb"
        freeze_graph.freeze_graph(
            str(f[graph]),
            "",
            graph == "pb",
            str(f["full"]),
            "y",
            "save/restore_all",
            "save/Const:0",
            str(theirs),
            True,
            "",
        )
        np.testing.assert_array_equal(_run(theirs), _run(out))


def test_plain_saver_graph_is_not_unsafe(files, capsys):
    """A write_graph graph carries the Saver's save/ scope (SaveV2, RestoreV2) with no
    SaverDef: it is recognised as the saver's subgraph, not refused."""
    info = inspect_path(files["ref"]["pbtxt"])
    assert info["safety"] == "ok"
    assert "not frozen: 3 variable(s)" in info["warnings"][0]
    assert main(["model", "inspect", str(files["resource"]["pb"])]) == 0
    capsys.readouterr()


def test_save_ops_outside_the_saver_are_still_refused(tf, tmp_path):
    from detector.errors import UnsafeGraphError
    from detector.model.safety import check_graph_def

    tf1 = tf.compat.v1
    with tf.Graph().as_default() as graph:
        v = tf1.Variable([1.0], name="v")
        tf1.train.Saver()
        # a node outside save/ that runs the save op when evaluated
        tf.identity(graph.get_tensor_by_name("save/control_dependency:0"), name="out")
        del v
    with pytest.raises(UnsafeGraphError, match="SaveV2"):
        check_graph_def(graph.as_graph_def(), what="g")


def test_loading_an_unfrozen_graph_says_so(files):
    from detector.model.graphfile import load_graph

    with pytest.raises(ModelError, match="not frozen: it still holds 3 variable") as bad:
        load_graph(files["ref"]["pb"], outputs=["y"])
    assert "--graph" in str(bad.value)


@pytest.mark.parametrize("kind", ["ref", "resource"])
def test_partial_checkpoint_needs_init_missing(files, kind, tmp_path, capsys):
    f = files[kind]
    out = str(tmp_path / "p.pb")
    assert main(["model", "freeze", str(f["part"]), "-o", out, "--outputs", "y"]) == 1
    err = capsys.readouterr().err
    assert "missing from the checkpoint: extra" in err and "--init-missing" in err
    assert not Path(out).exists()
    args = ["model", "freeze", str(f["part"]), "-o", out, "--outputs", "y", "--init-missing"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["initialised"] == ["extra"]
    np.testing.assert_allclose(_run(Path(out)), [[10.5]])  # w, b restored; extra initialised


def test_partial_checkpoint_with_written_graph_and_convert(files, tmp_path):
    from detector.tools.convert import convert
    from detector.tools.freeze import freeze_checkpoint

    f = files["ref"]
    report = freeze_checkpoint(
        f["part"], tmp_path / "g.pb", outputs=["y"], graph=f["pbtxt"], init_missing=True
    )
    assert report["initialised"] == ["extra"]
    with pytest.raises(CheckpointError, match="--init-missing"):
        convert(f["part"], tmp_path / "sm", to="saved_model", outputs=["y"])
    assert not (tmp_path / "sm").exists()
    done = convert(f["part"], tmp_path / "sm", to="saved_model", outputs=["y"], init_missing=True)
    assert done["initialised"] == ["extra"] and done["max_diff"] == 0.0


def test_text_meta_inspected_with_collections_and_nodes(files, capsys):
    meta = files["resource"]["text_meta"]
    assert main(["model", "inspect", str(meta), "--nodes", "--op", "MatMul,VarHandleOp"]) == 0
    text = capsys.readouterr().out
    assert "collection variables: VariableDef(w:0), VariableDef(b:0), VariableDef(extra:0)" in text
    assert "safety: ok" in text
    info = inspect_path(meta, node_filter={"op": "", "name": "w*"})
    names = {n["name"] for n in info["nodes"]}
    assert "w" in names and all(n.startswith("w") or "w" in n for n in names)
    ops = {n["name"]: n for n in inspect_path(meta, nodes=True)["nodes"]}
    assert ops["MatMul"]["op"] == "MatMul" and ops["MatMul"]["outputs"][0]["name"] == "MatMul:0"
    # the same names get_operations() gives after importing the graph
    import tensorflow as tf
    from google.protobuf import text_format

    proto = text_format.Parse(meta.read_text(), tf.compat.v1.MetaGraphDef())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(proto.graph_def, name="")
        assert {op.name for op in graph.get_operations()} == set(ops)


def test_truncated_and_random_files_named(files, tmp_path, capsys):
    data = files["ref"]["pb"].read_bytes()
    cut = tmp_path / "cut.pb"
    cut.write_bytes(data[: len(data) * 2 // 3])
    junk = tmp_path / "junk.pb"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    assert main(["model", "inspect", str(cut)]) == 1
    assert "is truncated: a GraphDef cut off after" in capsys.readouterr().err
    assert main(["model", "inspect", str(junk)]) == 1
    err = capsys.readouterr().err
    assert "is not a model file" in err and "not a GraphDef" in err


def test_missing_and_corrupt_data_named(files, tmp_path, capsys):
    import shutil

    folder = tmp_path / "ck"
    shutil.copytree(files["ref"]["full"].parent, folder)
    prefix = folder / "model.ckpt"
    data = next(folder.glob("model.ckpt.data-*"))
    data.write_bytes(data.read_bytes()[:5])  # cut off
    info = inspect_path(prefix)
    assert "values cannot be read" in info["warnings"][0]
    assert (
        main(["model", "freeze", str(prefix), "-o", str(tmp_path / "f.pb"), "--outputs", "y"]) == 1
    )
    err = capsys.readouterr().err
    assert "cannot read the values of checkpoint" in err and "unexpected" not in err
    data.unlink()
    info = inspect_path(prefix)
    assert "'model.ckpt.data-*' is missing" in info["warnings"][0]
    assert main(["model", "inspect", str(prefix), "--tensor", "w"]) == 1
    assert "unexpected" not in capsys.readouterr().err


def test_failed_convert_leaves_nothing(tf, tmp_path, capsys):
    """A graph whose output is random cannot verify: exit 1, and no file is left."""
    tf1 = tf.compat.v1
    with tf.Graph().as_default() as graph:
        x = tf1.placeholder(tf.float32, [None, 2], name="x")
        v = tf1.Variable([1.0, 1.0], name="v")
        tf.add(x * v, tf.random.uniform([2]), name="noisy")
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(sess, str(tmp_path / "ck" / "model.ckpt"))
    out = tmp_path / "out"
    out.mkdir()
    for target, dest in (
        ("pb", out / "n.pb"),
        ("saved_model", out / "sm"),
        ("checkpoint", out / "ck"),
    ):
        args = ["model", "convert", prefix, "-o", str(dest), "--to", target, "--outputs", "noisy"]
        assert main(args) == 1
        assert "differs" in capsys.readouterr().err
        assert list(out.iterdir()) == [], target


def test_windows_paths_in_state_file_repaired(v1v2, capsys):
    prefix = v1v2()
    folder = prefix.parent
    (folder / "checkpoint").write_text(
        'model_checkpoint_path: "C:\\\\Users\\\\me\\\\train\\\\model.ckpt-100"\n'
        'all_model_checkpoint_paths: "C:\\\\Users\\\\me\\\\train\\\\model.ckpt-100"\n',
        encoding="utf-8",
    )
    with pytest.raises(CheckpointError, match="points elsewhere") as bad:
        inspect_path(folder)
    assert "--repair" in str(bad.value)
    assert main(["model", "checkpoints", str(folder), "--repair"]) == 0
    assert (
        "repaired: C:\\Users\\me\\train\\model.ckpt-100 -> model.ckpt-100"
        in capsys.readouterr().out
    )
    import tensorflow as tf

    assert tf.train.latest_checkpoint(str(folder)) == str(prefix)
    assert inspect_path(folder)["prefix"] == str(prefix)
    assert os.path.exists(f"{prefix}.index")


def test_load_graph_partial_checkpoint(files):
    """What the app does with model.init_missing / --init-missing."""
    from detector.model.graphfile import load_graph

    part = files["resource"]["part"]
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint: extra"):
        load_graph(part, outputs=["y"])
    with load_graph(part, outputs=["y"], init_missing=True) as loaded:
        assert loaded.initialised == ["extra"]
        np.testing.assert_allclose(loaded.run({"x": X})["y"], [[10.5]])
