"""The one image-file reader and the one writer, safe for any file name.

``cv2.imread`` / ``cv2.imwrite`` given a name that is not valid UTF-8 (a ``str`` holding
surrogate escapes) crash the process, so files are opened by Python (``str``, ``bytes`` or
``PathLike`` names alike) and decoded / encoded in memory. A write goes to a temporary file
beside the target, then ``os.replace``: a reader never sees half an image, and a full disk
raises instead of leaving a 0-byte file. Images are BGR ``uint8 (H, W, 3)``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable
from typing import TypeAlias

import cv2
import numpy as np

from detector.errors import ConfigError
from detector.paths import display_path

PathName: TypeAlias = "str | bytes | os.PathLike[str] | os.PathLike[bytes]"

#: Why a file could not be used, as ``read_image`` says it (and ``skipped.csv`` lists it).
MISSING, NOT_FILE, DENIED, EMPTY, TRUNCATED, UNDECODABLE = (
    "missing",
    "not a regular file",
    "permission denied",
    "empty",
    "truncated",
    "decode failed",
)


def read_image(path: PathName) -> tuple[np.ndarray | None, str | None]:
    """Read and decode one image file: ``(BGR image, None)`` or ``(None, reason)``.

    The reason is one of ``missing``, ``not a regular file`` (a folder, FIFO or device:
    never opened, it could block), ``permission denied``, ``empty``, ``truncated`` (a JPEG
    without its end marker or a PNG without ``IEND``, which OpenCV would decode half grey),
    ``decode failed``, or ``cannot read: <why>``.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None, NOT_FILE
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, MISSING
    except PermissionError:
        return None, DENIED
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    if not data:
        return None, EMPTY
    if _truncated(data):
        return None, TRUNCATED
    return decode_image(data)


def decode_image(data: bytes) -> tuple[np.ndarray | None, str | None]:
    """An encoded image (JPEG, PNG, ...) as BGR, or ``(None, "decode failed")``."""
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # some damaged files raise instead of returning None
        image = None
    return (None, UNDECODABLE) if image is None else (image, None)


def load_image(path: PathName, *, rgb: bool = False) -> np.ndarray:
    """``read_image`` that raises: the image (RGB when ``rgb``), or a ``ConfigError`` saying why."""
    image, reason = read_image(path)
    if image is None:
        raise ConfigError(
            f"cannot read image '{display_path(os.fsdecode(path))}': {reason}",
            hint="give JPEG or PNG files",
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if rgb else image


def load_images(paths: Iterable[PathName], *, rgb: bool = False) -> list[np.ndarray]:
    """Every readable image of ``paths`` in order (the others are left out)."""
    images = (read_image(p)[0] for p in paths)
    return [cv2.cvtColor(im, cv2.COLOR_BGR2RGB) if rgb else im for im in images if im is not None]


def write_image(path: PathName, image: np.ndarray) -> None:
    """Encode ``image`` by the name's suffix (``.jpg``, ``.png``, ...) and write it atomically.

    Raises:
        ValueError: OpenCV cannot encode that suffix or that image.
        OSError: The folder is missing or not writable, or the disk is full.
    """
    name = os.fsdecode(path)
    suffix = os.path.splitext(name)[1] or ".png"
    try:
        ok, data = cv2.imencode(suffix, image)
    except cv2.error as exc:
        raise ValueError(f"OpenCV cannot encode a {suffix!r} image: {exc}") from exc
    if not ok:
        raise ValueError(f"OpenCV cannot encode a {suffix!r} image")
    folder, base = os.path.split(name)
    # a name of our own beside the target (same file system, so the rename is atomic); made
    # with os.open so the file gets the usual permissions (umask), as a direct write would
    tmp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.tobytes())
        os.replace(tmp, name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _truncated(data: bytes) -> bool:
    """A JPEG without its end marker or a PNG without its ``IEND`` chunk: cut short.

    OpenCV decodes such files anyway (the missing part grey), which would give wrong
    detections without a word; other formats are left to the decoder.
    """
    if data[:3] == b"\xff\xd8\xff":
        return not data.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-16:]
    return False
