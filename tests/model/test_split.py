"""The GPU/CPU split: found from the graph, same outputs as the whole graph, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.media import noise_frames, write_video

from detector.errors import ModelError
from detector.paths import PROJECT_ROOT as ROOT

pytestmark = pytest.mark.tf

REAL_MODEL = ROOT / "models" / "ssd_mobilenet_v2_coco" / "frozen_inference_graph.pb"
OUTPUTS = ["detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"]


def _graph_def(path: Path):
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(path.read_bytes())
    return gd


def _run_whole(path: Path, images: np.ndarray) -> list[np.ndarray]:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(_graph_def(path), name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return sess.run(OUTPUTS, {"image_tensor:0": images})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from helpers.tiny_ssd import build_tiny_ssd

    return build_tiny_ssd(tmp_path_factory.mktemp("split") / "tiny.pb")


def test_split_point_is_between_heads_and_post_processing(tiny: Path) -> None:
    from detector.model.split import find_split

    point = find_split(_graph_def(tiny), OUTPUTS)
    assert point.tensors == ("box_encodings:0", "class_predictions:0")
    assert "image_tensor" in point.network_nodes
    assert not any(n.startswith("combined_non_max_suppression") for n in point.network_nodes)
    assert any("CombinedNonMaxSuppression" in n for n in point.post_nodes)


def test_split_model_matches_whole_graph(tiny: Path) -> None:
    from detector.model.split_runtime import load_split_model

    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (2, 40 + 8 * i, 56, 3), np.uint8) for i in range(4)]
    with load_split_model(tiny, device="cpu", precision="fp32") as model:
        assert model.device == "cpu" and model.precision == "fp32" and model.load_s > 0
        assert model.warm_up(64, 48, runs=2) > 0
        futures = [model.submit(x) for x in images]  # several in flight: both threads busy
        split = [f.result(timeout=60) for f in futures]
        again = model.predict(images[0])
    for x, got in zip(images, split, strict=True):
        want = _run_whole(tiny, x)
        assert float(want[3][0]) > 0  # the tiny graph does detect something
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(again, split[0], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"nms": False}, "no non-max-suppression"), ({"conv": False}, "no convolution")],
)
def test_graph_without_split_is_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    from helpers.tiny_ssd import build_tiny_ssd

    from detector.model.split_runtime import load_split_model

    path = build_tiny_ssd(tmp_path / "bad.pb", **kwargs)
    with pytest.raises(ModelError, match=message) as info:
        load_split_model(path)
    assert info.value.hint


def test_missing_output_and_unreadable_file(tmp_path: Path, tiny: Path) -> None:
    from detector.model.split import find_split
    from detector.model.split_runtime import load_split_model

    with pytest.raises(ModelError, match="nope:0"):
        find_split(_graph_def(tiny), ["nope:0"])
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\x00\x01not a graph")
    with pytest.raises(ModelError, match=r"junk\.pb"):
        load_split_model(junk)


def test_closed_model_refuses_work(tiny: Path) -> None:
    from detector.model.split_runtime import load_split_model

    model = load_split_model(tiny, device="cpu")
    model.close()
    model.close()  # idempotent
    with pytest.raises(ModelError, match="closed"):
        model.submit(np.zeros((1, 8, 8, 3), np.uint8))


@pytest.mark.e2e
def test_split_real_model_matches_whole_graph() -> None:
    import cv2

    from detector.model.split_runtime import load_split_model

    if not REAL_MODEL.exists():
        pytest.skip("default model not fetched: run `python main.py fetch`")
    photos = sorted((ROOT / "samples" / "photos").glob("*.jpg"))[:3]
    if not photos:
        pytest.skip("sample photos not fetched: run `python main.py fetch`")
    with load_split_model(REAL_MODEL, device="cpu", precision="fp32") as model:
        # the cut sits between the SSD heads and the box decoding / NMS
        assert 1 <= len(model.point.tensors) <= 4
        for photo in photos:
            rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)[None]
            got = model.predict(rgb)
            want = _run_whole(REAL_MODEL, rgb)
            assert int(got[3][0]) == int(want[3][0]) > 0
            for a, b in zip(got, want, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_app_runs_with_model_split(tmp_path: Path, tiny: Path) -> None:
    import json

    from detector.cli import main

    video = write_video(tmp_path / "clip.avi", noise_frames(6, (96, 64), seed=5), 10.0)
    cfg = tmp_path / "split.yml"
    cfg.write_text(
        f"source: {{uri: {video}}}\n"
        f"model: {{path: {tiny}, labels: null, split: true, precision: fp32}}\n"
        "detect: {threshold: 0.0}\n"
        f"output: {{dir: {tmp_path / 'runs'}, name: split}}\n",
        encoding="utf-8",
    )
    assert main(["--config", str(cfg)]) == 0
    run = tmp_path / "runs" / "split"
    lines = (run / next(p.name for p in run.iterdir() if p.suffix == ".jsonl")).read_text()
    assert len(lines.splitlines()) == 6
    record = json.loads((run / "run.json").read_text())
    assert record["config"]["model"]["split"] is True
