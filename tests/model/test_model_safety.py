"""The op allowlist: file, Python and stray save ops refused, real graphs accepted."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from detector.errors import UnsafeGraphError
from detector.model.safety import (
    ALLOWED_OPS,
    check_graph_def,
    check_meta_graph,
    check_saved_model,
)

pytestmark = pytest.mark.tf


def _graph(tf, build) -> object:
    graph = tf.Graph()
    with graph.as_default():
        build(tf.compat.v1)
    return graph.as_graph_def()


@pytest.mark.parametrize(
    ("build", "op", "node"),
    [
        (lambda t: t.io.read_file("/etc/passwd", name="peek"), "ReadFile", "peek"),
        (lambda t: t.io.write_file("/tmp/x", "boom", name="drop"), "WriteFile", "drop"),
        (lambda t: t.py_func(lambda v: v, [t.constant(1.0)], t.float32, name="cb"), "PyFunc", "cb"),
        (lambda t: t.io.matching_files("/home/*", name="glob"), "MatchingFiles", "glob"),
    ],
    ids=["ReadFile", "WriteFile", "PyFunc", "MatchingFiles"],
)
def test_refuses_file_and_python_ops_naming_op_and_node(tf, build, op, node):
    graph_def = _graph(tf, build)
    with pytest.raises(UnsafeGraphError) as err:
        check_graph_def(graph_def, what="evil.pb")
    text = str(err.value)
    assert op in text and f"'{node}'" in text and "evil.pb" in text
    assert "--allow-unsafe-ops" in text


def test_allow_unsafe_warns_instead(tf, caplog):
    graph_def = _graph(tf, lambda t: t.io.read_file("/etc/hosts", name="peek"))
    with caplog.at_level(logging.WARNING, logger="detector.model.safety"):
        check_graph_def(graph_def, what="trusted.pb", allow_unsafe_ops=True)
    assert "ReadFile" in caplog.text


def test_ops_inside_functions_are_checked_recursively(tf, tmp_path):
    class Reader(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def read(self, name):
            return tf.cond(tf.strings.length(name) > 0, lambda: tf.io.read_file(name), lambda: name)

    module = Reader()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures=module.read)
    with pytest.raises(UnsafeGraphError, match=r"ReadFile .* in function 'cond_true"):
        check_saved_model(tmp_path / "sm")


def test_saved_model_with_variables_and_control_flow_passes(tf, tmp_path):
    class Scale(tf.Module):
        def __init__(self):
            self.v = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def f(self, x):
            y = tf.cond(tf.reduce_sum(x) > 0, lambda: x * self.v, lambda: x)
            return {
                "y": tf.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a + 1.0), [0, y])[1]
            }

    module = Scale()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures=module.f)
    check_saved_model(tmp_path / "sm")  # its saver functions hold SaveV2/RestoreV2: allowed


def test_checkpoint_meta_passes_but_stray_save_op_is_refused(tf, v1v2):
    tf1 = tf.compat.v1
    prefix = v1v2(resource=False)
    meta = tf1.MetaGraphDef()
    meta.ParseFromString(Path(f"{prefix}.meta").read_bytes())
    check_meta_graph(meta, what="model.ckpt-100.meta")
    # The same save op outside the saver's subgraph: it would write files when run.
    stray = meta.graph_def.node.add()
    stray.CopyFrom(next(n for n in meta.graph_def.node if n.op == "SaveV2"))
    stray.name = "innocent_output"
    with pytest.raises(UnsafeGraphError, match=r"SaveV2 \(checkpoint file I/O .*'innocent_output'"):
        check_meta_graph(meta, what="model.ckpt-100.meta")


def test_plain_graph_saver_scope_judged_like_a_meta_saver(tf, v1v2):
    """A GraphDef written with its Saver (tf.io.write_graph) holds save/ with no SaverDef:
    its save and restore ops pass where only the saver reads them (a saver is not a model input),
    and are refused as soon as anything else reads them."""
    tf1 = tf.compat.v1
    meta = tf1.MetaGraphDef()
    meta.ParseFromString(Path(f"{v1v2(resource=True)}.meta").read_bytes())
    check_graph_def(meta.graph_def, what="written-with-saver.pbtxt")
    leak = meta.graph_def.node.add(name="leak", op="Identity", input=["save/RestoreV2"])
    leak.attr["T"].type = 1
    with pytest.raises(UnsafeGraphError, match="RestoreV2"):
        check_graph_def(meta.graph_def, what="reads-the-restore.pb")


def test_print_to_a_file_is_refused_but_stderr_is_fine(tf):
    ok = _graph(tf, lambda t: t.print("hi", output_stream=sys.stderr, name="say"))
    check_graph_def(ok, what="ok.pb")
    bad = _graph(tf, lambda t: t.print("hi", output_stream="file:///tmp/log", name="say"))
    with pytest.raises(UnsafeGraphError, match="PrintV2"):
        check_graph_def(bad, what="bad.pb")


def test_default_ssd_ops_are_allowed():
    # The ops of the default SSD as the TFLite converter writes it: all must pass.
    needed = {
        "Conv2D",
        "DepthwiseConv2dNative",
        "Relu6",
        "Minimum",
        "Maximum",
        "Add",
        "AddV2",
        "Reshape",
        "ConcatV2",
        "Sigmoid",
        "Exp",
        "Mul",
        "Sub",
        "ResizeBilinear",
        "Cast",
        "CombinedNonMaxSuppression",
        "StridedSlice",
        "BiasAdd",
        "Identity",
        "Unpack",
        "Pack",
        "ExpandDims",
        "Placeholder",
        "Const",
        "Relu",
    }
    assert needed <= ALLOWED_OPS
    assert (
        not {
            "ReadFile",
            "WriteFile",
            "PyFunc",
            "EagerPyFunc",
            "SaveV2",
            "RestoreV2",
            "MatchingFiles",
            "TFRecordDataset",
            "WholeFileReaderV2",
        }
        & ALLOWED_OPS
    )


@pytest.mark.e2e
def test_real_default_model_passes(tf, default_graph):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(default_graph.read_bytes())
    check_graph_def(graph_def, what=str(default_graph))


def _meta(tf, prefix):
    meta = tf.compat.v1.MetaGraphDef()
    meta.ParseFromString(Path(f"{prefix}.meta").read_bytes())
    return meta


def test_resaved_graph_with_an_older_dormant_saver_passes(tf, v1v2, tmp_path):
    tf1 = tf.compat.v1
    prefix = v1v2(resource=False)
    with tf.Graph().as_default() as graph:  # the fine-tuning flow: import, new Saver, save
        tf1.train.import_meta_graph(f"{prefix}.meta")
        saver = tf1.train.Saver()
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            again = saver.save(sess, str(tmp_path / "again"), global_step=1)
    meta = _meta(tf, again)
    assert sum(n.op == "RestoreV2" for n in meta.graph_def.node) == 2  # two savers
    check_meta_graph(meta, what="again.meta")


def test_save_op_read_by_an_output_or_by_the_restore_op_is_refused(tf, v1v2):
    meta = _meta(tf, v1v2(resource=False))
    save = next(n for n in meta.graph_def.node if n.op == "SaveV2")
    evil = meta.graph_def.node.add()
    evil.CopyFrom(save)
    evil.name = "save/evil"
    add = next(n for n in meta.graph_def.node if n.name == "add")
    add.input.append("^save/evil")  # running the output would write files
    with pytest.raises(UnsafeGraphError, match=r"SaveV2 .*'save/evil'"):
        check_meta_graph(meta, what="m.meta")
    add.input.pop()
    check_meta_graph(meta, what="m.meta")  # dormant again: nothing reads it
    restore = next(n for n in meta.graph_def.node if n.name == meta.saver_def.restore_op_name)
    restore.input.append("^save/evil")  # loading would write files
    with pytest.raises(UnsafeGraphError, match=r"SaveV2 .*'save/evil'"):
        check_meta_graph(meta, what="m.meta")
