"""What a run's config asks of this package, built for one source: its filter, its event stage
with the sinks open, and whether tracking must be on.

The composition (``detector.app``) calls :func:`wants_events`, :func:`engine_threshold`,
:func:`open_filter` and :func:`open_events`; everything else about events stays here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

from detector.config import Config
from detector.events.clips import CLIPS_DIR, ClipRecorder
from detector.events.filters import DetectionFilter
from detector.events.jsonl import EVENTS_JSONL, EventJsonl
from detector.events.mqtt import MqttSink
from detector.events.snapshots import SNAPSHOTS_DIR, SnapshotKeeper
from detector.events.spec import applies_to
from detector.events.stage import EventStage
from detector.events.webhook import WebhookSink
from detector.labels import LabelMap
from detector.types import SourceInfo

log = logging.getLogger(__name__)


def wants_events(config: Config) -> bool:
    """True when zones, lines or an event output are configured (tracking then switches on)."""
    ev = config.events
    return bool(
        config.zones
        or config.lines
        or ev.jsonl
        or ev.mqtt
        or ev.webhook
        or ev.snapshots
        or ev.clips is not None
    )


def class_floors(config: Config, labels: LabelMap) -> dict[int, float]:
    """``detect.thresholds`` by class id (names resolved through the label map)."""
    floors: dict[int, float] = {}
    for cls, score in config.detect.thresholds:
        ids = labels.resolve_classes([cls], key=f"detect.thresholds.{cls}") or frozenset()
        for cid in ids:
            floors[cid] = score
    return floors


def engine_threshold(config: Config, labels: LabelMap, base: float) -> float:
    """The engine's score threshold: ``base``, lowered to the lowest per-class floor."""
    floors = class_floors(config, labels)
    return min([base, *floors.values()])


def open_filter(
    config: Config, labels: LabelMap, floor: float, source: tuple[str, int, str]
) -> DetectionFilter | None:
    """The detection filter of one source (``(name, index, uri)``), or None when it keeps all."""
    dc = config.detect
    masks = [
        (m, labels.resolve_classes(m.classes, key="detect.ignore.classes"))
        for m in dc.ignore
        if applies_to(m.source, *source)
    ]
    filt = DetectionFilter(floor, class_floors(config, labels), dc.min_area, dc.max_area, masks)
    return filt if filt.active else None


def open_events(
    config: Config,
    run_dir: Path | None,
    labels: LabelMap,
    info: SourceInfo,
    stack: ExitStack,
    *,
    source: tuple[str, int, str],
    extra: Sequence[Any] = (),
) -> EventStage | None:
    """The event stage of one source with its sinks open in ``stack`` (closed after the stage
    has ended every object), or None when nothing about events is configured (and no
    ``extra`` sink is given). Without a ``run_dir`` (a stream of the Python API) there is no
    events.jsonl, snapshot or clip: events go to MQTT, the webhook and ``extra``."""
    if not wants_events(config) and not extra:
        return None
    name = source[0]
    zones = _for_source(config.zones, "zones", labels, source)
    lines = _for_source(config.lines, "lines", labels, source)
    sinks = [*extra, *_open_sinks(config, run_dir, name, stack)]
    snapshots, clips = _open_keepers(config, run_dir, name, labels, info, stack)
    stage = EventStage(
        name,
        info,
        labels,
        zones,
        lines,
        sinks,
        end_after_s=config.detect.track_lost_s,
        stationary_s=config.events.stationary_s,
        snapshots=snapshots,
        clips=clips,
    )
    stack.callback(stage.finish)  # runs first: every object's end reaches the sinks
    log.info(
        "events: %d zone(s), %d line(s) → %s",
        len(zones),
        len(lines),
        ", ".join(s.name for s in [*sinks, snapshots, clips] if s is not None) or "run.json",
    )
    return stage


def _for_source(
    shapes: Sequence[Any], kind: str, labels: LabelMap, source: tuple[str, int, str]
) -> list[tuple[Any, frozenset[int] | None]]:
    """The zones or lines (``kind``) that apply to ``source``, each with its class ids."""
    return [
        (shape, labels.resolve_classes(shape.classes, key=f"{kind}.{shape.name}.classes"))
        for shape in shapes
        if applies_to(shape.source, *source)
    ]


def _open_sinks(config: Config, run_dir: Path | None, name: str, stack: ExitStack) -> list[Any]:
    """The event sinks the config names, open in ``stack``: events.jsonl (with a run
    folder), MQTT, the webhook."""
    ev = config.events
    sinks: list[Any] = []
    if run_dir is not None and ev.jsonl is not False:
        sinks.append(stack.enter_context(closing(EventJsonl(run_dir / EVENTS_JSONL))))
    if ev.mqtt is not None:
        sinks.append(stack.enter_context(closing(MqttSink(ev.mqtt, name, ev.queue_size))))
    if ev.webhook is not None:
        sinks.append(stack.enter_context(closing(WebhookSink(ev.webhook, ev.queue_size))))
    return sinks


def _open_keepers(
    config: Config,
    run_dir: Path | None,
    name: str,
    labels: LabelMap,
    info: SourceInfo,
    stack: ExitStack,
) -> tuple[SnapshotKeeper | None, ClipRecorder | None]:
    """The snapshot keeper and the clip recorder the config asks for, open in ``stack``
    (both need a run folder)."""
    ev = config.events
    keep = ev.clips
    if run_dir is None:
        if ev.snapshots or keep is not None:
            log.warning("events.snapshots and events.clips need a run folder: off in a stream")
        return None, None
    clips = snapshots = None
    if keep is not None:
        recorder = ClipRecorder(run_dir / CLIPS_DIR, name, keep, info.fps, info.live)
        clips = stack.enter_context(closing(recorder))
    if ev.snapshots:
        age, size = (keep.max_age_h, keep.max_size_mb) if keep is not None else (None, None)
        keeper = SnapshotKeeper(run_dir / SNAPSHOTS_DIR, name, labels, 8, age, size)
        snapshots = stack.enter_context(closing(keeper))
    return snapshots, clips
