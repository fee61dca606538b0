"""Sources read through ``cv2.VideoCapture``: camera, video file, network stream (FFmpeg)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from detector.errors import SourceError
from detector.sources.base import Source
from detector.sources.spec import IMAGE_EXTENSIONS, SourceSpec
from detector.types import SourceInfo, SourceKind

log = logging.getLogger(__name__)


# Containers' frame counts are estimates (from duration x rate); a frame or two short is normal.
_COUNT_SLACK = 2


class CaptureSource(Source):
    """A camera, video file or network stream read through ``cv2.VideoCapture``."""

    def __init__(self, cap: cv2.VideoCapture, info: SourceInfo) -> None:
        super().__init__(info)
        self._cap = cap
        self._count = 0

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        ok, image = self._cap.read()
        if not ok or image is None:
            if self._count == 0:
                # Opened but nothing decodes: say so instead of a silent 0-frame run.
                raise SourceError(
                    f"{self.info.kind} {self.info.uri!r} opened but delivered no frame",
                    hint="check the device is not in use by another program"
                    if self.info.kind is SourceKind.CAMERA
                    else "check the file or stream holds video OpenCV can decode",
                )
            announced = self.info.frame_count
            if self.info.live:
                log.warning(
                    "%s %s: no more frames after %d (device lost or stream ended)",
                    self.info.kind,
                    self.info.uri,
                    self._count,
                )
            elif announced and self._count < announced - _COUNT_SLACK:
                # A cut or damaged file: say so instead of ending "ok" in silence.
                self.end_note = f"ended at frame {self._count} of announced {announced}"
                log.warning(
                    "%s %s %s (the file is cut short or damaged)",
                    self.info.kind,
                    self.info.uri,
                    self.end_note,
                )
            return None
        self._count += 1
        if image.ndim == 2:  # some cameras and codecs deliver grey
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        return image, None

    def _release(self) -> None:
        self._cap.release()


# Frame rates outside this range are header damage, not a real rate (a 0.001 fps header made
# the video writer fail; 100000 fps would make a one-frame-long video).
SANE_FPS = (0.1, 1000.0)


def usable_fps(raw: float | None) -> float | None:
    """``raw`` when it is a believable frame rate, else ``None`` (0, NaN, inf, absurd)."""
    if raw is None or not np.isfinite(raw) or not SANE_FPS[0] <= raw <= SANE_FPS[1]:
        return None
    return float(raw)


def _capture_info(cap: cv2.VideoCapture, uri: str, kind: SourceKind, live: bool) -> SourceInfo:
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
    raw_fps = cap.get(cv2.CAP_PROP_FPS)
    fps = usable_fps(raw_fps)
    if fps is None and raw_fps and kind is not SourceKind.CAMERA:
        log.warning(
            "%s %s announces %r fps, not a usable frame rate: outputs fall back to a default",
            kind,
            uri,
            raw_fps,
        )
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    frame_count = int(count) if not live and count and np.isfinite(count) and count > 0 else None
    return SourceInfo(uri, kind, live, width, height, fps, frame_count)


def open_camera(
    device: int | str, uri: str, width: int | None, height: int | None
) -> CaptureSource:
    cap = cv2.VideoCapture(device)
    if not cap.isOpened():
        cap.release()
        raise SourceError(
            f"cannot open camera {uri!r}: camera index not available",
            hint="check the camera is plugged in and not used by another program "
            "(`ls /dev/video*` lists devices); try another index",
        )
    if width:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
    if height:
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    # A short driver queue keeps latency low; the pipeline does its own buffering.
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    info = _capture_info(cap, uri, SourceKind.CAMERA, live=True)
    requested = f"{width or '?'}x{height or '?'}" if (width or height) else "default size"
    log.info(
        "camera %s: requested %s, got %sx%s at %s fps",
        uri,
        requested,
        info.width,
        info.height,
        f"{info.fps:g}" if info.fps else "unknown",
    )
    if (width and info.width != width) or (height and info.height != height):
        log.warning(
            "camera %s does not offer %s; using %sx%s", uri, requested, info.width, info.height
        )
    return CaptureSource(cap, info)


def open_stream(spec: SourceSpec, timeout_s: float | None = None) -> CaptureSource:
    """Open a network stream through OpenCV's FFmpeg backend.

    Args:
        spec: The parsed stream URL.
        timeout_s: Longest wait to connect and for each frame (OpenCV's open and read
            timeouts); ``None`` keeps OpenCV's default (30 s).
    """
    shown, live = spec.shown, spec.live
    params: list[int] = []
    if timeout_s is not None:
        ms = max(1, round(timeout_s * 1000))
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    cap = cv2.VideoCapture(spec.uri, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        why = _unreachable(spec.uri) or "OpenCV's FFmpeg backend could not connect or decode it"
        raise SourceError(
            f"cannot open stream {shown!r}: {why}",
            hint="check the URL plays in a media player from this machine; for RTSP over TCP set "
            "OPENCV_FFMPEG_CAPTURE_OPTIONS='rtsp_transport;tcp'",
        )
    info = _capture_info(cap, shown, SourceKind.STREAM, live=live)
    log.info(
        "stream %s: %sx%s at %s fps (%s)",
        shown,
        info.width,
        info.height,
        f"{info.fps:g}" if info.fps else "unknown fps",
        "live" if live else "remote file",
    )
    return CaptureSource(cap, info)


def _unreachable(url: str, timeout_s: float = 2.0) -> str | None:
    """Why nothing answers at the URL's host and port (refused, unknown host, timeout), if so."""
    parsed = urlparse(url)
    default_ports = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935}
    try:
        port = parsed.port or default_ports.get(parsed.scheme.lower())
    except ValueError:
        return "the port in the URL is not a number"
    if not parsed.hostname or port is None or parsed.scheme.lower() not in default_ports:
        return None
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout_s):
            return None
    except socket.gaierror:
        return f"unknown host {parsed.hostname!r}"
    except ConnectionRefusedError:
        return f"connection refused on {parsed.hostname}:{port} (nothing listens there)"
    except TimeoutError:
        return f"no answer from {parsed.hostname}:{port} within {timeout_s:g} s"
    except OSError as exc:
        return f"cannot reach {parsed.hostname}:{port}: {exc.strerror or exc}"


def open_video(path: Path, uri: str) -> CaptureSource:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise SourceError(
            f"cannot open video file {uri!r}: not a video OpenCV can decode",
            hint="check the file plays in a media player; images need an image extension "
            f"({', '.join(IMAGE_EXTENSIONS[:5])}, ...)",
        )
    info = _capture_info(cap, uri, SourceKind.VIDEO, live=False)
    log.info(
        "video %s: %sx%s at %s fps, %s frames",
        uri,
        info.width,
        info.height,
        f"{info.fps:g}" if info.fps else "unknown",
        info.frame_count or "unknown",
    )
    return CaptureSource(cap, info)
