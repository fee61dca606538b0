"""The renderer's share of the fault rows: a live source's link state on the HUD, and class
ids the label map does not hold warned about once and counted."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from detector.draw import DrawStyle, draw_hud
from detector.labels import LabelMap
from detector.pipeline.render import Renderer, RenderOptions
from detector.types import Detections, Frame, FrameResult


def _result(index: int, class_ids: list[int]) -> FrameResult:
    n = len(class_ids)
    boxes = np.tile(np.array([[10.0, 10.0, 40.0, 40.0]], np.float32), (n, 1))
    dets = Detections(boxes, np.full(n, 0.9, np.float32), np.array(class_ids, np.int32))
    frame = Frame(index, 0.0, np.zeros((120, 320, 3), np.uint8))
    return FrameResult(frame, dets, True, index, 5.0)


def test_hud_shows_the_source_state_only_while_not_connected() -> None:
    states = iter([None, "reconnecting 2"])
    render = Renderer(LabelMap({1: "a"}), [], RenderOptions(hud=True), status=lambda: next(states))
    healthy = render.render(_result(0, []))
    reconnecting = render.render(_result(1, []))
    # The first frame's HUD has two lines; redrawn with the same primitives, it matches.
    expected = np.zeros_like(healthy)
    draw_hud(expected, ["FPS 0.0", "inference 5.0 ms"], DrawStyle())
    two_lines_h = int(np.flatnonzero(expected.any(axis=(1, 2))).max()) + 1
    assert np.array_equal(healthy[: two_lines_h + 20], expected[: two_lines_h + 20])
    # While reconnecting a third line is drawn below them.
    assert reconnecting[two_lines_h : two_lines_h + 20, :60].any()


def test_class_ids_missing_from_the_map_are_warned_once_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "detector.pipeline.render")
    render = Renderer(LabelMap({1: "person"}), [], RenderOptions(hud=False))
    for i in range(3):
        render.render(_result(i, [1, 7, 7]))
    assert render.unknown_classes == {7: 6}
    assert caplog.text.count("class id 7 is not in the label map") == 1


def test_no_label_map_counts_nothing() -> None:
    render = Renderer(LabelMap({}), [], RenderOptions(hud=False))
    render.render(_result(0, [3]))
    assert render.unknown_classes == {}
