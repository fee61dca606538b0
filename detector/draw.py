"""Drawing on frames with OpenCV: labelled boxes in stable per-class colours, and a HUD.

Images are BGR ``uint8`` ``(H, W, 3)``, drawn on in place; boxes are pixel ``xyxy``.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from detector.labels import LabelMap
from detector.types import Detections

Color = tuple[int, int, int]  # BGR, 0..255

_GOLDEN = 0.618033988749895


@dataclass(frozen=True)
class DrawStyle:
    """How boxes, labels and the HUD look.

    Attributes:
        thickness: Box line width in pixels for fresh detections (the model ran on this frame).
        carried_thickness: Box line width for boxes carried from an earlier frame
            (``detect_every`` > 1): thinner, so fresh and carried boxes can be told apart.
        font_face: An OpenCV Hershey font.
        font_scale: Label text scale.
        text_thickness: Label text stroke width.
        padding: Pixels between label text and its background's edge.
        line_type: OpenCV line type for text (``cv2.LINE_AA`` smooth, ``cv2.LINE_8`` crisp).
        show_scores: Append the score as a percentage (``person 87%``).
        color_by_track: Colour a tracked box by its track id (each object keeps its own
            colour) instead of by its class; labels of tracked boxes show ``#id`` either way.
        hud_font_scale: HUD text scale.
        hud_text_color: HUD text colour, BGR.
        hud_background: HUD background colour, BGR.
        hud_margin: Pixels around the HUD text.
    """

    thickness: int = 2
    carried_thickness: int = 1
    font_face: int = cv2.FONT_HERSHEY_SIMPLEX
    font_scale: float = 0.5
    text_thickness: int = 1
    padding: int = 3
    line_type: int = cv2.LINE_AA
    show_scores: bool = True
    color_by_track: bool = True
    hud_font_scale: float = 0.55
    hud_text_color: Color = (255, 255, 255)
    hud_background: Color = (0, 0, 0)
    hud_margin: int = 6


@lru_cache(maxsize=1024)
def color_for(class_id: int) -> Color:
    """A stable BGR colour for a class id, the same in every run and process.

    Hues step around the colour wheel by the golden ratio, so neighbouring ids get
    well-separated colours; saturation and value are fixed for contrast with labels.
    """
    hue = (int(class_id) * _GOLDEN) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return (round(b * 255), round(g * 255), round(r * 255))


def text_color_on(background: Color) -> Color:
    """Black or white, whichever reads better on ``background`` (BGR)."""
    b, g, r = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def box_pixels(
    xyxy: np.ndarray | Sequence[float], width: int, height: int
) -> tuple[int, int, int, int]:
    """A float pixel box → integer corners clipped to the image (inclusive)."""
    x1, y1, x2, y2 = (round(float(v)) for v in xyxy)
    return (
        min(max(x1, 0), width - 1),
        min(max(y1, 0), height - 1),
        min(max(x2, 0), width - 1),
        min(max(y2, 0), height - 1),
    )


def label_origin(
    box: tuple[int, int, int, int], size: tuple[int, int], width: int, height: int
) -> tuple[int, int]:
    """Top-left corner of a label of ``size`` (w, h) for ``box``, kept inside the image.

    Above the box when there is room; else inside the box at its top (the box touches the
    image's top edge); shifted left so it never crosses the right edge.
    """
    x1, y1 = box[0], box[1]
    lw, lh = size
    y = y1 - lh if y1 - lh >= 0 else y1
    y = max(0, min(y, height - lh))
    x = max(0, min(x1, width - lw))
    return x, y


def place_labels(
    boxes: Sequence[tuple[int, int, int, int]],
    sizes: Sequence[tuple[int, int]],
    width: int,
    height: int,
) -> list[tuple[int, int]]:
    """Top-left corners for the labels of ``boxes`` so that no two labels cover each other.

    Labels are placed in the order given (pass the best detection first: it gets its
    preferred place, :func:`label_origin`); each later one takes the first free place among
    places that keep it on its box: its preferred place, inside its box at the top, stacked
    one label above the preferred place, below its box, inside at the bottom. When every
    place is taken (a crowd), the one overlapping least wins: a label never strays from its
    box. The one placement home for every
    drawn frame (the video, the images, the window and the web page all show these frames).
    """
    placed: list[tuple[int, int, int, int]] = []  # x1, y1, x2, y2 of the labels placed so far
    out: list[tuple[int, int]] = []
    for box, (lw, lh) in zip(boxes, sizes, strict=True):
        best: tuple[int, tuple[int, int]] | None = None
        for x, y in _candidates(box, (lw, lh), width, height):
            cost = _overlap(x, y, x + lw, y + lh, placed)
            if best is None or cost < best[0]:
                best = (cost, (x, y))
            if cost == 0:
                break
        assert best is not None
        out.append(best[1])
        placed.append((best[1][0], best[1][1], best[1][0] + lw, best[1][1] + lh))
    return out


def _candidates(
    box: tuple[int, int, int, int], size: tuple[int, int], width: int, height: int
) -> list[tuple[int, int]]:
    x1, y1, _, y2 = box
    lw, lh = size
    x = max(0, min(x1, width - lw))
    first = label_origin(box, size, width, height)
    ys = [first[1], y1, first[1] - lh, y2 + 1, y2 - lh + 1]  # each one touching its box
    seen: set[int] = set()
    out = []
    for y in ys:
        y = max(0, min(y, height - lh))
        if y not in seen:
            seen.add(y)
            out.append((first[0] if y == first[1] else x, y))
    return out


#: Labels placed before a vectorized overlap pass pays off (NumPy's per-call cost is a few
#: microseconds; a frame usually holds a handful of labels).
_VECTOR_FROM = 24


def _overlap(
    x1: int, y1: int, x2: int, y2: int, placed: Sequence[tuple[int, int, int, int]]
) -> int:
    """Pixels the rectangle shares with the ``placed`` rectangles (x1, y1, x2, y2), summed:
    in plain Python for a few, cheaper than NumPy's per-call cost; in one vectorized pass
    for a crowd."""
    if len(placed) >= _VECTOR_FROM:
        rects = np.asarray(placed)
        w = np.minimum(x2, rects[:, 2]) - np.maximum(x1, rects[:, 0])
        h = np.minimum(y2, rects[:, 3]) - np.maximum(y1, rects[:, 1])
        return int((np.clip(w, 0, None) * np.clip(h, 0, None)).sum())
    total = 0
    for px1, py1, px2, py2 in placed:
        w = min(x2, px2) - max(x1, px1)
        h = min(y2, py2) - max(y1, py1)
        if w > 0 and h > 0:
            total += w * h
    return total


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a BGR uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if not image.flags.c_contiguous:
        raise ValueError("image must be C-contiguous to be drawn on in place")


def annotate(
    image: np.ndarray,
    detections: Detections,
    labels: LabelMap | None = None,
    style: DrawStyle = DrawStyle(),
    fresh: bool = True,
) -> np.ndarray:
    """Draw boxes and ``name 87%`` labels (``name #7 87%`` when tracked) on ``image`` in place.

    Args:
        image: BGR ``uint8`` ``(H, W, 3)``, C-contiguous; modified in place.
        detections: Pixel ``xyxy`` boxes with scores, class ids and optional track ids.
        labels: Names for class ids (``None``: ``class N``).
        style: Line widths, font, padding.
        fresh: False when the boxes are carried from an earlier frame: drawn with
            ``style.carried_thickness`` instead of ``style.thickness``.

    Returns:
        ``image``.
    """
    _check_image(image)
    height, width = image.shape[:2]
    labels = labels if labels is not None else LabelMap({})
    thickness = style.thickness if fresh else style.carried_thickness
    track_ids = detections.track_ids
    order = np.argsort(-detections.scores, kind="stable")  # best first: its label's place
    # Python numbers once, not a NumPy scalar per value
    xyxy, scores = detections.xyxy[order].tolist(), detections.scores[order].tolist()
    cids = detections.class_ids[order].tolist()
    tids = track_ids[order].tolist() if track_ids is not None else [-1] * len(cids)
    boxes, texts, colors = [], [], []
    for xyxy_i, score, cid, tid in zip(xyxy, scores, cids, tids, strict=True):
        box = box_pixels(xyxy_i, width, height)
        color = color_for(tid) if tid >= 0 and style.color_by_track else color_for(cid)
        cv2.rectangle(image, box[:2], box[2:], color, thickness, cv2.LINE_8)
        text = labels.name(cid) if tid < 0 else f"{labels.name(cid)} #{tid}"
        if style.show_scores:
            text = f"{text} {round(score * 100)}%"
        boxes.append(box)
        texts.append(text)
        colors.append(color)
    sizes = [_label_size(text, style) for text in texts]
    corners = place_labels(boxes, [(w, h) for w, h, _ in sizes], width, height)
    for text, color, size, corner in zip(texts, colors, sizes, corners, strict=True):
        _draw_label(image, text, corner, size, color, style)
    return image


def _label_size(text: str, style: DrawStyle) -> tuple[int, int, int]:
    """Width and height of a label's background, and its text height."""
    (tw, th), baseline = cv2.getTextSize(
        text, style.font_face, style.font_scale, style.text_thickness
    )
    return tw + 2 * style.padding, th + baseline + 2 * style.padding, th


def _draw_label(
    image: np.ndarray,
    text: str,
    corner: tuple[int, int],
    size: tuple[int, int, int],
    color: Color,
    style: DrawStyle,
) -> None:
    (x, y), (lw, lh, th), pad = corner, size, style.padding
    cv2.rectangle(image, (x, y), (x + lw - 1, y + lh - 1), color, cv2.FILLED)
    cv2.putText(
        image,
        text,
        (x + pad, y + pad + th),
        style.font_face,
        style.font_scale,
        text_color_on(color),
        style.text_thickness,
        style.line_type,
    )


def draw_hud(image: np.ndarray, lines: Sequence[str], style: DrawStyle = DrawStyle()) -> np.ndarray:
    """Draw ``lines`` (e.g. ``"FPS 31.2"``, ``"inference 18.4 ms"``) top-left, in place.

    Args:
        image: BGR ``uint8`` ``(H, W, 3)``, C-contiguous; modified in place.
        lines: Text lines, top to bottom; empty → nothing drawn.
        style: HUD font scale, colours and margin.
    """
    _check_image(image)
    if not lines:
        return image
    m = style.hud_margin
    sizes = [
        cv2.getTextSize(t, style.font_face, style.hud_font_scale, style.text_thickness)
        for t in lines
    ]
    line_h = max(h + b for (_, h), b in sizes) + m // 2
    box_w = max(w for (w, _), _ in sizes) + 2 * m
    box_h = line_h * len(lines) + 2 * m - m // 2
    cv2.rectangle(image, (0, 0), (box_w - 1, box_h - 1), style.hud_background, cv2.FILLED)
    for n, (text, ((_, h), _)) in enumerate(zip(lines, sizes, strict=True)):
        cv2.putText(
            image,
            text,
            (m, m + n * line_h + h),
            style.font_face,
            style.hud_font_scale,
            style.hud_text_color,
            style.text_thickness,
            style.line_type,
        )
    return image


def draw_region(
    image: np.ndarray,
    points: Sequence[tuple[int, int]],
    text: str,
    color: Color,
    style: DrawStyle = DrawStyle(),
    *,
    active: bool = False,
) -> np.ndarray:
    """Outline a polygon (a zone) with a label at its first point; thicker when ``active``.

    Args:
        image: BGR ``uint8`` ``(H, W, 3)``, C-contiguous; modified in place.
        points: The polygon's corners in pixels.
        text: The label (e.g. ``doorway 2``); empty draws none.
        color: BGR.
        active: Something is inside: a thicker outline.
    """
    _check_image(image)
    pts = np.array(points, np.int32).reshape(-1, 1, 2)
    cv2.polylines(image, [pts], True, color, style.thickness + (2 if active else 0), cv2.LINE_AA)
    if text:
        x, y = (int(v) for v in points[0])
        _label_at(image, text, (x, y), color, style)
    return image


def draw_tripwire(
    image: np.ndarray,
    start: tuple[int, int],
    end: tuple[int, int],
    text: str,
    color: Color,
    style: DrawStyle = DrawStyle(),
) -> np.ndarray:
    """Draw a counting line from ``start`` to ``end`` (an arrow tip marks ``end``) and a label
    at its middle (e.g. ``road in 3 out 1``). Image and points as :func:`draw_region`."""
    _check_image(image)
    cv2.arrowedLine(image, start, end, color, style.thickness, cv2.LINE_AA, tipLength=0.03)
    if text:
        mx, my = (start[0] + end[0]) // 2, (start[1] + end[1]) // 2
        _label_at(image, text, (mx, my), color, style)
    return image


def _label_at(
    image: np.ndarray, text: str, point: tuple[int, int], color: Color, style: DrawStyle
) -> None:
    """A label placed as a box's label would be for a box reduced to ``point``."""
    size = _label_size(text, style)
    x, y = point
    h, w = image.shape[:2]
    corner = place_labels([(x, y, x, y)], [size[:2]], w, h)[0]
    _draw_label(image, text, corner, size, color, style)
