"""What the web view shows: a latest-frame slot per source, between pipeline and viewers.

The pipeline *publishes* (:meth:`Feed.publish`, O(1): a reference and a few counters under a
lock, no encoding, no I/O) and never waits on a viewer. The server *pulls*: while someone
watches a feed, each newer frame is encoded to JPEG once (:meth:`Feed.jpeg`, off the
pipeline's thread) and those bytes go to every viewer, so any number of viewers cost one
encode per frame, and with no viewer nothing is encoded. A viewer slower than the source
simply skips to the newest frame. Events (the frame's JSON-lines record) go to a short ring that
server-sent-event clients follow; a client that falls behind the ring skips ahead.

Images are BGR ``uint8`` ``(H, W, 3)``; times are monotonic seconds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from detector.pipeline.fps import Clock, SlidingFps
from detector.types import FrameResult

JPEG_QUALITY = 80
EVENT_RING = 64
FPS_WINDOW_S = 2.0

# A feed's state as the page shows it. Sources that reconnect may report "reconnecting"
# through the ``state`` callable a feed is given.
CONNECTED, WAITING, ENDED = "connected", "waiting", "ended"
# A feed's health, for /readyz and the metrics: what its source and pipeline are doing.
# stalled: a live source sent no frame for ``stalled_after_s`` (the camera went quiet);
# blocked: frames arrive (or a file waits to be read) but none came out for that long (the
# pipeline downstream is stuck). A viewer never blocks a feed: it is not downstream of it.
HEALTH = ("starting", "running", "reconnecting", "stalled", "blocked", "ended")
STALLED_AFTER_S = 5.0

Observer = Callable[["Feed", FrameResult, Callable[[int], str]], None]


class Hub:
    """The feeds of one run and the events they publish, behind one condition variable.

    Args:
        clock: Monotonic seconds (injectable for tests).
        jpeg_quality: JPEG quality of the streamed frames, 1-100.
    """

    def __init__(
        self,
        clock: Clock = time.monotonic,
        jpeg_quality: int = JPEG_QUALITY,
        stalled_after_s: float = STALLED_AFTER_S,
    ) -> None:
        self.clock = clock
        self.jpeg_quality = int(jpeg_quality)
        self.stalled_after_s = float(stalled_after_s)
        self.observers: list[Observer] = []  # told of every published frame (metrics)
        self.model: dict[str, Any] | None = None  # the loaded model's run.json entry
        self.started = clock()
        self.cond = threading.Condition()
        self.feeds: list[Feed] = []
        self.closed = False
        self._events: deque[tuple[int, dict[str, Any]]] = deque(maxlen=EVENT_RING)
        self.events_published = 0
        self.event_listeners = 0

    def add_feed(
        self,
        name: str,
        uri: str,
        *,
        live: bool,
        state: Callable[[], str | None] | None = None,
        skipped: Callable[[], int] | None = None,
    ) -> Feed:
        """A new feed (a source's slot); its key is its position: ``0``, ``1``, ..."""
        with self.cond:
            feed = Feed(self, str(len(self.feeds)), name, uri, live, state, skipped)
            self.feeds.append(feed)
            return feed

    def feed(self, key: str) -> Feed | None:
        with self.cond:
            return next((f for f in self.feeds if f.key == key), None)

    # -- events -----------------------------------------------------------------------

    def publish_event(self, record: dict[str, Any]) -> None:
        """Append ``record`` to the ring and wake the event listeners (never blocks long)."""
        with self.cond:
            self.events_published += 1
            self._events.append((self.events_published, record))
            self.cond.notify_all()

    def wait_events(self, after: int, timeout_s: float) -> list[tuple[int, dict[str, Any]]]:
        """Events numbered above ``after`` (waiting up to ``timeout_s`` for one); [] on
        timeout or when the hub is closed. Events older than the ring are skipped."""
        with self.cond:
            self.cond.wait_for(lambda: self.events_published > after or self.closed, timeout_s)
            return [(n, r) for n, r in self._events if n > after]

    # -- life -------------------------------------------------------------------------

    def close(self) -> None:
        """End every feed and wake every waiting viewer (they then finish their responses).

        The final figures go out as a last event (``{"type": "status", "status": ...}``) before
        the event streams end, so an open page shows the frames the run really did, not the
        last ones a poll caught before the server stopped."""
        with self.cond:
            if self.closed:
                return
            for feed in self.feeds:
                feed.ended = True
        self.publish_event({"type": "status", "status": self.status()})
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def status(self) -> dict[str, Any]:
        """The figures of every feed, JSON-ready (what ``/api/status`` returns)."""
        with self.cond:
            feeds = list(self.feeds)
        return {
            "uptime_s": round(self.clock() - self.started, 3),
            "sources": [f.status() for f in feeds],
        }


class Feed:
    """One source's latest annotated frame, its JPEG (encoded once, on demand) and figures.

    Created by :meth:`Hub.add_feed`. The publishing thread calls :meth:`publish` and
    :meth:`end`; the server's encoder threads call :meth:`jpeg`, its routes :meth:`status`.
    """

    def __init__(
        self,
        hub: Hub,
        key: str,
        name: str,
        uri: str,
        live: bool,
        state: Callable[[], str | None] | None,
        skipped: Callable[[], int] | None,
    ) -> None:
        self.hub = hub
        self.key = key
        self.name = name
        self.uri = uri
        self.live = live
        self._state = state
        self._skipped = skipped
        self.ended = False
        self.seq = 0  # frames published
        self.frames_read = 0  # counted by a watched source (see watch), else from the frames
        self.created = hub.clock()
        self.total: int | None = None  # frames a file or folder holds, when known
        self._source: Any = None
        self._last_read: float | None = None
        self._image: np.ndarray | None = None
        self._frame_index = -1
        self._last_publish = 0.0
        self._detections: dict[str, int] = {}
        self._inference_ms: float | None = None
        self._latency_ms: float | None = None
        self._capture = SlidingFps(FPS_WINDOW_S, hub.clock)
        self._inference = SlidingFps(FPS_WINDOW_S, hub.clock)
        self._output = SlidingFps(FPS_WINDOW_S, hub.clock)
        self._encode_lock = threading.Lock()
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self.encodes = 0
        self.viewers = 0
        self.viewers_dropped = 0
        self.events_published = 0  # this source's frame records sent to /api/events
        self.event_sinks: list[Any] = []  # its tracked-object event sinks (events_published)

    # -- publishing side (the pipeline's thread) --------------------------------------

    def publish(
        self, result: FrameResult, annotated: np.ndarray, labels: Callable[[int], str]
    ) -> None:
        """Make ``annotated`` the latest frame and update the figures. Never encodes.

        ``annotated`` is kept by reference: sinks never modify the frame they are given
        (the renderer draws on a frame the pipeline is done with).
        """
        frame = result.frame
        now = self.hub.clock()
        counts = Counter(labels(int(c)) for c in result.detections.class_ids)
        with self.hub.cond:
            if self._frame_index >= 0 and frame.index > self._frame_index:
                self._capture.tick(frame.index - self._frame_index)
            self._frame_index = frame.index
            if result.fresh:
                self._inference.tick()
            if result.inference_ms is not None:
                self._inference_ms = result.inference_ms
            self._output.tick()
            self._latency_ms = max(0.0, (now - frame.timestamp_s) * 1000.0)
            self._detections = dict(counts.most_common())
            self._image = annotated
            self._last_publish = now
            self.seq += 1
            self.hub.cond.notify_all()
        for observer in self.hub.observers:
            observer(self, result, labels)

    def watch(self, source: Any) -> Any:
        """``source`` seen through this feed: each frame it delivers is counted here (so the
        feed knows a silent camera from a stuck pipeline). Everything else is the source's."""
        self._source = source
        info = getattr(source, "info", None)
        count = getattr(info, "frame_count", None)
        if not self.live and count:  # a file or folder: the page shows progress and an ETA
            self.total = int(count)
        return _Watched(source, self)

    def reconnects(self) -> int:
        """Outages the watched live source came back from (0 for others)."""
        health = getattr(self._source, "health", None)
        return int(getattr(health, "reconnects", 0)) if health is not None else 0

    def frame_read(self) -> None:
        """A frame came from the source (the capture thread; one writer, no lock)."""
        self.frames_read += 1
        self._last_read = self.hub.clock()

    def attach(
        self,
        state: Callable[[], str | None] | None = None,
        skipped: Callable[[], int] | None = None,
    ) -> None:
        """Where the figures the frames do not carry come from, once the source is open:
        its state (e.g. ``reconnecting``) and its count of skipped items."""
        with self.hub.cond:
            self._state, self._skipped = state, skipped

    def count_events(self, sinks: list[Any]) -> None:
        """The source's event sinks (JSON lines, MQTT, webhook, ...), each counting its
        ``events_published``, for the metrics."""
        self.event_sinks = list(sinks)

    def events_by_sink(self) -> dict[str, int]:
        """Events published for this source so far, by sink (``page``: /api/events)."""
        out = {"page": self.events_published}
        for sink in list(self.event_sinks):
            out[sink.name] = out.get(sink.name, 0) + int(sink.events_published)
        return out

    def end(self) -> None:
        """The source is done: viewers finish their streams (the page keeps the last frame)."""
        with self.hub.cond:
            self.ended = True
            self.hub.cond.notify_all()

    # -- viewer side ------------------------------------------------------------------

    def jpeg(self) -> tuple[int, bytes] | None:
        """The latest frame as ``(number, JPEG bytes)``, encoded at most once per frame."""
        with self._encode_lock:  # the first viewer encodes, the others wait and reuse
            with self.hub.cond:
                seq, image = self.seq, self._image
            if image is None:
                return None
            if self._jpeg_seq != seq or self._jpeg is None:
                ok, buf = cv2.imencode(
                    ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.hub.jpeg_quality]
                )
                if not ok:
                    return None
                self._jpeg, self._jpeg_seq = buf.tobytes(), seq
                self.encodes += 1
            return self._jpeg_seq, self._jpeg

    def viewer_joined(self) -> None:
        with self.hub.cond:
            self.viewers += 1

    def viewer_left(self, *, dropped: bool) -> None:
        with self.hub.cond:
            self.viewers -= 1
            self.viewers_dropped += int(dropped)

    def state(self) -> str:
        """``connected``, ``reconnecting`` (if the source says so), ``waiting`` (no frame
        yet) or ``ended``."""
        if self.ended:
            return ENDED
        if self._state is not None:
            told = self._state()
            if told is not None and str(told) not in ("", CONNECTED):
                return str(told)
        return CONNECTED if self.seq else WAITING

    def health(self) -> str:
        """One of :data:`HEALTH`: what the source and its pipeline are doing now."""
        if self.ended:
            return "ended"
        told = str(self._state() or "") if self._state is not None else ""
        if told.startswith("reconnecting"):
            return "reconnecting"
        if told == "stalled":  # the source's own watchdog is restarting the capture
            return "stalled"
        now, quiet = self.hub.clock(), self.hub.stalled_after_s
        last_read = self._last_read
        if last_read is None and self.seq:  # not watched: the newest frame stands for it
            last_read = self._last_publish
        if last_read is None:
            return "starting"
        since_output = now - (self._last_publish if self.seq else self.created)
        if self.live and now - last_read > quiet:
            return "stalled"
        if since_output > quiet:
            return "blocked"
        return "running"

    def counts(self) -> dict[str, int]:
        """Frames read, processed (published) and dropped so far."""
        with self.hub.cond:
            read = max(self.frames_read, self._frame_index + 1)
            published = self.seq
        dropped = max(0, self._frame_index + 1 - published) if self.live else 0
        return {"read": read, "processed": published, "dropped": dropped}

    def status(self) -> dict[str, Any]:
        """This feed's figures, JSON-ready."""
        skipped = self._skipped() if self._skipped is not None else 0
        with self.hub.cond:
            image = self._image
            published = self.seq
            # Frames captured but never output: a live source's keep-newest drops (files
            # never drop; up to two frames may still be in flight).
            dropped = max(0, self._frame_index + 1 - published) if self.live else 0
            return {
                "key": self.key,
                "name": self.name,
                "uri": self.uri,
                "live": self.live,
                "state": self.state(),
                "health": self.health(),
                "stream": f"/stream/{self.key}.mjpg",
                "frame": self._frame_index,
                "frames_output": published,
                "total": self.total,
                "eta_s": self._eta_s(published),
                "width": None if image is None else int(image.shape[1]),
                "height": None if image is None else int(image.shape[0]),
                "fps": {
                    "capture": round(self._capture.fps(), 2),
                    "inference": round(self._inference.fps(), 2),
                    "output": round(self._output.fps(), 2),
                },
                "inference_ms": None
                if self._inference_ms is None
                else round(self._inference_ms, 2),
                "latency_ms": None if self._latency_ms is None else round(self._latency_ms, 2),
                "detections": dict(self._detections),
                "dropped": dropped,
                "skipped": int(skipped),
                "viewers": self.viewers,
                "viewers_dropped": self.viewers_dropped,
                "jpeg_encodes": self.encodes,
            }

    def _eta_s(self, published: int) -> float | None:
        """Seconds left for a file or folder at the current output rate (None: unknown)."""
        rate = self._output.fps()
        if self.total is None or self.ended or rate <= 0:
            return None
        return round(max(0, self.total - published) / rate, 1)


class _Watched:
    """A source whose every delivered frame is counted by its feed (see :meth:`Feed.watch`)."""

    def __init__(self, source: Any, feed: Feed) -> None:
        self._source = source
        self._feed = feed

    def read(self) -> Any:
        item = self._source.read()
        if item is not None:
            self._feed.frame_read()
        return item

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def __enter__(self) -> _Watched:
        return self

    def __exit__(self, *exc: object) -> None:
        self._source.close()
