"""``detector.serve`` from Python: the service's model is a ``detector.Detector``, shared with the
program's own calls; a second service on the same detector; model settings fixed once it is made."""

from __future__ import annotations

import httpx
import pytest

import detector
from detector.errors import ConfigError

pytestmark = [pytest.mark.e2e, pytest.mark.tf]


def test_the_service_model_is_a_detector_and_serves_twice(service, photos_dir, tmp_path):
    model = service.detector
    assert isinstance(model, detector.Detector)
    assert service.api is not None and service.api.batcher.engine.model is model.model  # one model
    data = (photos_dir / "dog.jpg").read_bytes()
    second = detector.serve(model, port=0, block=False, output=tmp_path, threshold=0.7)
    try:
        with httpx.Client(timeout=60) as http:
            ready = http.get(f"{second.url}readyz").json()
            assert ready["ready"] is True and ready["model"]["backend"] == model.backend
            got = http.post(f"{second.url}api/detect", content=data).json()
        assert "dog" in {d["label"] for d in got["detections"]}
        assert min(d["score"] for d in got["detections"]) >= 0.7  # this service's threshold
        assert set(model.predict(photos_dir / "dog.jpg").labels) >= {"dog"}
    finally:
        second.close()
    assert set(model.predict(photos_dir / "dog.jpg").labels) >= {"dog"}  # still the caller's
    with pytest.raises(ConfigError, match=r"model\.backend"):
        detector.serve(model, port=0, block=False, backend="tf")
