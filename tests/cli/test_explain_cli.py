"""``python main.py explain`` and ``model convert --explain-outputs`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from helpers.cli_run import run_cli
from helpers.tiny_explain import GREEN, RED, build_square_detector, squares_image

pytestmark = pytest.mark.tf

LABELS = 'item { id: 1 name: "red" }\nitem { id: 2 name: "green" }\n'


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("explain_cli")
    photos = root / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), squares_image([(8, 16, 16, RED), (40, 40, 16, GREEN)]))
    cv2.imwrite(str(photos / "b.png"), squares_image([]))
    (root / "labels.pbtxt").write_text(LABELS)
    return {
        "root": root,
        "photos": photos,
        "model": build_square_detector(root / "squares.pb"),
        "labels": root / "labels.pbtxt",
    }


def _explain(setup: dict[str, Path], *args: str | Path):
    return run_cli("explain", *args, "--model", setup["model"], "--labels", setup["labels"])


def test_folder_writes_pngs_and_json(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _explain(setup, setup["photos"], "-o", out)
    r.assert_ok()
    doc = json.loads((out / "explain.json").read_text())
    assert [i["image"] for i in doc["images"]] == ["a.png", "b.png"]
    dets = doc["images"][0]["detections"]
    assert {d["label"] for d in dets} == {"red", "green"}
    assert doc["images"][1]["detections"] == []
    for d in dets:
        assert d["method"] == "gradxact" and d["peak_in_box"] is True
        x1, y1, x2, y2 = d["box_xyxy"]
        assert x1 <= d["peak_xy"][0] <= x2 and y1 <= d["peak_xy"][1] <= y2
        assert 0.0 < d["heat_in_box"] <= 1.0 and d["score"] >= 0.5
        png = cv2.imread(str(out / d["png"]))
        assert png is not None and png.shape == (64, 64, 3)
    assert f"{len(dets)} detection(s) in 2 image(s)" in r.out


def test_one_detection_all_methods(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "one"
    r = _explain(setup, setup["photos"] / "a.png", "--detection", "0", "--method", "all", "-o", out)
    r.assert_ok()
    (det,) = json.loads((out / "explain.json").read_text())["images"][0]["detections"]
    assert set(det["methods"]) == {"gradxact", "gradcam", "occlusion"}
    assert sorted(p.name for p in out.glob("*.png")) == sorted(
        m["png"] for m in det["methods"].values()
    )


def test_bad_input_is_a_clear_error(setup: dict[str, Path], tmp_path: Path) -> None:
    a = setup["photos"] / "a.png"
    _explain(setup, tmp_path / "missing.png", "-o", tmp_path / "x").assert_failed(1, "missing.png")
    _explain(setup, a, "--layer", "head_88", "-o", tmp_path / "y").assert_failed(
        1, "head_88", "head_8"
    )
    _explain(setup, a, "--alpha", "2").assert_failed(2, "--alpha", hint=False)
    _explain(setup, a, "--colormap", "nope").assert_failed(2, "nope", "inferno")
    video = tmp_path / "clip.avi"
    video.write_bytes(b"not really")
    _explain(setup, video).assert_failed(2, "explain reads images")


def test_convert_with_explain_outputs(setup: dict[str, Path], tmp_path: Path) -> None:
    pb = tmp_path / "explainable.pb"
    r = run_cli("model", "convert", setup["model"], "-o", pb, "--explain-outputs", "--json")
    r.assert_ok()
    report = json.loads(r.out)
    assert report["explain_layer"] == "head_8:0"
    assert report["explain_max_diff"] < 1e-4
    out = tmp_path / "out"
    r = run_cli("explain", setup["photos"] / "a.png", "--model", pb, "-o", out)
    r.assert_ok()
    doc = json.loads((out / "explain.json").read_text())
    assert doc["explain_outputs_in_graph"] is True
    assert all(d["peak_in_box"] for d in doc["images"][0]["detections"])
    run_cli(
        "model",
        "convert",
        setup["model"],
        "-o",
        tmp_path / "sm",
        "--to",
        "saved_model",
        "--explain-outputs",
    ).assert_failed(2, "--explain-outputs")


def test_freeze_with_explain_outputs(setup: dict[str, Path], tmp_path: Path) -> None:
    from detector.tools.unfreeze import unfreeze

    unfreeze(setup["model"], tmp_path / "ckpt", verify=False)  # the detector as a checkpoint
    pb = tmp_path / "frozen.pb"
    r = run_cli("model", "freeze", tmp_path / "ckpt", "-o", pb, "--explain-outputs", "--json")
    r.assert_ok()
    report = json.loads(r.out)
    assert report["explain_fine_layer"] == "fine:0" and report["explain_max_diff"] < 1e-4
