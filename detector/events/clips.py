"""H.264 clips around events: a bounded buffer of encoded frames gives the seconds before.

Every annotated frame is converted to YUV on the pipeline's thread and queued (bounded: a
full queue drops the frame, counted) to an encoder thread, which encodes it with the annotated
video's x264 settings (:mod:`detector.outputs.video`), one keyframe a second, and keeps the
encoded packets of the last ``pre_s`` seconds plus one GOP: memory stays flat whatever the
run's length. An event the config names (``clips.on``) opens a clip from ``pre_s`` before it
(from the keyframe at or before) to ``post_s`` after; an event while a clip is open extends it
(to ``max_s`` at most). Clips are copied packets, never re-encoded: fragmented MP4 while
written, remuxed with their index first when done. File names start with the wall-clock time
(UTC), so they sort by time: ``clips/20261206T101502.123Z-<source>-<event>.mp4``. Retention
(``max_age_h``, ``max_size_mb``) is applied to the folder after each clip.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.events.lifecycle import SourceClock
from detector.events.options import ClipSpec
from detector.events.retention import prune
from detector.outputs.video import (
    ENCODER_THREADS,
    FRAGMENTED_FLAGS,
    GOP_S,
    X264_CRF,
    X264_PRESET,
    X264_TUNE,
    remux_faststart,
    sane_fps,
)
from detector.types import FrameResult

log = logging.getLogger(__name__)

CLIPS_DIR = "clips"
_STOP = object()


def stamp() -> str:
    """The wall-clock time as a file-name prefix that sorts by time (UTC, milliseconds)."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass
class _Packet:
    t: float  # seconds on the stage's clock
    pts: int
    dts: int
    key: bool
    data: bytes


@dataclass
class _Clip:
    path: Path
    start: float
    end: float
    container: Any = None
    stream: Any = None
    base: int | None = None
    packets: int = 0


class ClipRecorder:
    """Encodes the annotated frames of one source and cuts clips around events.

    Args:
        folder: Where clips go (``<run>/clips``).
        source: The source's name, in file names.
        spec: ``pre_s``, ``post_s``, ``max_s``, which events, retention.
        fps: The source's frame rate (the encoder's nominal rate).
        live: Capture-time clock (cameras, streams) instead of ``index / fps``.
        queue_frames: Frames waiting for the encoder at most (16 at 1080p: 50 MB of YUV).
    """

    name = "clips"

    def __init__(
        self,
        folder: Path,
        source: str,
        spec: ClipSpec,
        fps: float | None,
        live: bool,
        queue_frames: int = 16,
    ) -> None:
        self.folder = Path(folder)
        self.source = source
        self.spec = spec
        self.fps = sane_fps(fps, str(folder))
        self.live = live
        self.frames_dropped = 0
        self.frames_encoded = 0
        self.clips: list[str] = []
        self.deleted = 0
        self.failed = 0
        self.buffer_peak = 0
        self.closed = False
        self._open: tuple[str, float, float] | None = None  # (name, start, end), main thread
        self._clock = SourceClock(live, self.fps)
        self._size: tuple[int, int] | None = None
        self._queue: queue.Queue[Any] = queue.Queue(queue_frames)
        self._ring: deque[_Packet] = deque()
        self._ring_bytes = 0
        self._primed = False
        self._clip: _Clip | None = None
        self._encoder: Any = None
        self._template: Any = None
        self._thread = threading.Thread(target=self._run, name="events-clips", daemon=True)
        self._thread.start()

    # -- the pipeline's thread ------------------------------------------------------------

    def write(self, result: FrameResult, annotated: np.ndarray) -> None:
        """Queue one annotated BGR frame (the renderer's sink call); never waits."""
        h, w = annotated.shape[:2]
        if self._size is None:
            self._size = (w - w % 2, h - h % 2)
        if (w, h) != self._size:
            annotated = np.ascontiguousarray(annotated[: self._size[1], : self._size[0]])
            if annotated.shape[1::-1] != self._size:
                annotated = cv2.resize(annotated, self._size, interpolation=cv2.INTER_AREA)
        yuv = cv2.cvtColor(annotated, cv2.COLOR_BGR2YUV_I420)  # a copy: drawing may go on
        try:
            self._queue.put_nowait(("frame", self._clock(result.frame), yuv))
        except queue.Full:
            self.frames_dropped += 1
            if self.frames_dropped == 1 or self.frames_dropped % 100 == 0:
                log.warning(
                    "clips: the encoder is behind: %d frame(s) dropped", self.frames_dropped
                )

    def trigger(self, event: dict[str, Any], t: float) -> str | None:
        """Cut (or extend) a clip for ``event`` at time ``t``; its path in the run folder, or
        None when the event does not start clips."""
        if event["type"] not in self.spec.on:
            return None
        s = self.spec
        if self._open is not None and t - s.pre_s <= self._open[2]:
            name, start, _ = self._open
            end = min(t + s.post_s, start + s.max_s)
            self._open = (name, start, end)
            self._control(("extend", end))
        else:
            name = f"{stamp()}-{self.source}-{event['type']}.mp4"
            self._open = (name, t - s.pre_s, t + s.post_s)
            self._control(("open", *self._open))
        return f"{CLIPS_DIR}/{name}"

    def _control(self, item: tuple[Any, ...]) -> None:
        try:
            self._queue.put(item, timeout=1.0)  # rare and small: worth a short wait
        except queue.Full:
            self.failed += 1
            log.warning("clips: the encoder is stuck: %s not applied", item[0])

    # -- the encoder's thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            try:
                if item[0] == "frame":
                    self._encode(item[1], item[2])
                elif item[0] == "open":
                    self._finish()
                    self._start(Path(self.folder) / item[1], item[2], item[3])
                else:
                    if self._clip is not None:
                        self._clip.end = item[1]
            except Exception as exc:
                self.failed += 1
                log.warning("clips: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
                self._drop_clip()
        try:
            self._flush()
            self._finish()
        except Exception as exc:
            self.failed += 1
            log.warning("clips: %s", exc)

    def _open_encoder(self, width: int, height: int) -> None:
        import av

        # A never-written MP4 in memory holds the encoder's stream: clips copy its parameters
        # (SPS / PPS) through add_stream_from_template once its first packet went in.
        self._template = av.open(io.BytesIO(), "w", format="mp4")
        rate = Fraction(self.fps).limit_denominator(1001)
        options = {"preset": X264_PRESET, "crf": str(X264_CRF), "tune": X264_TUNE}
        stream = self._template.add_stream("libx264", rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = max(1, round(self.fps * GOP_S))
        stream.codec_context.thread_count = ENCODER_THREADS
        stream.codec_context.time_base = Fraction(1, 1000)
        self._encoder = stream

    def _encode(self, t: float, yuv: np.ndarray) -> None:
        import av

        if self._encoder is None:
            self._open_encoder(yuv.shape[1], yuv.shape[0] * 2 // 3)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = round(t * 1000)
        frame.time_base = Fraction(1, 1000)
        for packet in self._encoder.encode(frame):
            self._keep(packet)
        self.frames_encoded += 1

    def _flush(self) -> None:
        if self._encoder is not None:
            for packet in self._encoder.encode(None):
                self._keep(packet)

    def _keep(self, packet: Any) -> None:
        p = _Packet(
            packet.pts / 1000, packet.pts, packet.dts, bool(packet.is_keyframe), bytes(packet)
        )
        if not self._primed:
            self._template.mux(packet)  # fills the template's codec parameters (SPS / PPS)
            self._primed = True
        ring = self._ring
        ring.append(p)
        self._ring_bytes += len(p.data)
        horizon = p.t - self.spec.pre_s
        cut = 0  # keep from the last keyframe at or before the horizon
        for i, q in enumerate(ring):
            if q.t > horizon:
                break
            if q.key:
                cut = i
        for _ in range(cut):
            self._ring_bytes -= len(ring.popleft().data)
        self.buffer_peak = max(self.buffer_peak, self._ring_bytes)
        clip = self._clip
        if clip is not None:
            if p.t > clip.end:
                self._finish()
            else:
                self._mux(clip, p)

    def _start(self, path: Path, start: float, end: float) -> None:
        import av

        self.folder.mkdir(parents=True, exist_ok=True)
        if self._encoder is None or not self._primed:
            return
        clip = _Clip(path, start, end)
        clip.container = av.open(str(path), "w", options={"movflags": FRAGMENTED_FLAGS})
        clip.stream = clip.container.add_stream_from_template(self._encoder)
        self._clip = clip
        first = next((i for i in range(len(self._ring) - 1, -1, -1)
                      if self._ring[i].key and self._ring[i].t <= start), 0)  # fmt: skip
        for p in list(self._ring)[first:]:
            self._mux(clip, p)

    def _mux(self, clip: _Clip, p: _Packet) -> None:
        import av

        if clip.base is None:
            if not p.key:
                return  # a clip starts on a keyframe
            clip.base = p.dts
        packet = av.Packet(p.data)
        packet.pts, packet.dts = p.pts - clip.base, p.dts - clip.base
        packet.time_base = Fraction(1, 1000)
        packet.is_keyframe = p.key
        packet.stream = clip.stream
        clip.container.mux(packet)
        clip.packets += 1

    def _finish(self) -> None:
        clip, self._clip = self._clip, None
        if clip is None:
            return
        clip.container.close()
        if not clip.packets:
            clip.path.unlink(missing_ok=True)
            return
        try:
            remux_faststart(clip.path)
        except Exception as exc:  # the fragmented clip plays: keep it
            log.warning("clip '%s' kept fragmented: %s", clip.path, exc)
        self.clips.append(clip.path.name)
        log.info("clip %s (%d frames)", clip.path, clip.packets)
        s = self.spec
        self.deleted += prune(self.folder, s.max_age_h, s.max_size_mb)

    def _drop_clip(self) -> None:
        clip, self._clip = self._clip, None
        if clip is not None and clip.container is not None:
            with contextlib.suppress(Exception):  # already failing: the first error is logged
                clip.container.close()

    # -- end ------------------------------------------------------------------------------

    def close(self) -> None:
        """Encode what is queued, finish the open clip (its ``post_s`` cut short by the end)."""
        if self.closed:
            return
        self.closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            log.warning("clips: the encoder did not finish within 60 s")

    def describe(self) -> dict[str, Any]:
        return {
            "path": CLIPS_DIR,
            "clips": len(self.clips),
            "deleted_by_retention": self.deleted,
            "frames_encoded": self.frames_encoded,
            "frames_dropped": self.frames_dropped,
            "buffer_peak_bytes": self.buffer_peak,
            "failed": self.failed,
        }
