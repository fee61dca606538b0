"""Heat map over the image: an OpenCV colour map blended with ``alpha``, the box drawn on top."""

from __future__ import annotations

import cv2
import numpy as np

from detector.draw import box_pixels, color_for
from detector.errors import ConfigError

#: ``--colormap`` names → OpenCV colour maps.
COLORMAPS = {
    name.removeprefix("COLORMAP_").lower(): getattr(cv2, name)
    for name in dir(cv2)
    if name.startswith("COLORMAP_")
}


def colormap_id(name: str) -> int:
    """The OpenCV colour map called ``name`` (``jet``, ``turbo``, ``inferno``, ...)."""
    key = name.lower()
    if key not in COLORMAPS:
        raise ConfigError(
            f"unknown colour map {name!r}", hint=f"choose from {', '.join(sorted(COLORMAPS))}"
        )
    return int(COLORMAPS[key])


def overlay(
    image_bgr: np.ndarray,
    heat: np.ndarray,
    box_xyxy: np.ndarray | None = None,
    class_id: int = 1,
    *,
    colormap: str = "jet",
    alpha: float = 0.45,
    peak_xy: tuple[int, int] | None = None,
) -> np.ndarray:
    """The image with ``heat`` (``(H, W)`` ≥ 0, any scale) blended over it.

    Args:
        image_bgr: BGR ``uint8 (H, W, 3)``; not modified.
        heat: Map at image resolution; scaled so its maximum is the colour map's top.
        box_xyxy: The detection's pixel box, drawn in its class colour.
        class_id: Label-map id (box colour).
        colormap: OpenCV colour map name.
        alpha: Weight of the heat colours (0: image only, 1: heat only).
        peak_xy: Marked with a cross when given.

    Returns:
        A new BGR ``uint8`` image.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    top = float(heat.max()) if heat.size else 0.0
    scaled = np.zeros(heat.shape, np.uint8) if top <= 0 else (255 * (heat / top)).astype(np.uint8)
    colours = cv2.applyColorMap(scaled, colormap_id(colormap))
    out = cv2.addWeighted(image_bgr, 1.0 - alpha, colours, alpha, 0.0)
    h, w = out.shape[:2]
    if box_xyxy is not None:
        x1, y1, x2, y2 = box_pixels(np.asarray(box_xyxy), w, h)
        cv2.rectangle(out, (x1, y1), (x2, y2), color_for(class_id), 2)
    if peak_xy is not None:
        size = max(6, min(h, w) // 40)
        cv2.drawMarker(out, peak_xy, (255, 255, 255), cv2.MARKER_CROSS, size, 2)
    return out
