"""The ``model`` command through ``detector.cli.main``: output, messages and exit codes."""

from __future__ import annotations

import json
import shutil

import pytest

from detector.cli import main

pytestmark = pytest.mark.tf

SUBCOMMANDS = ("inspect", "freeze", "export-weights", "unfreeze", "convert", "checkpoints")


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_has_help_with_examples(sub, capsys):
    with pytest.raises(SystemExit) as done:
        main(["model", sub, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"python main.py model {sub}" in out


def test_model_alone_prints_help_and_exits_2(capsys):
    assert main(["model"]) == 2
    assert "export-weights" in capsys.readouterr().out


def test_inspect_json_lists_variables(v1v2, capsys):
    prefix = v1v2()
    assert main(["model", "inspect", str(prefix.parent), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["variables"] == {"v1": [1], "v2": [1]}
    assert main(["model", "inspect", str(prefix), "--tensor", "v2"]) == 0
    assert "tensor v2  float32  [1]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.parent / "model.ckpt-100.data-00000-of-00001", "one data shard"),
        (lambda p: p.parent / "model.ckpt-5", "no checkpoint at"),
        (lambda p: p.parent / "nothing-here", "does not exist"),
    ],
    ids=["data-shard", "wrong-step", "missing"],
)
def test_inspect_errors_exit_1_with_a_message(v1v2, capsys, make, message):
    path = make(v1v2())
    assert main(["model", "inspect", str(path)]) == 1
    assert message in capsys.readouterr().err


def test_freeze_then_inspect_the_pb(v1v2, tmp_path, capsys):
    prefix = v1v2()
    out = tmp_path / "f.pb"
    assert main(["model", "freeze", str(prefix.parent), "-o", str(out), "--outputs", "add"]) == 0
    assert "frozen_variables: 2" in capsys.readouterr().out
    assert main(["model", "inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["graph"]["outputs"][0] == {"name": "add:0", "dtype": "float32", "shape": [1]}
    assert main(["model", "freeze", str(prefix), "-o", str(out), "--outputs", "nope"]) == 1
    assert "has no node 'nope'" in capsys.readouterr().err


def test_convert_tflite_flags_rejected_for_other_sources(v1v2, tmp_path, capsys):
    code = main(["model", "convert", str(v1v2()), "-o", str(tmp_path / "x.pb"), "--nms-iou", "0.5"])
    assert code == 2 and "--nms-iou only apply to a .tflite" in capsys.readouterr().err


def test_convert_needs_a_target(v1v2, tmp_path, capsys):
    assert main(["model", "convert", str(v1v2()), "-o", str(tmp_path / "out")]) == 2
    assert "--to pb|checkpoint|saved_model" in capsys.readouterr().err


def test_checkpoints_lists_and_repairs_a_copied_folder(v1v2, tmp_path, capsys):
    original = v1v2().parent
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    assert main(["model", "checkpoints", str(copy)]) == 1
    assert "POINTS ELSEWHERE (run with --repair)" in capsys.readouterr().out
    assert main(["model", "checkpoints", str(copy), "--repair", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["repaired"][0]["new"] == "model.ckpt-100"
    assert result["state_file"]["latest"]["path"] == "model.ckpt-100"
    assert main(["model", "checkpoints", str(copy)]) == 0
    (copy / "checkpoint").unlink()
    assert main(["model", "checkpoints", str(copy)]) == 0
    assert "highest step: model.ckpt-100" in capsys.readouterr().out


def test_unsafe_graph_refused_unless_allowed(tf, tmp_path, capsys):
    with tf.Graph().as_default() as graph:
        tf.identity(tf.io.read_file("/etc/hostname"), name="leak")
    pb = tmp_path / "evil.pb"
    pb.write_bytes(graph.as_graph_def().SerializeToString())
    assert main(["model", "export-weights", str(pb), "-o", str(tmp_path / "w.npz")]) == 1
    err = capsys.readouterr().err
    assert "ReadFile" in err and "--allow-unsafe-ops" in err
    # inspect shows the refusal but still describes the file (nothing is imported), and
    # exits 3 (documented in its --help): the file would be refused when loaded.
    assert main(["model", "inspect", str(pb)]) == 3
    done = capsys.readouterr()
    assert "safety: refusing graph" in done.out and "refused: " in done.err
    assert main(["model", "inspect", str(pb), "--allow-unsafe-ops"]) == 0


@pytest.mark.e2e
def test_inspect_real_default_model(default_graph, capsys):
    assert main(["model", "inspect", str(default_graph), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    graph = info["graph"]
    assert info["safety"] == "ok"
    assert graph["inputs"] == [
        {"name": "image_tensor:0", "dtype": "uint8", "shape": [None, None, None, 3]}
    ]
    outputs = {o["name"]: o["shape"] for o in graph["outputs"]}
    assert list(outputs) == [
        "detection_boxes:0",
        "detection_scores:0",
        "detection_classes:0",
        "num_detections:0",
    ]
    assert outputs["detection_boxes:0"][-1] == 4
    assert graph["ops"]["CombinedNonMaxSuppression"] == 1
    assert graph["parameters"] > 5_000_000


def test_convert_dispatches_a_tflite_ssd_with_its_options(tmp_path, capsys):
    from helpers.tiny_tflite import build_tiny_ssd

    src = tmp_path / "ssd.bin"  # no .tflite suffix: found from the TFL3 identifier
    src.write_bytes(build_tiny_ssd())
    assert main(["model", "inspect", str(src), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "tflite" and info["ops"]["TFLite_Detection_PostProcess"] == 1
    out = tmp_path / "ssd.pb"
    assert (
        main(
            [
                "model",
                "convert",
                str(src),
                "-o",
                str(out),
                "--nms-iou",
                "0.5",
                "--max-detections",
                "5",
                "--weights",
                "uint8",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["options"]["nms_iou"] == 0.5 and report["options"]["max_detections"] == 5
    assert report["options"]["weights"] == "uint8"
    assert main(["model", "inspect", str(out), "--json"]) == 0
    graph = json.loads(capsys.readouterr().out)["graph"]
    shapes = {o["name"]: o["shape"] for o in graph["outputs"]}
    assert shapes["detection_boxes:0"] == [None, 5, 4]
    assert (
        main(["model", "convert", str(src), "-o", str(tmp_path / "x"), "--to", "checkpoint"]) == 2
    )
