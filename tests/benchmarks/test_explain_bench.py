"""The explain measurement runs end to end (on the square detector) and prints its table."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from helpers.tiny_explain import GREEN, RED, build_square_detector, squares_image

pytestmark = pytest.mark.tf


def test_explain_bench_table_and_json(tmp_path: Path) -> None:
    from detector.benchmarks.explain import explain_bench, format_table

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), squares_image([(8, 16, 16, RED), (40, 40, 16, GREEN)]))
    cv2.imwrite(str(photos / "b.png"), squares_image([(24, 24, 16, GREEN)]))
    model = build_square_detector(tmp_path / "sq.pb")
    result = explain_bench(model, photos, overlays=tmp_path / "png")
    json.dumps(result)  # plain JSON types only
    n = len(result["detections"])
    assert n > 0 and result["images"] == 2 and result["dog"] is None
    for method, s in result["methods"].items():
        assert s["detections"] == n, method
        assert 0 <= s["peak_in_box"] <= n and s["median_ms_per_detection"] >= 0
    assert result["methods"]["gradxact"]["peak_in_box"] == n
    table = format_table(result)
    assert "| gradxact | " in table and "| occlusion | " in table
    assert len(list((tmp_path / "png").glob("*.png"))) == 3 * n
