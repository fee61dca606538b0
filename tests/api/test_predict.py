"""``Detector.predict``: the known objects of the sample photos, any input form, any thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

import detector
from detector.errors import ConfigError, ModelError, SourceError


def test_dog_photo_gives_dog_bicycle_car(model, photos_dir: Path) -> None:
    dets = model.predict(cv2.imread(str(photos_dir / "dog.jpg")))
    assert isinstance(dets, detector.Detections)
    assert set(dets.labels) == {"dog", "bicycle", "car"}
    assert dets.scores.min() >= 0.8
    assert list(dets.scores) == sorted(dets.scores, reverse=True)
    assert [model.names[int(c)] for c in dets.class_ids] == list(dets.labels)
    h, w = cv2.imread(str(photos_dir / "dog.jpg")).shape[:2]
    assert (dets.xyxy >= 0).all() and (dets.xyxy[:, [0, 2]] <= w).all()
    assert (dets.xyxy[:, [1, 3]] <= h).all()


def test_path_grey_and_bgra_inputs(model, photos_dir: Path) -> None:
    image = cv2.imread(str(photos_dir / "dog.jpg"))
    from_array = model.predict(image)
    from_path = model.predict(photos_dir / "dog.jpg")
    np.testing.assert_array_equal(from_path.xyxy, from_array.xyxy)
    bgra = model.predict(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))
    np.testing.assert_array_equal(bgra.xyxy, from_array.xyxy)
    grey = model.predict(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert "dog" in set(grey.labels)


def test_bad_inputs_say_what_is_wrong(model, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        model.predict(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        model.predict(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(SourceError, match="missing"):
        model.predict(tmp_path / "nope.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(SourceError, match="decode failed"):
        model.predict(tmp_path / "bad.jpg")


def test_threads_get_the_same_answers(model, photos_dir: Path) -> None:
    photos = sorted(photos_dir.glob("*.jpg"))[:4]
    images = [cv2.imread(str(p)) for p in photos]
    alone = [model.predict(im) for im in images]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(model.predict, images * 3))
    for i, got in enumerate(together):
        want = alone[i % len(images)]
        assert list(got.labels) == list(want.labels)
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-3)


def test_to_supervision_carries_names(model, photos_dir: Path) -> None:
    sv = pytest.importorskip("supervision")
    dets = model.predict(photos_dir / "dog.jpg")
    out = dets.to_supervision()
    assert isinstance(out, sv.Detections)
    assert list(out.data["class_name"]) == list(dets.labels)
    np.testing.assert_array_equal(out.class_id, dets.class_ids)
    assert out.tracker_id is None


def test_unknown_setting_and_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'threshold'"):
        detector.Detector(treshold=0.3)
    with pytest.raises(ModelError, match="fetch") as err:
        detector.Detector(tmp_path / "none.pb")
    assert "none.pb" in str(err.value)
