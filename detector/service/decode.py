"""An uploaded image's bytes → a BGR frame, refusing what is not an image or is too big to decode.

The size is read from the file's header (Pillow, no pixel decoded) before OpenCV decodes it,
so a small file that claims 200 megapixels (a decompression bomb) costs nothing.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image


class BadImage(Exception):
    """An upload that cannot be detected on; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str, hint: str) -> None:
        super().__init__(message)
        self.status = status
        self.hint = hint


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode ``data`` (JPEG, PNG, BMP, WebP, TIFF...) to BGR ``uint8 (H, W, 3)``.

    Raises:
        BadImage: Empty (400), not an image (415), more than ``max_pixels`` (413).
    """
    if not data:
        raise BadImage(400, "the image is empty (0 bytes)", "send the file's bytes")

    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: we check the size below
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
    except Image.DecompressionBombError:  # beyond Pillow's own hard limit
        raise BadImage(
            413,
            f"the image is far more than {max_pixels / 1e6:g} megapixels",
            "send a smaller image (or raise serve.max_megapixels)",
        ) from None
    except Exception:
        raise BadImage(
            415,
            f"the upload ({len(data)} bytes) is not an image this server can read",
            "send a JPEG, PNG, BMP, WebP or TIFF file",
        ) from None
    if width * height > max_pixels:
        raise BadImage(
            413,
            f"the image is {width}x{height} ({width * height / 1e6:.1f} megapixels), more "
            f"than {max_pixels / 1e6:g}",
            "send a smaller image (or raise serve.max_megapixels)",
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise BadImage(
            415,
            f"the image ({width}x{height}) could not be decoded",
            "the file may be truncated or damaged",
        )
    return image
