"""Classic OD API exports (BatchMultiClassNonMaxSuppression) get the NumPy post-processing too:
their per-class loop's limits read from the graph, boxes clipped before suppression, the
detections equal to the TF graph's, box for box."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.classic_nms import classic_from
from helpers.post_compare import assert_same, rgb_photos, tf_outputs
from helpers.tiny_ssd import build_tiny_ssd

from detector.model.backends import load_backend_model, openvino_available
from detector.model.backends.openvino import prepare_graph
from detector.model.backends.ssd_graph import entry_of, post_roles, read_ssd_post
from detector.model.backends.ssd_post import NmsSettings
from detector.model.loader import load_model

pytestmark = [
    pytest.mark.tf,
    pytest.mark.skipif(not openvino_available(), reason="the openvino extra is missing"),
]

#: Frames of the sample video compared, spread over it (the classic loop is slow in TF).
VIDEO_FRAMES = 100


@pytest.fixture(scope="module")
def tiny_classic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("classic")
    return classic_from(build_tiny_ssd(folder / "tiny.pb", num_classes=4), folder / "classic.pb")


def _post_for(graph: Path, images: list[np.ndarray]) -> tuple:
    prep = prepare_graph(graph)
    results = tf_outputs(graph, prep, images)
    roles = [list(prep.cut).index(r) for r in post_roles(prep)]
    post = read_ssd_post(prep, [(r[roles[0]], r[roles[1]]) for r in results[:4]])
    return prep, results, roles, post


def test_a_classic_tiny_ssd_reads_its_loop_and_equals_tf(tiny_classic: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(6)]
    prep, results, roles, post = _post_for(tiny_classic, images)
    assert entry_of(prep).kind == "classic"
    assert post.nms == NmsSettings(0.5, float(np.float32(0.05)), 10, 10, False, 1.0, True)
    for out in results:
        assert_same(out[len(prep.cut) :], post.run(out[roles[0]], out[roles[1]]), 32, 32)


def test_a_classic_graph_runs_on_openvino_without_tf_post_processing(
    tiny_classic: Path, tmp_path: Path
) -> None:
    with (
        load_model(tiny_classic, device="cpu", precision="fp32") as ref,
        load_backend_model(
            "auto", tiny_classic, precision="fp32", cache_dir=tmp_path / "c"
        ) as model,
    ):
        assert model.backend_choice.backend == "openvino", model.backend_choice
        assert model.post_kind == "numpy"  # no TensorFlow session for the loop
        rng = np.random.default_rng(3)
        for image in [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(4)]:
            want, got = ref.predict(image[None]), model.predict(image[None])
            assert_same(want, got, 32, 32)


@pytest.mark.e2e
def test_a_classic_export_of_the_default_model_equals_tf_on_photos_and_video_frames(
    default_graph: Path, photos_dir: Path, sample_video: Path, tmp_path: Path
) -> None:
    graph = classic_from(default_graph, tmp_path / "classic.pb")
    frames = rgb_photos(photos_dir)
    photos = len(frames)
    cap = cv2.VideoCapture(str(sample_video))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    for index in np.linspace(0, total - 1, VIDEO_FRAMES).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, bgr = cap.read()
        assert ok, index
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    prep, results, roles, post = _post_for(graph, frames)
    assert entry_of(prep).kind == "classic" and post.nms.clip_before
    assert (post.nms.max_per_class, post.nms.max_total) == (100, 100)
    assert post.score_fn == "sigmoid" and photos >= 10
    for image, out in zip(frames, results, strict=True):
        got = post.run(out[roles[0]], out[roles[1]])
        assert_same(out[len(prep.cut) :], got, image.shape[1], image.shape[0])
