"""Checkpoint prefixes, folders, state files and each misuse with its own message."""

from __future__ import annotations

import shutil

import pytest

from detector.errors import CheckpointError
from detector.model.checkpoints import (
    find_prefixes,
    read_state_file,
    repair_state_file,
    resolve_checkpoint,
)

pytestmark = pytest.mark.tf


def test_prefix_folder_and_meta_resolve_to_the_same_checkpoint(v1v2):
    prefix = v1v2()
    for given in (prefix, prefix.parent, f"{prefix}.meta", f"{prefix}.index"):
        ref = resolve_checkpoint(given)
        assert ref.prefix == prefix
        assert ref.meta == prefix.parent / "model.ckpt-100.meta"
        assert ref.step == 100


def test_state_file_lists_latest_all_and_timestamps(tf, tmp_path):
    tf1 = tf.compat.v1
    with tf.Graph().as_default() as graph:
        tf1.Variable([1.0], name="v1")
        saver = tf1.train.Saver(max_to_keep=2)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            for step in (10, 20, 30):
                saver.save(sess, str(tmp_path / "model.ckpt"), global_step=step)
    state = read_state_file(tmp_path)
    assert state is not None and state.latest is not None
    assert state.latest.step == 30 and state.latest.exists
    assert [e.step for e in state.entries] == [20, 30]  # max_to_keep=2 dropped step 10
    assert all(e.timestamp is None and e.modified for e in state.entries)  # Saver: no stamps
    assert read_state_file(tmp_path / "nowhere") is None


def test_checkpoint_manager_timestamps(tf, tmp_path):
    ckpt = tf.train.Checkpoint(v=tf.Variable(1.0))
    manager = tf.train.CheckpointManager(ckpt, str(tmp_path), max_to_keep=3)
    for step in (1, 2):
        manager.save(checkpoint_number=step)
    state = read_state_file(tmp_path)
    assert [e.step for e in state.entries] == [1, 2]
    assert all(e.timestamp and e.timestamp > 1.6e9 for e in state.entries)
    assert resolve_checkpoint(tmp_path).prefix == tmp_path / "ckpt-2"


def test_folder_without_state_file_uses_highest_step(v1v2, tmp_path):
    folder = v1v2(step=100).parent
    for step in (9, 250):
        src = v1v2(step=step)
        for f in src.parent.glob("model.ckpt-*"):
            shutil.copy(f, folder / f.name)
    (folder / "checkpoint").unlink()
    assert [p.name for p in find_prefixes(folder)] == [
        "model.ckpt-9",
        "model.ckpt-100",
        "model.ckpt-250",
    ]
    assert resolve_checkpoint(folder).step == 250


def test_frozen_pb_as_checkpoint(tf, tmp_path):
    graph = tf.Graph()
    with graph.as_default():
        tf.constant(1.0, name="c")
    pb = tmp_path / "frozen.pb"
    pb.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(CheckpointError, match=r"is a frozen graph .*not a checkpoint") as err:
        resolve_checkpoint(pb)
    assert "model unfreeze" in str(err.value)


def test_data_shard_path_names_the_prefix(v1v2):
    prefix = v1v2()
    shard = prefix.parent / "model.ckpt-100.data-00000-of-00001"
    with pytest.raises(CheckpointError, match="one data shard") as err:
        resolve_checkpoint(shard)
    assert f"pass the prefix without suffix: '{prefix}'" in str(err.value)


def test_missing_index(v1v2):
    prefix = v1v2()
    (prefix.parent / "model.ckpt-100.index").unlink()
    (prefix.parent / "checkpoint").unlink()
    with pytest.raises(CheckpointError, match=r"index 'model\.ckpt-100\.index' is missing"):
        resolve_checkpoint(prefix)
    with pytest.raises(CheckpointError, match=r"no \.index file"):
        resolve_checkpoint(prefix.parent)


def test_two_meta_files_are_ambiguous(v1v2):
    prefix = v1v2()
    meta = prefix.parent / "model.ckpt-100.meta"
    shutil.copy(meta, prefix.parent / "graph_a.meta")
    meta.rename(prefix.parent / "graph_b.meta")
    with pytest.raises(CheckpointError, match=r"holds 2 \.meta files"):
        resolve_checkpoint(prefix.parent)


def test_copied_folder_with_absolute_state_file_is_stale_and_repairable(v1v2, tmp_path):
    original = v1v2().parent
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    with pytest.raises(CheckpointError, match="points elsewhere") as err:
        resolve_checkpoint(copy)
    assert "--repair" in str(err.value)
    changes = repair_state_file(copy)
    assert changes == [(str(original / "model.ckpt-100"), "model.ckpt-100")] * 2
    assert resolve_checkpoint(copy).prefix == copy / "model.ckpt-100"
    assert repair_state_file(copy) == []  # idempotent


def test_stale_state_file_without_local_copy(v1v2, tmp_path):
    original = v1v2().parent
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(original / "checkpoint", copy / "checkpoint")
    with pytest.raises(CheckpointError, match="points elsewhere"):
        resolve_checkpoint(copy)
    with pytest.raises(CheckpointError, match="has no copy in"):
        repair_state_file(copy)


def test_nonexistent_prefix_lists_what_is_there(v1v2):
    prefix = v1v2()
    with pytest.raises(CheckpointError, match="no checkpoint at") as err:
        resolve_checkpoint(prefix.parent / "model.ckpt-7")
    assert "model.ckpt-100" in str(err.value)


def test_saved_model_folder_is_not_a_checkpoint(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(CheckpointError, match="SavedModel folder"):
        resolve_checkpoint(tmp_path)


def test_garbage_state_file(v1v2):
    prefix = v1v2()
    (prefix.parent / "checkpoint").write_text("this is { not a proto")
    with pytest.raises(CheckpointError, match="cannot parse checkpoint state file"):
        read_state_file(prefix.parent)


def test_old_single_file_v1_checkpoint(tf, tmp_path):
    from detector.tools.inspect import inspect_path

    tf1 = tf.compat.v1
    with tf.Graph().as_default() as graph:
        tf1.Variable([1.0, 2.0], name="v1", use_resource=False)
        saver = tf1.train.Saver(write_version=tf1.train.SaverDef.V1)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            saved = saver.save(sess, str(tmp_path / "model.ckpt"))
    for given in (saved, tmp_path, f"{saved}.meta"):
        ref = resolve_checkpoint(given)
        assert ref.prefix == tmp_path / "model.ckpt" and ref.meta is not None
    assert inspect_path(tmp_path)["variables"] == {"v1": [2]}
