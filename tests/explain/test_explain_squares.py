"""Explain on a tiny detector whose answer is known: it fires on red and green squares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.tiny_explain import GREEN, RED, build_square_detector, squares_image

from detector.explain import METHODS
from detector.explain.explainer import ExplainOptions, explain_image

pytestmark = pytest.mark.tf

ALL = ExplainOptions(methods=METHODS, occlusion_grid=16, occlusion_patch=2, write_png=False)
RED_SQ = (8, 16, 16)  # x, y, side in pixels of the 64x64 image
GREEN_SQ = (40, 40, 16)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    from detector.explain.model import ExplainModel

    path = build_square_detector(tmp_path_factory.mktemp("sq") / "squares.pb")
    with ExplainModel(path) as m:
        yield m


def _on(square: tuple[int, int, int], peak: tuple[int, int] | None, slack: int = 1) -> bool:
    assert peak is not None
    x, y, side = square
    return x - slack <= peak[0] < x + side + slack and y - slack <= peak[1] < y + side + slack


def test_layers_found_from_the_graph(model) -> None:
    p = model.points
    assert p.logits == "class_predictions:0"  # past the clamp and the identity
    assert p.offset == 1  # the background column
    assert p.gradcam_layer == "head_8:0"  # the finest map the heads read
    assert p.fine_layer == "fine:0"  # the deepest finer map
    assert p.boxes and p.scores


def test_one_square_every_method_peaks_on_it(model) -> None:
    image = squares_image([(*RED_SQ, RED)])
    found = explain_image(model, image, ALL)
    assert found, "the red square was not detected"
    assert {e.class_id for e in found} == {1}
    for exp in found:
        assert exp.anchor is not None and exp.anchor.error < 1e-4
        for method in METHODS:
            result = exp.results[method]
            assert _on(RED_SQ, result.stats.peak_xy), (method, exp.box_xyxy, result.stats)
            assert result.heat is not None and result.heat.shape == (64, 64)


def test_two_squares_each_class_peaks_on_its_own(model) -> None:
    image = squares_image([(*RED_SQ, RED), (*GREEN_SQ, GREEN)])
    found = explain_image(model, image, ALL)
    assert {e.class_id for e in found} == {1, 2}
    for exp in found:
        own, other = (RED_SQ, GREEN_SQ) if exp.class_id == 1 else (GREEN_SQ, RED_SQ)
        for method in METHODS:
            peak = exp.results[method].stats.peak_xy
            assert _on(own, peak) and not _on(other, peak, slack=0), (method, exp.class_id, peak)
        # the instance methods see nothing of the other square
        for method in ("gradxact", "occlusion"):
            heat = exp.results[method].heat
            x, y, side = other
            assert heat[y : y + side, x : x + side].max() < 0.05 * heat.max(), method


def test_gradxact_points_into_the_anchor_cell(model) -> None:
    """Gradient x activation at the fine map is an instance map: the peak lies in the box."""
    image = squares_image([(*RED_SQ, RED)])
    for exp in explain_image(model, image, ALL):
        assert exp.results["gradxact"].stats.peak_in_box, exp.box_xyxy
        assert exp.results["gradxact"].stats.in_box_share > 0.6  # bilinear stretch spills a little


def test_no_detection_gives_no_entry(model) -> None:
    assert explain_image(model, squares_image([]), ALL) == []


def test_detection_k_selects_one(model) -> None:
    image = squares_image([(*RED_SQ, RED), (*GREEN_SQ, GREEN)])
    every = explain_image(model, image, ExplainOptions(write_png=False))
    one = explain_image(model, image, ExplainOptions(detection=1, write_png=False))
    assert len(one) == 1 and one[0].index == 1
    assert one[0].score == every[1].score and np.allclose(one[0].box_xyxy, every[1].box_xyxy)
    assert explain_image(model, image, ExplainOptions(detection=99, write_png=False)) == []


def test_layer_by_name_and_unknown_layer(tmp_path: Path) -> None:
    from detector.errors import ModelError
    from detector.explain.model import ExplainModel

    path = build_square_detector(tmp_path / "sq.pb")
    with ExplainModel(path, layer="fine") as m:
        assert m.points.gradcam_layer == "fine:0"
        found = explain_image(
            m, squares_image([(*RED_SQ, RED)]), ExplainOptions(methods=("gradcam",))
        )
        assert all(_on(RED_SQ, e.results["gradcam"].stats.peak_xy) for e in found)
    with pytest.raises(ModelError, match="head_88") as err:
        ExplainModel(path, layer="head_88")
    assert "head_8" in str(err.value)


def test_explain_outputs_written_and_used(tmp_path: Path) -> None:
    """A graph with its own explanation outputs gives the same maps as run-time gradients."""
    from detector.explain.export import write_explain_outputs
    from detector.explain.model import ExplainModel
    from detector.model.graphfile import read_graph_def

    src = build_square_detector(tmp_path / "sq.pb")
    out = tmp_path / "sq_explain.pb"
    report = write_explain_outputs(src, out)
    assert report["explain_layer"] == "head_8:0" and report["explain_fine_layer"] == "fine:0"
    assert report["explain_max_diff"] is not None and report["explain_max_diff"] < 1e-4
    names = {n.name for n in read_graph_def(out).node}  # passes the allowlist check
    assert {"explain/grad", "explain/feature_map", "explain/anchor"} <= names
    image = squares_image([(*RED_SQ, RED), (*GREEN_SQ, GREEN)])
    with ExplainModel(src) as plain, ExplainModel(out) as exported:
        assert exported.exported and not plain.exported
        a = explain_image(plain, image, ALL)
        b = explain_image(exported, image, ALL)
    assert [e.class_id for e in a] == [e.class_id for e in b]
    for ea, eb in zip(a, b, strict=True):
        for method in METHODS:
            ha, hb = ea.results[method].heat, eb.results[method].heat
            assert np.allclose(ha, hb, atol=1e-5 * max(1.0, float(ha.max())))


def test_explain_outputs_leave_detections_alone(tmp_path: Path) -> None:
    from detector.explain.export import write_explain_outputs
    from detector.model.loader import load_model

    src = build_square_detector(tmp_path / "sq.pb")
    out = tmp_path / "sq_explain.pb"
    write_explain_outputs(src, out, verify=False)
    rgb = squares_image([(*RED_SQ, RED)])[:, :, ::-1][None]
    with load_model(src) as m1, load_model(out) as m2:
        for x, y in zip(m1.predict(rgb), m2.predict(rgb), strict=True):
            assert np.array_equal(x, y)
