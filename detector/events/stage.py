"""The event stage: tracked FrameResults in frame order → zones, lines, object lives → events.

It runs behind the tracker and in front of the renderer (``consume = stage.wrap(render)``), on
the main thread where results are in frame order. Each event is a JSON-ready dict handed to
every event sink (each queues it: nothing here waits on a network); zone and line counts go
to the sinks as ``counts`` whenever they change. Time: files use media time ``index / fps``,
live sources the capture time since their first frame (as the tracker does).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from detector.draw import DrawStyle, color_for, draw_region, draw_tripwire
from detector.events.lifecycle import Change, Lifecycle, SourceClock, TrackedObject
from detector.events.spec import LineSpec, ZoneSpec
from detector.events.zones import Crossing, LineWatch, ZoneWatch, sv_detections
from detector.labels import LabelMap
from detector.types import FrameResult, SourceInfo

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where events go: ``send`` and ``counts`` queue and return at once."""

    name: str

    @property
    def events_published(self) -> int:
        """Events this sink has really sent on (written, delivered, handed to the broker)."""
        ...

    def send(self, event: dict[str, Any]) -> None: ...

    def counts(self, topic: str, payload: dict[str, Any]) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


def now_iso() -> str:
    """The wall-clock time, ISO 8601 in UTC with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventStage:
    """Turns tracked results into events for one source.

    Args:
        source: The source's name in events and topics (its run name).
        info: The source (``live`` picks the clock, ``fps`` the media time).
        labels: Class names for events.
        zones: Zones on this source, each with the class ids that count (None: all).
        lines: Lines on this source, likewise.
        sinks: Event sinks.
        end_after_s: Seconds unseen before an object's ``end`` (the tracker's lost time).
        stationary_s: Seconds still before ``stationary`` (0: never).
        snapshots: Optional best-snapshot keeper (``offer(event, image)``).
        clips: Optional clip recorder (``trigger(event, t) -> clip path or None``).
    """

    def __init__(
        self,
        source: str,
        info: SourceInfo,
        labels: LabelMap,
        zones: Sequence[tuple[ZoneSpec, frozenset[int] | None]] = (),
        lines: Sequence[tuple[LineSpec, frozenset[int] | None]] = (),
        sinks: Sequence[EventSink] = (),
        *,
        end_after_s: float = 1.0,
        stationary_s: float = 0.0,
        snapshots: Any = None,
        clips: Any = None,
    ) -> None:
        self.source = source
        self.clock = SourceClock(info.live, info.fps)
        self.labels = labels
        self.zone_specs = list(zones)
        self.line_specs = list(lines)
        self.sinks = list(sinks)
        self.end_after_s = end_after_s
        self.stationary_s = stationary_s
        self.snapshots = snapshots
        self.clips = clips
        self.zones: list[ZoneWatch] = []
        self.lines: list[LineWatch] = []
        self.life: Lifecycle | None = None
        self.counted: Counter[str] = Counter()
        self.style = DrawStyle()
        self._last: tuple[float, int] = (0.0, -1)
        self._finished = False

    def time_s(self, result: FrameResult) -> float:
        """The frame's time on the stage's clock (seconds)."""
        return self.clock(result.frame)

    def _start(self, width: int, height: int) -> None:
        size = (width, height)
        self.zones = [ZoneWatch(s, size, c) for s, c in self.zone_specs]
        self.lines = [LineWatch(s, size, c) for s, c in self.line_specs]
        self.life = Lifecycle(size, self.end_after_s, self.stationary_s)
        for z in self.zones:
            self._publish_zone(z)
        for ln in self.lines:
            self._publish_line(ln)

    def __call__(self, result: FrameResult) -> FrameResult:
        """Evaluate one tracked result (results must come in frame order)."""
        frame = result.frame
        if self.life is None:
            self._start(frame.width, frame.height)
        assert self.life is not None
        t = self.time_s(result)
        self._last = (t, frame.index)
        d = result.detections
        changed: set[Any] = set()
        if d.track_ids is not None and len(d):
            sub = d.select(np.flatnonzero(d.track_ids >= 0))  # unconfirmed never count
            if len(sub):
                assert sub.track_ids is not None
                changes = self.life.update(
                    sub.xyxy, sub.scores, sub.class_ids, sub.track_ids, t, frame.index
                )
                for ch in changes:
                    self._change(ch, t, frame.index, result)
                sv_dets = sv_detections(sub.xyxy, sub.class_ids, sub.track_ids)
                for z in self.zones:
                    for c in z.update(sv_dets, t):
                        self._crossing(c, t, frame.index, result)
                        changed.add(z)
                for ln in self.lines:
                    for c in ln.update(sv_dets):
                        self._crossing(c, t, frame.index, result)
                        changed.add(ln)
        for obj in self.life.expire(t):
            changed |= self._end(obj, t, frame.index, "lost")
        self._publish(changed)
        return result

    def _obj_event(self, kind: str, obj: TrackedObject, t: float, frame: int) -> dict[str, Any]:
        return {
            "id": uuid.uuid4().hex,
            "type": kind,
            "source": self.source,
            "track_id": obj.track_id,
            "class": self.labels.name(obj.class_id),
            "class_id": obj.class_id,
            "score": round(obj.score, 4),
            "box": [round(float(v), 1) for v in obj.box],
            "zones": sorted(obj.zones),
            "frame": frame,
            "video_time_s": round(t, 3),
            "time": now_iso(),
        }

    def _change(self, ch: Change, t: float, frame: int, result: FrameResult) -> None:
        assert self.life is not None
        obj = self.life.objects[ch.track_id]
        event = self._obj_event(ch.kind, obj, t, frame)
        if ch.kind == "snapshot":
            if self.snapshots is None:
                return
            event["snapshot"] = self.snapshots.offer(event, obj, result.frame.image)
        self._emit(event, t)

    def _crossing(self, c: Crossing, t: float, frame: int, result: FrameResult) -> None:
        assert self.life is not None
        obj = self.life.objects.get(c.track_id)
        if obj is None:
            return
        if c.kind == "enter":
            obj.zones.add(c.name)
        elif c.kind == "leave":
            obj.zones.discard(c.name)
        event = self._obj_event(c.kind, obj, t, frame)
        if c.kind == "cross":
            event.update(line=c.name, direction=c.direction)
        else:
            event["zone"] = c.name
        if c.seconds is not None:
            event["in_zone_s"] = round(c.seconds, 3)
        self._emit(event, t)

    def _end(self, obj: TrackedObject, t: float, frame: int, reason: str) -> set[Any]:
        changed: set[Any] = set()
        for z in self.zones:
            c = z.forget(obj.track_id, t)
            if c is not None:
                obj.zones.discard(z.name)
                leave = self._obj_event("leave", obj, t, frame)
                leave.update(zone=z.name, in_zone_s=round(c.seconds or 0.0, 3))
                self._emit(leave, t)
                changed.add(z)
        event = self._obj_event("end", obj, t, frame)
        event.update(
            reason=reason,
            first_frame=obj.first_frame,
            last_frame=obj.last_frame,
            duration_s=round(obj.last_s - obj.first_s, 3),
        )
        self._emit(event, t)
        if self.snapshots is not None:
            self.snapshots.finish(obj.track_id)
        return changed

    def _emit(self, event: dict[str, Any], t: float) -> None:
        if self.clips is not None:
            clip = self.clips.trigger(event, t)
            if clip is not None:
                event["clip"] = clip
        self.counted[event["type"]] += 1
        for sink in self.sinks:
            sink.send(event)

    def _names(self, counts: Counter[int]) -> dict[str, int]:
        return {self.labels.name(k): v for k, v in sorted(counts.items())}

    def zone_counts(self, z: ZoneWatch) -> dict[str, Any]:
        return {
            "occupancy": self._names(z.occupancy()),
            "entered": self._names(z.entered),
            "left": self._names(z.left),
            "loitered": self._names(z.loitered),
        }

    def line_counts(self, ln: LineWatch) -> dict[str, Any]:
        return {k: self._names(v) for k, v in ln.counts().items()}

    def _publish_zone(self, z: ZoneWatch) -> None:
        for sink in self.sinks:
            sink.counts(f"zones/{z.name}", self.zone_counts(z))

    def _publish_line(self, ln: LineWatch) -> None:
        for sink in self.sinks:
            sink.counts(f"lines/{ln.name}", self.line_counts(ln))

    def _publish(self, changed: set[Any]) -> None:
        for item in changed:
            if isinstance(item, ZoneWatch):
                self._publish_zone(item)
            else:
                self._publish_line(item)

    def finish(self) -> None:
        """The run ends: every object still alive ends (``reason: run ended``). Idempotent."""
        if self._finished or self.life is None:
            self._finished = True
            return
        self._finished = True
        t, frame = self._last
        changed: set[Any] = set()
        for obj in self.life.end_all():
            changed |= self._end(obj, t, frame, "run ended")
        self._publish(changed)

    def wrap(self, consume: Callable[[FrameResult], bool]) -> Callable[[FrameResult], bool]:
        """``consume`` with this stage in front of it."""

        def evented(result: FrameResult) -> bool:
            return consume(self(result))

        return evented

    def overlay(self, image: np.ndarray, result: FrameResult) -> None:
        """Draw the zones (with their occupancy) and lines (with their counts) on ``image``."""
        for i, z in enumerate(self.zones):
            n = sum(z.occupancy().values())
            draw_region(
                image, z.polygon, f"{z.name} {n}", color_for(1000 + i), self.style, active=n > 0
            )
        for i, ln in enumerate(self.lines):
            c = ln.counts()
            text = f"{ln.name} in {sum(c['in'].values())} out {sum(c['out'].values())}"
            draw_tripwire(image, ln.start, ln.end, text, color_for(2000 + i), self.style)

    def counts(self) -> dict[str, Any]:
        """The zones' and lines' counts per class (what ``detector.run`` returns)."""
        return {
            "lines": {ln.name: self.line_counts(ln) for ln in self.lines},
            "zones": {z.name: self.zone_counts(z) for z in self.zones},
        }

    def summary(self) -> dict[str, Any]:
        """Counts per zone, line, event type and sink, for ``run.json``."""
        return {
            "objects": self.life.started if self.life is not None else 0,
            "events": dict(sorted(self.counted.items())),
            **self.counts(),
            "sinks": {
                s.name: s.describe()
                for s in [*self.sinks, self.snapshots, self.clips]
                if s is not None
            },
        }

    @property
    def frame_sinks(self) -> list[Any]:
        """Sinks of the annotated frames (the clip recorder), for the renderer."""
        return [self.clips] if self.clips is not None else []
