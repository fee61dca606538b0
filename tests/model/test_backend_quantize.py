"""int8 through NNCF behind the parity gate: kept when it agrees with TF, refused with figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.cli_run import run_cli
from helpers.media import grey_index, image_folder, make_video
from helpers.tiny_ssd import build_tiny_ssd

from detector.errors import ConfigError, ModelError
from detector.model.backends.openvino import int8_rest_precision, load_openvino_model
from detector.model.backends.quantize import QuantizationRefused, quantize, read_images

pytestmark = pytest.mark.tf


def _folder(path: Path, n: int, seed: int, size: tuple[int, int] = (48, 64)) -> Path:
    """``n`` noisy images with a few flat rectangles (PNG), seeded."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        y, x = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
        image[y : y + size[0] // 3, x : x + size[1] // 3] = rng.integers(0, 256, 3)
        images.append(image)
    return image_folder(path, images)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "g").mkdir()
    return build_tiny_ssd(tmp_path / "g" / "tiny.pb")


def test_read_images_from_folders_and_videos(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "imgs", 5, seed=0)
    assert len(read_images(folder)) == 5
    picked = read_images(folder, 2)
    assert len(picked) == 2 and picked[0].shape == (48, 64, 3)
    video = make_video(tmp_path / "v.avi", n=20)
    frames = read_images(video, 4)
    assert len(frames) == 4
    # spread over the video: frames 0, 6, 12 and 19 (frame i has grey level STEP * i)
    assert [grey_index(f) for f in frames] == [0, 6, 12, 19]
    with pytest.raises(ConfigError, match="does not exist"):
        read_images(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        read_images(tmp_path / "empty")


def test_quantized_tiny_ssd_kept_when_it_passes(tiny: Path, tmp_path: Path) -> None:
    calib = _folder(tmp_path / "calib", 24, seed=1)
    held = _folder(tmp_path / "held", 8, seed=2)
    cache = tmp_path / "c"
    result = quantize(tiny, calib, held, frames=24, cache_dir=cache, threshold=0.1, min_ratio=0.5)
    assert result.parity.passed and result.parity.reference > 0
    assert result.ir.is_file() and result.ir.name.endswith(".int8.xml")
    doc = json.loads(result.report_path.read_text())
    assert doc["parity"]["passed"] is True and doc["calibration_frames"] == 24
    assert doc["inference_precision"] == int8_rest_precision()  # the rest runs as gated
    assert not list(cache.glob("*candidate*"))
    with load_openvino_model(tiny, precision="int8", cache_dir=cache) as int8:
        assert int8.ir == result.ir and int8.precision == "int8"
        out = int8.predict(read_images(held)[0][None])
        assert out[0].shape[-1] == 4


def test_the_gate_refuses_with_the_figures_and_keeps_nothing(tiny: Path, tmp_path: Path) -> None:
    calib = _folder(tmp_path / "calib", 8, seed=1)
    held = _folder(tmp_path / "held", 4, seed=2)
    cache = tmp_path / "c"
    with pytest.raises(QuantizationRefused) as err:
        # a gate no model can pass: more matches than detections
        quantize(tiny, calib, held, frames=8, cache_dir=cache, threshold=0.1, min_ratio=1.01)
    report = err.value.report
    assert not report.passed and report.images == 4
    assert f"{report.matched}/" in str(err.value) and "FAIL" in str(err.value)
    assert not list(cache.glob("*.int8*"))
    with pytest.raises(ModelError, match="no int8 model"):
        load_openvino_model(tiny, precision="int8", cache_dir=cache)


def test_gate_images_must_be_held_apart(tiny: Path, tmp_path: Path) -> None:
    same = _folder(tmp_path / "same", 3, seed=1)
    with pytest.raises(ConfigError, match="held apart"):
        quantize(tiny, same, same, cache_dir=tmp_path / "c")


@pytest.mark.e2e
def test_real_model_calibrated_on_black_frames_is_refused(
    default_graph: Path, photos_dir: Path, tmp_path: Path
) -> None:
    black = image_folder(tmp_path / "black", [np.zeros((300, 300, 3), np.uint8)] * 6)
    result = run_cli(
        "model",
        "quantize",
        default_graph,
        "--calibration",
        black,
        "--held-out",
        photos_dir,
        "--cache-dir",
        tmp_path / "c",
        timeout_s=600,
    )
    result.assert_failed(1, "fails the parity gate", "matched", "FAIL")
    assert not list((tmp_path / "c").glob("*.int8*"))
