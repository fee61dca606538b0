"""Fault rows for model files, label maps and configs, through ``main.py`` as a user meets them.

Each broken file is made in the test: random bytes, a graph cut in half, a SavedModel's
``saved_model.pb`` given alone, checkpoint pieces, a graph without the expected input, a
graph reading a file (unsafe), label maps with bad ids, configs with typos and bad values.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli_run import RunOutputs, only_run_folder, run_cli
from helpers.tiny_models import (
    build_checkpoint,
    build_frozen,
    build_saved_model,
    build_unsafe_frozen,
    tiny_video,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_video(tmp_path_factory.mktemp("clip") / "clip.avi", frames=8)


def _run(clip: Path, runs: Path, *args: str | Path):
    return run_cli("--source", clip, "--output", runs, *args)


# -- model files ------------------------------------------------------------------------------


def test_missing_model_and_missing_label_map_exit_alike(
    tmp_path: Path, clip: Path, runs: Path, tiny_model: Path, tiny_labels: Path
) -> None:
    no_model = _run(clip, runs, "--model", tmp_path / "none.pb", "--labels", tiny_labels)
    no_model.assert_failed(1, f"'{tmp_path / 'none.pb'}'", "does not exist")
    no_labels = _run(clip, runs, "--model", tiny_model, "--labels", tmp_path / "none.pbtxt")
    no_labels.assert_failed(1, f"'{tmp_path / 'none.pbtxt'}'", "does not exist")
    assert not runs.exists()  # nothing half-made


def test_random_and_truncated_model_files(
    tmp_path: Path, clip: Path, runs: Path, tiny_model: Path, tiny_labels: Path
) -> None:
    random_pb = tmp_path / "random.pb"
    random_pb.write_bytes(os.urandom(4096))
    _run(clip, runs, "--model", random_pb, "--labels", tiny_labels).assert_failed(
        1, f"'{random_pb}'"
    )
    data = tiny_model.read_bytes()
    cut = tmp_path / "cut.pb"
    cut.write_bytes(data[: len(data) // 2])
    _run(clip, runs, "--model", cut, "--labels", tiny_labels).assert_failed(1, f"'{cut}'")
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    _run(clip, runs, "--model", empty, "--labels", tiny_labels).assert_failed(1, f"'{empty}'")


def test_saved_model_file_given_instead_of_its_folder(
    tmp_path: Path, clip: Path, runs: Path, tiny_labels: Path
) -> None:
    folder = build_saved_model(tmp_path / "sm")
    result = _run(clip, runs, "--model", folder / "saved_model.pb", "--labels", tiny_labels)
    result.assert_failed(1, "this is a SavedModel", f"pass its folder '{folder}'")
    _run(clip, runs, "--model", folder, "--labels", tiny_labels).assert_ok()  # as the hint says


def test_checkpoint_pieces(tmp_path: Path, clip: Path, runs: Path, tiny_labels: Path) -> None:
    folder = build_checkpoint(tmp_path / "ckpt")
    for meta in folder.glob("*.meta"):
        meta.unlink()  # the graph is gone: only weights are left
    result = _run(clip, runs, "--model", folder, "--labels", tiny_labels)
    result.assert_failed(1, f"{folder}")
    index_only = tmp_path / "index_only"
    index_only.mkdir()
    for piece in (tmp_path / "ckpt").glob("*.index"):
        (index_only / piece.name).write_bytes(piece.read_bytes())
    _run(clip, runs, "--model", index_only, "--labels", tiny_labels).assert_failed(
        1, f"{index_only}"
    )


def test_missing_input_tensor_names_what_is_there(
    tmp_path: Path, clip: Path, runs: Path, tiny_labels: Path
) -> None:
    graph = build_frozen(tmp_path / "other_input.pb", input_name="pixels")
    result = _run(clip, runs, "--model", graph, "--labels", tiny_labels)
    result.assert_failed(1, "image_tensor", "pixels", "model.input_tensor")


def test_fixed_size_input_graph(tmp_path: Path, clip: Path, runs: Path, tiny_labels: Path) -> None:
    import tensorflow as tf
    from helpers.tiny_models import RED, _heads

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        image = tf1.placeholder(tf.uint8, [1, 32, 32, 3], name="image_tensor")
        for name, t in _heads(tf, image, tf.constant(RED)).items():
            tf.identity(t, name=name)
    path = tmp_path / "fixed.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    result = _run(clip, runs, "--model", path, "--labels", tiny_labels)
    if result.code == 0:  # resized to fit: every frame processed
        out = RunOutputs.read(only_run_folder(runs))
        assert len(out.lines) == 8
    else:  # or refused up front, naming the size it needs
        result.assert_failed(1, "32")


def test_unsafe_graph_is_refused_with_the_way_out(
    tmp_path: Path, clip: Path, runs: Path, tiny_labels: Path
) -> None:
    graph = build_unsafe_frozen(tmp_path / "unsafe.pb")
    result = _run(clip, runs, "--model", graph, "--labels", tiny_labels)
    result.assert_failed(1, "ReadFile", "--allow-unsafe-ops")
    assert not runs.exists()


# -- label maps -------------------------------------------------------------------------------

ITEMS = 'item {{ id: {a} name: "red" }}\nitem {{ id: {b} name: "half" }}\n'


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('item { id: 1 name: "red" \n', ["line", "expected"]),  # syntax error
        (ITEMS.format(a=1, b=-2), ["negative id -2"]),
        (ITEMS.format(a=1, b=1), ["id 1 given twice"]),
        ('item { id: 1 name: "red" colour: "x" }\n', ["colour"]),  # unknown field
    ],
    ids=["syntax", "negative", "duplicate", "unknown-field"],
)
def test_bad_label_maps_are_refused(
    tmp_path: Path, clip: Path, runs: Path, tiny_model: Path, text: str, needles: list[str]
) -> None:
    labels = tmp_path / "labels.pbtxt"
    labels.write_text(text)
    result = _run(clip, runs, "--model", tiny_model, "--labels", labels)
    result.assert_failed(2, f"'{labels}'", *needles, hint=False)


def test_label_id_0_is_ignored_with_a_warning(
    tmp_path: Path, clip: Path, runs: Path, tiny_model: Path
) -> None:
    labels = tmp_path / "labels.pbtxt"
    labels.write_text(ITEMS.format(a=0, b=1) + 'item { id: 2 name: "half" }\n'.replace("half", "h"))
    result = _run(clip, runs, "--model", tiny_model, "--labels", labels)
    result.assert_ok()
    assert "id 0 ('red') is the background class" in result.err


def test_class_ids_missing_from_the_map_are_warned_and_counted(
    tmp_path: Path, clip: Path, runs: Path, tiny_model: Path
) -> None:
    labels = tmp_path / "labels.pbtxt"
    labels.write_text('item { id: 1 name: "red" }\n')  # the model also outputs class 2
    result = _run(clip, runs, "--model", tiny_model, "--labels", labels, "--threshold", "0")
    result.assert_ok()
    assert result.err.count("class id 2 is not in the label map") == 1  # warned once
    out = RunOutputs.read(only_run_folder(runs))
    assert out.run["labels"]["unknown_class_ids"] == {"2": 8}
    assert "class ids not in the label map: 2 (8x)" in result.out


def test_classes_filter_with_an_id_the_map_lacks(
    clip: Path, runs: Path, tiny_model: Path, tiny_labels: Path
) -> None:
    result = _run(clip, runs, "--model", tiny_model, "--labels", tiny_labels, "--classes", "999")
    result.assert_failed(2, "class id 999 is not in the label map", "ids run from 1 to 2")


# -- configs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("detect:\n  treshold: 0.4\n", ["detect.treshold", "did you mean 'detect.threshold'"]),
        ("detect:\n  threshold: high\n", ["detect.threshold", "a number", "'high'"]),
        ("detect:\n  threshold: 1.5\n", ["detect.threshold", "in [0.0, 1.0]"]),
        ("source:\n  reconnect: sometimes\n", ["source.reconnect", "forever"]),
        ("source:\n  stall_timeout_s: 0\n", ["source.stall_timeout_s", "> 0"]),
        ("detect: [threshold\n", ["invalid YAML", "line"]),
        ("- just\n- a list\n", ["expected a mapping"]),
    ],
    ids=["typo", "wrong-type", "out-of-range", "reconnect", "stall", "yaml", "not-a-mapping"],
)
def test_bad_configs_exit_2_naming_file_and_key(
    tmp_path: Path, clip: Path, runs: Path, text: str, needles: list[str]
) -> None:
    config = tmp_path / "bad.yml"
    config.write_text(text)
    result = _run(clip, runs, "--config", config)
    result.assert_failed(2, str(config), *needles, hint=False)
    assert not runs.exists()


def test_empty_config_file_means_the_defaults(
    tmp_path: Path, clip: Path, runs: Path, tiny: list[str]
) -> None:
    config = tmp_path / "empty.yml"
    config.write_text("")
    result = run_cli("--config", config, "--source", clip, *tiny)
    result.assert_ok()
    assert RunOutputs.read(only_run_folder(runs)).run["config"]["detect"]["threshold"] == 0.5


def test_flags_override_the_config_file(
    tmp_path: Path, clip: Path, runs: Path, tiny: list[str]
) -> None:
    config = tmp_path / "mine.yml"
    config.write_text("detect:\n  threshold: 0.3\nrun:\n  max_frames: 5\n")
    result = run_cli("--config", config, "--source", clip, *tiny, "--max-frames", "3")
    result.assert_ok()
    out = RunOutputs.read(only_run_folder(runs))
    assert out.run["config"]["detect"]["threshold"] == 0.3  # from the file
    assert out.run["config"]["run"]["max_frames"] == 3  # the flag wins
    assert len(out.lines) == 3


def test_bad_flag_values_exit_2(clip: Path, runs: Path, tiny: list[str]) -> None:
    result = run_cli("--source", clip, *tiny, "--threshold", "abc")
    result.assert_failed(2, "detect.threshold", "'abc'", hint=False)
    missing = run_cli("--config", "/nonexistent/config.yml", "--source", clip, *tiny)
    missing.assert_failed(2, "/nonexistent/config.yml", "does not exist")
