"""The drawings a test expects, rebuilt with the same cv2 primitives at hand-computed places."""

from __future__ import annotations

import cv2
import numpy as np

from detector.draw import DrawStyle, text_color_on

STYLE = DrawStyle()


def label_size(text: str, style: DrawStyle = STYLE) -> tuple[int, int, int]:
    """A label's background width and height, and its text height."""
    (tw, th), base = cv2.getTextSize(text, style.font_face, style.font_scale, style.text_thickness)
    return tw + 2 * style.padding, th + base + 2 * style.padding, th


def expected_label(
    img: np.ndarray,
    text: str,
    color: tuple[int, int, int],
    origin: tuple[int, int],
    style: DrawStyle = STYLE,
) -> np.ndarray:
    """``img`` with a label's filled background at ``origin`` (top-left) and its text."""
    lw, lh, th = label_size(text, style)
    (x, y), pad = origin, style.padding
    cv2.rectangle(img, (x, y), (x + lw - 1, y + lh - 1), color, cv2.FILLED)
    cv2.putText(
        img,
        text,
        (x + pad, y + pad + th),
        style.font_face,
        style.font_scale,
        text_color_on(color),
        style.text_thickness,
        style.line_type,
    )
    return img


def expected_box(
    img: np.ndarray,
    box: tuple[int, int, int, int],
    color: tuple[int, int, int],
    text: str,
    origin: tuple[int, int],
    thickness: int = STYLE.thickness,
) -> np.ndarray:
    """``img`` with a box's outline, then its label at ``origin``."""
    cv2.rectangle(img, box[:2], box[2:], color, thickness, cv2.LINE_8)
    return expected_label(img, text, color, origin)
