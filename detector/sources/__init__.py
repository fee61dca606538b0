"""Capture sources behind one interface: camera, video file, stream URL, image folder / glob / file.

:func:`parse_source` (in :mod:`detector.sources.spec`) reads the user's string once into a
:class:`SourceSpec`; :func:`open_source` opens it. Every source delivers BGR ``uint8``
``(H, W, 3)`` images through :meth:`Source.read` and is closed by :meth:`Source.close` (or
``with``). Reading happens on the pipeline's capture thread.

A new kind of source: add it to :class:`~detector.types.SourceKind`, classify it in
``spec.parse_source``, implement a :class:`Source` in its own module here and open it below.
"""

from __future__ import annotations

from detector.errors import SourceError, redact
from detector.sources import capture, images
from detector.sources.base import PacedSource, Source
from detector.sources.reconnect import ReconnectingSource, ReconnectPolicy
from detector.sources.spec import IMAGE_EXTENSIONS, SourceSpec, parse_source
from detector.types import SourceKind

__all__ = [
    "IMAGE_EXTENSIONS",
    "PacedSource",
    "ReconnectPolicy",
    "Source",
    "SourceSpec",
    "open_source",
    "parse_source",
    "redact",
]


def open_source(
    source: SourceSpec | str | int,
    *,
    width: int | None = None,
    height: int | None = None,
    reconnect: ReconnectPolicy | None = None,
) -> Source:
    """Open a source from its spec (or a URI, parsed first).

    Args:
        source: The parsed spec, or a camera index, stream URL, folder, glob, image or video.
        width: Requested camera width in pixels (cameras only; what is granted is logged).
        height: Requested camera height in pixels (cameras only).
        reconnect: For live sources: reconnect and watch for stalls with this policy
            (:class:`~detector.sources.reconnect.ReconnectingSource`); ``None``: a lost
            source simply ends. The first open is never retried.

    Raises:
        SourceError: Nothing usable there; the message quotes it and hints why.
    """

    spec = source if isinstance(source, SourceSpec) else parse_source(source)
    if spec.kind is SourceKind.CAMERA or (spec.kind is SourceKind.STREAM and spec.live):
        # OpenCV's own timeouts a little beyond the watchdog's: the watchdog notices a stall
        # first (and counts it); OpenCV's timeout then frees the abandoned read.
        timeout_s = reconnect.stall_timeout_s + 1.0 if reconnect is not None else None

        def open_live() -> Source:
            if spec.kind is SourceKind.CAMERA:
                assert spec.device is not None
                return capture.open_camera(spec.device, spec.uri, width, height)
            return capture.open_stream(spec, timeout_s)

        first = open_live()
        if reconnect is None:
            return first

        return ReconnectingSource(first, open_live, reconnect)
    if spec.kind is SourceKind.STREAM:
        return capture.open_stream(spec)
    assert spec.path is not None
    if spec.kind is SourceKind.IMAGES:
        if spec.images == "folder":
            return images.open_folder(spec.path, spec.uri)
        if spec.images == "glob":
            return images.open_glob(spec.uri)
        if spec.path.is_file():
            return images.open_single_image(spec.path, spec.uri)
    elif spec.path.is_file():
        return capture.open_video(spec.path, spec.uri)
    raise SourceError(
        f"cannot open source {spec.shown!r}: file does not exist",
        hint="give a video file, an image, a folder of images, a glob such as 'photos/*.jpg', "
        "a camera index such as 0, or an rtsp:// / http:// URL",
    )
