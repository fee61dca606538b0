"""Model formats told apart by structure: the suffix never decides."""

from __future__ import annotations

import shutil

import pytest

from detector.errors import ModelError
from detector.model.formats import detect_format

pytestmark = pytest.mark.tf


def _frozen_bytes(tf, nodes: int = 3, with_function: bool = False) -> bytes:
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        for i in range(nodes - 1):
            x = tf.identity(x, name=f"y{i}")
        if with_function:

            @tf.function
            def double(v):
                return v * 2.0

            double(x)
    return graph.as_graph_def().SerializeToString()


def test_frozen_graph_meta_and_pbtxt_whatever_their_names(tf, v1v2, tmp_path):
    prefix = v1v2()
    # Swapped suffixes: a .meta named .pb and a GraphDef named .meta.
    shutil.copy(f"{prefix}.meta", tmp_path / "graph.pb")
    (tmp_path / "frozen.meta").write_bytes(_frozen_bytes(tf))
    assert detect_format(tmp_path / "graph.pb") == "meta"
    assert detect_format(tmp_path / "frozen.meta") == "frozen_pb"
    (tmp_path / "one.bin").write_bytes(_frozen_bytes(tf, nodes=1, with_function=True))
    assert detect_format(tmp_path / "one.bin") == "frozen_pb"
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(_frozen_bytes(tf))
    (tmp_path / "g.txt").write_text("# text graph\n" + str(graph))
    assert detect_format(tmp_path / "g.txt") == "pbtxt"


def test_checkpoint_forms(v1v2):
    prefix = v1v2()
    assert detect_format(prefix) == "checkpoint"
    assert detect_format(prefix.parent) == "checkpoint"
    assert detect_format(f"{prefix}.index") == "checkpoint"
    assert detect_format(f"{prefix}.data-00000-of-00001") == "checkpoint"


def test_saved_model_and_tflite(tmp_path):
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    assert detect_format(tmp_path / "sm") == "saved_model"
    (tmp_path / "m.bin").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(32))
    assert detect_format(tmp_path / "m.bin") == "tflite"


def test_unknown_things_are_errors(tmp_path):
    (tmp_path / "notes.pb").write_text("hello, not a graph")
    with pytest.raises(ModelError, match=r"is not a model file .* not a GraphDef"):
        detect_format(tmp_path / "notes.pb")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="neither a SavedModel"):
        detect_format(tmp_path / "empty")
    with pytest.raises(ModelError, match="does not exist"):
        detect_format(tmp_path / "missing.pb")


@pytest.mark.e2e
def test_real_default_model(default_graph):
    assert detect_format(default_graph) == "frozen_pb"
