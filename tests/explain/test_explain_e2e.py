"""Explain with the real default model on dog.jpg: each object's map peaks on that object."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.explain.explainer import ExplainOptions, explain_image

pytestmark = [pytest.mark.tf, pytest.mark.e2e]


def test_dog_and_bicycle_maps_peak_on_their_own_objects(
    default_graph: Path, default_labels: Path, photos_dir: Path
) -> None:
    from detector.explain.model import ExplainModel
    from detector.labels import load_label_map

    image = cv2.imread(str(photos_dir / "dog.jpg"))
    with ExplainModel(default_graph) as model:
        assert model.points.logits == "concat_2:0"  # the raw logits, past the clamp
        assert model.shape_of(model.points.fine_layer)[1:3] == (38, 38)
        assert model.shape_of(model.points.gradcam_layer)[1:3] == (19, 19)
        found = explain_image(
            model, image, ExplainOptions(methods=("gradxact",)), load_label_map(default_labels)
        )
    by_label = {e.label: e for e in found}
    dog, bike = by_label["dog"], by_label["bicycle"]
    for exp in (dog, bike):
        assert exp.anchor is not None and exp.anchor.error < 1e-5
        assert exp.results["gradxact"].stats.peak_in_box, exp.label
    p_dog = np.array(dog.results["gradxact"].stats.peak_xy)
    p_bike = np.array(bike.results["gradxact"].stats.peak_xy)
    assert np.hypot(*(p_dog - p_bike)) > 50  # two places, not one blob
