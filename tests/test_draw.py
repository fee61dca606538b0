"""Drawing: exact pixels rebuilt with the same cv2 primitives at hand-computed places."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers.drawing import STYLE, expected_box, expected_label, label_size

from detector.draw import annotate, color_for, draw_hud, label_origin, text_color_on
from detector.labels import LabelMap
from detector.types import Detections

W, H = 320, 240
LABELS = LabelMap({1: "person", 18: "dog"})
FONT, SCALE, TT = STYLE.font_face, STYLE.font_scale, STYLE.text_thickness


def blank() -> np.ndarray:
    return np.full((H, W, 3), 40, np.uint8)


def dets(*rows) -> Detections:
    """rows of (x1, y1, x2, y2, score, class_id)."""
    a = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return Detections(a[:, :4], a[:, 4], a[:, 5])


def expected(img, box, cid, text, origin, thickness=STYLE.thickness) -> np.ndarray:
    return expected_box(img, box, color_for(cid), text, origin, thickness)


def test_colors_are_stable_distinct_bgr():
    # Fixed values: colours must not change between runs, processes or versions.
    assert color_for(1) == (242, 96, 36)
    assert color_for(18) == (36, 190, 242)
    assert len({color_for(i) for i in range(1, 91)}) == 90
    assert all(0 <= c <= 255 for i in range(91) for c in color_for(i))


def test_box_with_label_above():
    img = blank()
    out = annotate(img, dets((100, 80, 200, 180, 0.87, 1)), LABELS)
    assert out is img  # drawn in place
    _, lh, _ = label_size("person 87%")
    want = expected(blank(), (100, 80, 200, 180), 1, "person 87%", (100, 80 - lh))
    np.testing.assert_array_equal(img, want)
    # The label background sits right above the box's top-left corner.
    assert tuple(img[80 - 1, 100]) == color_for(1)
    assert tuple(img[80 - lh - 1, 100]) == (40, 40, 40)


def test_label_flips_inside_at_top_edge_and_clamps_at_right_edge():
    img = annotate(blank(), dets((260, 0, 319, 100, 0.5, 18)), LABELS)
    lw, lh, _ = label_size("dog 50%")
    origin = (W - lw, 0)  # inside the box at the top, shifted left to stay in the image
    assert label_origin((260, 0, 319, 100), (lw, lh), W, H) == origin
    want = expected(blank(), (260, 0, 319, 100), 18, "dog 50%", origin)
    np.testing.assert_array_equal(img, want)


def test_boxes_outside_the_image_are_clipped_and_label_stays_in():
    img = annotate(blank(), dets((-30, 230, 50, 400, 0.99, 1)), LABELS)
    _, lh, _ = label_size("person 99%")
    want = expected(blank(), (0, 230, 50, H - 1), 1, "person 99%", (0, 230 - lh))
    np.testing.assert_array_equal(img, want)


def test_carried_boxes_are_thinner():
    fresh = annotate(blank(), dets((100, 80, 200, 180, 0.6, 1)), LABELS, fresh=True)
    carried = annotate(blank(), dets((100, 80, 200, 180, 0.6, 1)), LABELS, fresh=False)
    _, lh, _ = label_size("person 60%")
    want = expected(
        blank(),
        (100, 80, 200, 180),
        1,
        "person 60%",
        (100, 80 - lh),
        thickness=STYLE.carried_thickness,
    )
    np.testing.assert_array_equal(carried, want)
    # Left edge at mid-height: the fresh 2-px line covers x=101, the carried 1-px line does not.
    assert tuple(fresh[130, 101]) == color_for(1)
    assert tuple(carried[130, 101]) == (40, 40, 40)
    assert tuple(carried[130, 100]) == color_for(1)


def test_unknown_class_and_labels_that_would_cover_each_other():
    img = annotate(
        blank(), dets((100, 100, 200, 200, 0.9, 1), (100, 100, 220, 210, 0.4, 77)), LABELS
    )
    want = blank()
    # boxes first (best first), then the labels: the best keeps its place above its box,
    # the other moves inside its box's top instead of covering it
    cv2.rectangle(want, (100, 100), (200, 200), color_for(1), STYLE.thickness, cv2.LINE_8)
    cv2.rectangle(want, (100, 100), (220, 210), color_for(77), STYLE.thickness, cv2.LINE_8)
    for text, cid, origin in (
        ("person 90%", 1, (100, 100 - label_size("person 90%")[1])),
        ("class 77 40%", 77, (100, 100)),
    ):
        expected_label(want, text, color_for(cid), origin)
    np.testing.assert_array_equal(img, want)


def test_no_detections_leaves_image_untouched():
    img = annotate(blank(), Detections.empty(), LABELS)
    np.testing.assert_array_equal(img, blank())


def test_hud_exact_pixels():
    lines = ["FPS 31.2", "inference 18.4 ms"]
    img = draw_hud(blank(), lines)
    s, m = STYLE.hud_font_scale, STYLE.hud_margin
    sizes = [cv2.getTextSize(t, FONT, s, TT) for t in lines]
    line_h = max(h + b for (_, h), b in sizes) + m // 2
    box_w = max(w for (w, _), _ in sizes) + 2 * m
    box_h = 2 * line_h + 2 * m - m // 2
    want = blank()
    cv2.rectangle(want, (0, 0), (box_w - 1, box_h - 1), (0, 0, 0), cv2.FILLED)
    for n, (t, ((_, h), _)) in enumerate(zip(lines, sizes, strict=True)):
        cv2.putText(want, t, (m, m + n * line_h + h), FONT, s, (255, 255, 255), TT, STYLE.line_type)
    np.testing.assert_array_equal(img, want)
    assert tuple(img[0, 0]) == (0, 0, 0)
    assert (img[:box_h, :box_w] > 150).all(axis=2).sum() > 50  # light text drawn
    assert (img[box_h:, :] == 40).all() and (img[:, box_w:] == 40).all()


def test_empty_hud_and_bad_images():
    np.testing.assert_array_equal(draw_hud(blank(), []), blank())
    with pytest.raises(ValueError):
        annotate(np.zeros((10, 10), np.uint8), Detections.empty())
    with pytest.raises(ValueError):
        draw_hud(np.zeros((10, 10, 3), np.uint8)[:, ::2], ["x"])


def test_text_color_contrasts():
    assert text_color_on((0, 255, 255)) == (0, 0, 0)  # yellow → black text
    assert text_color_on((128, 0, 0)) == (255, 255, 255)  # dark blue → white text


def test_labels_of_close_boxes_never_cover_each_other() -> None:
    from detector.draw import place_labels

    # three people side by side, boxes 10 px apart: labels above would stack on each other
    boxes = [(100, 100, 160, 300), (110, 104, 170, 300), (120, 108, 180, 300)]
    sizes = [(90, 18)] * 3
    corners = place_labels(boxes, sizes, 640, 480)
    rects = [(x, y, x + w, y + h) for (x, y), (w, h) in zip(corners, sizes, strict=True)]
    for i, a in enumerate(rects):
        assert a[0] >= 0 and a[2] <= 640 and a[1] >= 0 and a[3] <= 480
        for b in rects[i + 1 :]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])
    assert corners[0] == (100, 100 - 18)  # the best detection keeps its place above its box


def test_annotate_places_labels_apart_in_the_pixels() -> None:
    image = np.zeros((240, 320, 3), np.uint8)
    d = Detections(
        np.array([[50, 60, 120, 200], [54, 62, 124, 200]], np.float32),
        np.array([0.9, 0.8], np.float32),
        np.array([1, 2], np.int32),
    )
    annotate(image, d, LabelMap({1: "person", 2: "bicycle"}))
    # each label's filled background is a solid band of its colour: two bands, not one
    rows_with_label = {
        y for y in range(240) if (image[y, 52:110] == color_for(1)).all(-1).sum() > 40
    }
    rows_with_label |= {
        y for y in range(240) if (image[y, 56:114] == color_for(2)).all(-1).sum() > 40
    }
    assert len(rows_with_label) >= 2 * 15


def test_a_crowd_of_labels_is_placed_as_a_few_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past a few labels the overlap sums run vectorized: the same places either way."""
    import detector.draw as draw

    rng = np.random.default_rng(7)
    xy = rng.integers(0, 560, (80, 2))
    boxes = [(int(x), int(y), int(x) + 60, int(y) + 90) for x, y in xy]
    sizes = [(int(w), 18) for w in rng.integers(40, 120, 80)]
    crowd = draw.place_labels(boxes, sizes, 640, 640)
    assert len(crowd) > draw._VECTOR_FROM
    monkeypatch.setattr(draw, "_VECTOR_FROM", 10**9)  # plain sums only
    assert draw.place_labels(boxes, sizes, 640, 640) == crowd
