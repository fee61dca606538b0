"""Annotated frames -> a video file: H.264 through PyAV (crash-safe, browser-playable), or
``mp4v`` / ``MJPG`` through OpenCV.

An ``.mp4`` is written as *fragmented* MP4 (``frag_keyframe+empty_moov+default_base_moof``)
with a keyframe every second, so a process killed without warning (SIGKILL, out of memory)
leaves a file that decodes and plays up to its last complete fragment. At a clean close
(end of source, q, Ctrl-C, an error the process survives) the fragments are remuxed, without
re-encoding, into a plain ``+faststart`` MP4 (index first), whose duration every browser
reads; if that remux fails, the fragmented file stays. ``.avi`` (AVI keeps what was written
without an index) is written as is.

Timestamps come from the frames: for files the frame index over the source's frame rate,
for live sources the capture time (``Frame.timestamp_s``), so ten seconds of a stream make
ten seconds of video whatever was dropped on the way.

``open_video_sink`` picks the writer for ``codec`` (``h264`` | ``mp4v`` | ``mjpg``):
:class:`AvVideoSink` for H.264, :class:`VideoSink` (OpenCV) for the others, and for H.264 when
PyAV or its libx264 is missing (with one warning): opencv-python's wheels cannot encode H.264.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.errors import SinkError
from detector.outputs.base import Sink, check_image
from detector.types import FrameResult

log = logging.getLogger(__name__)

CODECS = ("h264", "mp4v", "mjpg")
# OpenCV's default FourCC per suffix (what opencv-python's wheels can encode).
OPENCV_FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}
FALLBACK_FPS = 30.0
MIN_FPS, MAX_FPS = 0.01, 1000.0  # time-lapses included: one frame in 100 s
# x264 settings measured by the bench (detector/benchmarks/video_io.py) on 2 shared cores, 576p:
# "ultrafast" at CRF 28 costs about 1.1-1.4x OpenCV's mp4v CPU for a file of about the same
# size ("veryfast" 2.5x, "superfast" 2x; CRF 23 +15% CPU, +60% bytes); "zerolatency" (no
# look-ahead, no B-frames) lets every frame leave the encoder at once, so a kill loses only
# the open fragment, and makes x264 thread by slices: 2 threads took no more CPU than 1 (equal
# or a little less in four runs) and less of the main thread's wall time per frame.
X264_PRESET = "ultrafast"
X264_TUNE = "zerolatency"
X264_CRF = 28
ENCODER_THREADS = 2
GOP_S = 1.0  # one keyframe (and so one fragment) per second: what a kill may lose
FRAGMENTED_FLAGS = "frag_keyframe+empty_moov+default_base_moof"

_warned_fallback = threading.Event()


def sane_fps(fps: float | None, what: str) -> float:
    """``fps`` if it is a usable frame rate (0.01 to 1000), else 30 with a warning naming
    ``what``.

    Live sources often report 0, broken headers NaN or 0.001; a writer opened at such a
    rate fails or makes a video of absurd length. Time-lapses (0.5 fps, one frame in 10 s)
    are real rates and keep them, so the video lasts as long as the source.
    """
    if fps is None or not math.isfinite(fps) or not MIN_FPS <= fps <= MAX_FPS:
        log.warning(
            "source gives no usable frame rate (%r): writing '%s' at %g fps",
            fps,
            what,
            FALLBACK_FPS,
        )
        return FALLBACK_FPS
    return float(fps)


def h264_problem() -> str | None:
    """Why H.264 cannot be written here (PyAV or its libx264 missing), or ``None``."""
    try:
        import av
    except ImportError as exc:
        return f"PyAV is not installed ({exc})"
    if "libx264" not in av.codecs_available:
        return "this PyAV build has no libx264 encoder"
    return None


def open_video_sink(
    path: str | Path,
    fps: float | None,
    codec: str = "h264",
    *,
    live: bool = False,
) -> Any:
    """The video sink for ``codec`` at ``path``.

    Args:
        path: ``.mp4`` or ``.avi``.
        fps: The source's frame rate (checked with :func:`sane_fps`).
        codec: ``h264`` (PyAV), ``mp4v`` or ``mjpg`` (OpenCV). H.264 falls back to OpenCV's
            ``mp4v`` (``.mp4``) or ``MJPG`` (``.avi``) with one warning per process when
            PyAV or libx264 is missing.
        live: Timestamps from the frames' capture times (cameras, streams) instead of
            ``index / fps`` (files).

    Raises:
        SinkError: An unknown codec, or a suffix other than ``.mp4`` / ``.avi``.
    """
    path = Path(path)
    codec = codec.lower()
    if codec not in CODECS:
        raise SinkError(f"unknown video codec {codec!r}", hint=f"choose one of {', '.join(CODECS)}")
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".avi"):
        raise SinkError(f"cannot write video '{path}': unknown suffix", hint="use .mp4 or .avi")
    if codec == "h264":
        problem = h264_problem()
        if problem is None:
            return AvVideoSink(path, fps, live=live)
        codec = "mp4v" if suffix == ".mp4" else "mjpg"
        if not _warned_fallback.is_set():
            _warned_fallback.set()
            log.warning(
                "cannot write H.264 (%s): writing %s through OpenCV instead; browsers may "
                "not play it (pip install 'av==18.1.0')",
                problem,
                codec,
            )
    return VideoSink(path, sane_fps(fps, str(path)), codec="MJPG" if codec == "mjpg" else codec)


class _VideoFile(Sink):
    """What both writers share: the video takes the first frame's size, later frames of
    another size are resized to it (with one warning), the file is checked at close, and
    ``describe`` gives the record."""

    path: Path
    fps: float
    codec: str
    size: tuple[int, int] | None = None  # (width, height), once the first frame came
    frames_written = 0
    frames_resized = 0

    def _fit(self, result: FrameResult | None, annotated: np.ndarray) -> np.ndarray:
        """``annotated`` at the video's size (resized when it differs)."""
        h, w = annotated.shape[:2]
        assert self.size is not None
        if (w, h) == self.size:
            return annotated
        if not self.frames_resized:
            idx = result.frame.index if result is not None else self.frames_written
            log.warning(
                "frame %d is %dx%d but video '%s' is %dx%d: resizing frames to fit",
                idx,
                w,
                h,
                self.path,
                *self.size,
            )
        self.frames_resized += 1
        return cv2.resize(annotated, self.size, interpolation=cv2.INTER_AREA)

    def _check_file(self) -> None:
        """After the writer closed: say how many frames were resized; a file must be there.

        Raises:
            SinkError: Frames went in but no file (or an empty one) came out.
        """
        if self.frames_resized:
            log.warning("%d frames were resized to fit video '%s'", self.frames_resized, self.path)
        if not self.path.is_file() or self.path.stat().st_size == 0:
            raise SinkError(
                f"video '{self.path}' is missing or empty after writing "
                f"{self.frames_written} frames",
                hint="check free disk space",
            )

    def describe(self) -> dict[str, Any]:
        """What was written, for ``run.json``."""
        return {
            "path": self.path.name,
            "frames": self.frames_written,
            "fps": self.fps,
            "codec": self.codec,
            "size": list(self.size) if self.size else None,
            "timestamps": "index / fps",
        }


class AvVideoSink(_VideoFile):
    """Annotated BGR frames → H.264 ``yuv420p`` in a fragmented MP4 (or AVI) through PyAV.

    The file is opened at the first frame's size (odd sizes are cropped by one pixel:
    ``yuv420p`` needs even ones); later frames of another size are resized to it, with a
    warning. ``close()`` is idempotent and finalizes the file (flush, then the
    ``+faststart`` remux for ``.mp4``).

    Attributes:
        path: The video file.
        fps: The nominal frame rate (the source's, or 30 when it gave none usable).
        codec: ``"h264"``.
        size: ``(width, height)`` written, once the first frame came.
        frames_written: Frames handed to the encoder.
        layout: ``"faststart"`` after a clean close of an ``.mp4``, ``"fragmented"`` while
            writing (and after a failed remux), ``"avi"`` for ``.avi``.
    """

    codec = "h264"

    def __init__(
        self,
        path: str | Path,
        fps: float | None,
        *,
        live: bool = False,
        preset: str = X264_PRESET,
        tune: str | None = X264_TUNE,
        crf: int = X264_CRF,
        threads: int = ENCODER_THREADS,
        faststart: bool = True,
    ) -> None:
        self.path = Path(path)
        self.fps = sane_fps(fps, str(self.path))
        self.live = live
        self.layout = "avi" if self.path.suffix.lower() == ".avi" else "fragmented"
        self._options = {"preset": preset, "crf": str(crf)}
        if tune:
            self._options["tune"] = tune
        self._threads = threads
        self._faststart = faststart and self.layout == "fragmented"
        self._container: Any = None
        self._stream: Any = None
        self._rate = Fraction(self.fps).limit_denominator(1001)
        self._t0: float | None = None
        self._first_index = 0
        self._last_pts = -1
        self._time_base = Fraction(1, 1000)
        self.duration_s = 0.0

    def _open(self, width: int, height: int) -> None:
        import av

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            options = {"movflags": FRAGMENTED_FLAGS} if self.layout == "fragmented" else {}
            options["flush_packets"] = "1"
            container = av.open(str(self.path), mode="w", options=options)
        except (OSError, av.FFmpegError) as exc:
            raise SinkError(
                f"cannot open video '{self.path}' for writing: {_reason(exc)}",
                hint="check the folder is writable and the disk is not full",
            ) from exc
        try:
            stream = container.add_stream("libx264", rate=self._rate, options=self._options)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.gop_size = max(1, round(self.fps * GOP_S))
            stream.codec_context.thread_count = self._threads
            # frame i at i / fps exactly (files), or capture times in milliseconds (live);
            # the muxer picks its own time base and rescales.
            self._time_base = Fraction(1, 1000) if self.live else 1 / self._rate
            stream.codec_context.time_base = self._time_base
        except Exception:
            container.close()
            raise
        self._container, self._stream, self.size = container, stream, (width, height)
        log.info(
            "writing video %s (H.264 %s, %dx%d, %g fps%s)",
            self.path,
            "fragmented MP4" if self.layout == "fragmented" else "AVI",
            width,
            height,
            self.fps,
            ", capture-time stamps" if self.live else "",
        )

    def _pts(self, result: FrameResult | None) -> int:
        """The frame's presentation time in the stream's time base, strictly increasing."""
        if result is None:
            pts = self.frames_written if not self.live else self._last_pts + 1
        elif self.live:
            t = result.frame.timestamp_s
            if self._t0 is None:
                self._t0 = t
            pts = round((t - self._t0) * 1000)
        else:
            if self.frames_written == 0:
                self._first_index = result.frame.index
            pts = result.frame.index - self._first_index
        return max(pts, self._last_pts + 1)

    def write(self, result: FrameResult | None, annotated: np.ndarray) -> None:
        """Encode one BGR ``uint8`` frame (``result`` gives its index / capture time)."""
        self._check_open()
        check_image(annotated)
        h, w = annotated.shape[:2]
        if self._container is None:
            if w < 2 or h < 2:
                raise SinkError(f"cannot encode a {w}x{h} frame as H.264 into '{self.path}'")
            if w % 2 or h % 2:
                log.warning("frames are %dx%d: H.264 yuv420p needs even sizes, cropping", w, h)
            self._open(w - w % 2, h - h % 2)
        assert self.size is not None
        if (w, h) != self.size and (w - w % 2, h - h % 2) == self.size:
            annotated = np.ascontiguousarray(annotated[: self.size[1], : self.size[0]])
        annotated = self._fit(result, annotated)
        import av

        pts = self._pts(result)
        # OpenCV's BGR -> I420 is about 4x cheaper than letting FFmpeg's swscale convert bgr24;
        # the frame wraps that buffer (kept alive by the frame) instead of copying each plane
        yuv = np.asarray(cv2.cvtColor(annotated, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
        frame = av.VideoFrame.from_numpy_buffer(yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = self._time_base
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (OSError, av.FFmpegError) as exc:
            raise SinkError(
                f"cannot write video '{self.path}': {_reason(exc)}", hint="check free disk space"
            ) from exc
        self._last_pts = pts
        self.frames_written += 1
        # the last frame lasts one nominal frame
        self.duration_s = float(pts * self._time_base) + 1 / self.fps

    def close(self) -> None:
        """Flush the encoder, close the file and (``.mp4``) remux it to ``+faststart``.

        Raises:
            SinkError: The encoder or the disk failed; what was written stays readable.
        """
        if self.closed:
            return
        self.closed = True
        if self._container is None:
            log.info("no frames: video '%s' not written", self.path)
            return
        import av

        container, self._container = self._container, None
        try:
            try:
                for packet in self._stream.encode(None):
                    container.mux(packet)
            finally:
                container.close()
        except (OSError, av.FFmpegError) as exc:
            raise SinkError(
                f"cannot finalize video '{self.path}': {_reason(exc)}",
                hint="check free disk space; the frames written before are kept",
            ) from exc
        self._check_file()
        if self._faststart:
            try:
                remux_faststart(self.path)
                self.layout = "faststart"
            except Exception as exc:  # the fragmented file is complete and playable: keep it
                log.warning(
                    "video '%s' kept fragmented (could not rewrite it with its index first: %s)",
                    self.path,
                    _reason(exc),
                )
        log.info("video %s: %d frames, %s", self.path, self.frames_written, self.layout)

    def describe(self) -> dict[str, Any]:
        """What was written, for ``run.json``."""
        return super().describe() | {
            "layout": self.layout,
            "duration_s": round(self.duration_s, 3),
            "timestamps": "capture time" if self.live else "index / fps",
        }


def remux_faststart(path: Path) -> None:
    """Rewrite ``path`` (any MP4, here a fragmented one) as a plain MP4 with its index
    (``moov``) first, copying the packets (no re-encoding); atomic (temp file + rename)."""
    import av

    tmp = path.with_name(f".{path.stem}.faststart{path.suffix}")
    try:
        with av.open(str(path)) as src:
            in_stream = src.streams.video[0]
            with av.open(str(tmp), mode="w", options={"movflags": "+faststart"}) as dst:
                out_stream = dst.add_stream_from_template(in_stream)
                for packet in src.demux(in_stream):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.stream = out_stream
                    dst.mux(packet)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _reason(exc: BaseException) -> str:
    """The OS reason of an FFmpeg / OS error (``No space left on device``), else its text."""
    errno_ = getattr(exc, "errno", None)
    if errno_:
        return os.strerror(errno_)
    return str(exc) or type(exc).__name__


class VideoSink(_VideoFile):
    """Annotated frames → a video file through OpenCV (``mp4v`` / ``MJPG``), opened at the first
    frame's size. Frames are written at a constant ``fps`` (OpenCV takes no timestamps).

    Args:
        path: ``.mp4`` (codec ``mp4v``) or ``.avi`` (codec ``MJPG``); other suffixes need
            ``codec``. The folder is created if missing.
        fps: Frame rate to write at: the source's. ``None``, 0 or nonsense (live sources
            often report 0) falls back to 30 fps, with a warning.
        codec: A FourCC overriding the suffix's default.

    Frames of a size other than the first are resized to it, with a warning:
    ``cv2.VideoWriter`` would silently drop them.
    """

    def __init__(self, path: str | Path, fps: float | None, codec: str | None = None) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if codec is None and suffix not in OPENCV_FOURCC:
            raise SinkError(
                f"cannot choose a video codec for '{self.path}'",
                hint="use a .mp4 (mp4v) or .avi (MJPG) file name, or pass a codec",
            )
        self.codec = codec or OPENCV_FOURCC[suffix]
        if len(self.codec) != 4:
            raise SinkError(
                f"video codec {self.codec!r} for '{self.path}' is not a 4-letter FourCC"
            )
        self.fps = sane_fps(fps, str(self.path))
        self._writer: cv2.VideoWriter | None = None

    def write(self, result: FrameResult | None, annotated: np.ndarray) -> None:
        """Append one frame (``result`` is only used to name the frame in warnings)."""
        self._check_open()
        check_image(annotated)
        h, w = annotated.shape[:2]
        if self._writer is None:
            self._open(w, h)
        annotated = self._fit(result, annotated)
        assert self._writer is not None
        self._writer.write(annotated)
        self.frames_written += 1

    def _open(self, width: int, height: int) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create folder for video '{self.path}': {exc}") from exc
        writer = cv2.VideoWriter(
            str(self.path), cv2.VideoWriter.fourcc(*self.codec), self.fps, (width, height)
        )
        if not writer.isOpened():
            writer.release()
            raise SinkError(
                f"cannot open video writer for '{self.path}' (codec {self.codec}, "
                f"{width}x{height} at {self.fps:g} fps)",
                hint="check the folder is writable; use .mp4 (mp4v) or .avi (MJPG): "
                "opencv-python cannot encode H.264",
            )
        self._writer, self.size = writer, (width, height)
        log.info(
            "writing video %s (%s, %dx%d, %g fps)", self.path, self.codec, width, height, self.fps
        )

    def close(self) -> None:
        """Finalize the file (idempotent).

        Raises:
            SinkError: Frames went in but no file (or an empty one) came out.
        """
        if self.closed:
            return
        self.closed = True
        if self._writer is None:
            log.info("no frames: video '%s' not written", self.path)
            return
        self._writer.release()
        self._writer = None
        self._check_file()
        log.info("video %s: %d frames", self.path, self.frames_written)
