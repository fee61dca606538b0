"""One open source through the model into its run folder, with its record written however it ends.

:func:`run_source` is the local engine's unit of work: it opens the outputs, the renderer
and the tracker, runs :func:`~detector.pipeline.stages.run_pipeline`, and completes the
source's :class:`~detector.outputs.record.RunRecord` (status, outputs, numbers, skipped
files, link health) on every exit path: end of source, q, Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from detector.config import Config
from detector.errors import RunInterrupted, StageError
from detector.events.setup import engine_threshold, open_events, open_filter, wants_events
from detector.labels import LabelMap
from detector.outputs import describe_outputs, open_outputs
from detector.outputs.record import RunRecord
from detector.pipeline.render import Renderer, RenderOptions
from detector.pipeline.signals import StopSignals
from detector.pipeline.stages import PipelineOptions, inference_workers, run_pipeline
from detector.sources import ReconnectPolicy, SourceSpec, open_source
from detector.track import TrackStage
from detector.track.association import require_trackers
from detector.track.settings import TrackSettings
from detector.types import RunStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceJob:
    """What every source of a local run shares: the config, labels, engine and tracker."""

    config: Config
    labels: LabelMap
    engine: Any
    track: TrackSettings | None


@dataclass(frozen=True)
class SourceName:
    """Who a source is to the events' per-source settings: its name, index and URI."""

    name: str = ""
    index: int = 0


@dataclass
class _Parts:
    """What a source's run opened, for its record at the end."""

    stats: RunStats | None = None
    sinks: dict[str, Any] = field(default_factory=dict)
    render: Renderer | None = None
    stage: Any = None
    events: Any = None
    filter: Any = None


def run_source(
    job: SourceJob,
    source: Any,
    workers: int,
    record: RunRecord,
    *,
    feed: Any = None,
    guard: StopSignals | None = None,
    halt: threading.Event | None = None,
    label: str = "",
    who: SourceName | None = None,
) -> RunStats:
    """Run ``source`` into ``record.run_dir``; ``run.json`` written at the start and the end."""
    if feed is not None:  # the feed counts what the source delivers (stalled vs blocked)
        source = feed.watch(source)
        feed.attach(state=lambda: link_state(source), skipped=lambda: source.skipped)
    record.update(source=asdict(source.info))
    record.start()  # a run killed outright (SIGKILL, out of memory) shows as "running"
    parts = _Parts()
    info = source.info
    who = who or SourceName()
    named = (who.name or label or Path(info.uri).stem or str(info.kind), who.index, info.uri)
    try:
        stats = _drive(job, source, workers, record, parts, feed, guard, halt, label, named)
        record.update(status="interrupted" if halt is not None and halt.is_set() else "ok")
    except BaseException as exc:
        record.fail(exc)
        raise
    finally:
        saved = _close_record(record, source, parts)
        if feed is not None:
            feed.end()
    if saved is not None and record.data["status"] == "ok":
        raise saved  # the run went well but its record could not be written
    return stats


def _drive(
    job: SourceJob,
    source: Any,
    workers: int,
    record: RunRecord,
    parts: _Parts,
    feed: Any,
    guard: StopSignals | None,
    halt: threading.Event | None,
    label: str,
    who: tuple[str, int, str],
) -> RunStats:
    config, info = job.config, source.info
    with ExitStack() as outputs:
        parts.sinks = open_outputs(
            config.output,
            record.run_dir,
            job.labels,
            info,
            outputs,
            max_frames=config.run.max_frames,
            web_feed=feed,
            min_score=config.detect.threshold,
        )
        parts.events = open_events(config, record.run_dir, job.labels, info, outputs, source=who)
        if feed is not None and parts.events is not None:  # the metrics count their events
            feed.count_events(parts.events.sinks)
        parts.render = render = _renderer(job, parts, guard, source)
        consume = _consumer(job, info, parts, render, who)
        options = PipelineOptions(
            detect_every=config.detect.detect_every,
            workers=workers,
            max_frames=config.run.max_frames,
            fps_interval_s=config.run.fps_interval_s,
            warmup_frames=config.run.warmup_frames,
            label=label,
        )
        log.info("running %s (%s) → %s", info.uri, info.kind, record.run_dir)
        try:
            parts.stats = run_pipeline(source, job.engine, consume, options, stop=halt)
        except (StageError, RunInterrupted) as exc:
            parts.stats = _counted(exc.stats, render.frames)
            raise
        finally:
            if guard is not None:  # from here on a signal waits: the sinks finalize
                guard.deferring = True
    if parts.events is not None and parts.stats is not None:  # every object ended: final counts
        parts.stats = replace(parts.stats, counts=parts.events.counts())
    if guard is not None and guard.fired:  # mid-frame, finalizing, or swallowed in start-up
        parts.stats = replace(parts.stats, interrupted=True) if parts.stats else None
        raise KeyboardInterrupt
    assert parts.stats is not None
    return parts.stats


def _renderer(job: SourceJob, parts: _Parts, guard: StopSignals | None, source: Any) -> Renderer:
    """The render stage: every sink, the events' frame sinks and their overlay."""
    config, events = job.config, parts.events
    dc = config.detect
    return Renderer(
        job.labels,
        list(parts.sinks.values()) + (events.frame_sinks if events is not None else []),
        RenderOptions(
            hud=config.output.hud,
            report_every=dc.report_every,
            report_threshold=dc.report_threshold,
            fps_interval_s=config.run.fps_interval_s,
        ),
        guard=guard,
        status=lambda: _hud_state(source),
        overlays=[events.overlay] if events is not None else [],
    )


def _consumer(
    job: SourceJob, info: Any, parts: _Parts, render: Renderer, who: tuple[str, int, str]
) -> Any:
    """What each result goes through, last first: the renderer, the event stage, the tracker
    (ids per source), the detection filter (filtered boxes never start a track)."""
    consume: Any = parts.events.wrap(render) if parts.events is not None else render
    consume, parts.stage, parts.filter = _stages(
        job.config, job.labels, info, consume, who, job.track
    )
    return consume


def reconnect_policy(config: Config) -> ReconnectPolicy:
    """How live sources reconnect (``source.reconnect*``, ``source.stall_timeout_s``)."""
    sc = config.source
    return ReconnectPolicy(
        attempts=sc.reconnect,
        first_delay_s=sc.reconnect_delay_s,
        max_delay_s=max(sc.reconnect_max_delay_s, sc.reconnect_delay_s),
        stall_timeout_s=sc.stall_timeout_s,
    )


def open_spec(config: Config, spec: SourceSpec) -> Any:
    """Open ``spec`` as ``source.*`` asks (size, how live sources reconnect)."""
    sc = config.source
    return open_source(spec, width=sc.width, height=sc.height, reconnect=reconnect_policy(config))


def run_spec(
    job: SourceJob,
    spec: SourceSpec,
    record: RunRecord,
    *,
    feed: Any = None,
    halt: threading.Event | None = None,
    index: int = 0,
) -> RunStats:
    """Open ``spec`` and run it through the shared model into ``record``'s folder until it
    ends or ``halt`` (one of several sources, or a source the service adds)."""
    with open_spec(job.config, spec) as source:
        workers = inference_workers(source.info.live, job.config.model.workers)
        who = SourceName(spec.run_name, index)
        return run_source(
            job, source, workers, record, feed=feed, halt=halt, label=spec.run_name, who=who
        )


def model_threshold(config: Config, labels: LabelMap, track: TrackSettings | None) -> float:
    """The engine's threshold: ``detect.threshold``, lower for ByteTrack (it takes the
    low-score detections too), lowered to the lowest per-class floor (``detect.thresholds``;
    the filter in front of the tracker restores each class's own)."""
    base = track.detect_threshold if track is not None else config.detect.threshold
    return engine_threshold(config, labels, base)


def track_settings(config: Config) -> TrackSettings | None:
    """The tracker ``detect.track`` asks for (None: ``none``), checked, its library found."""
    dc = config.detect
    kind = dc.track
    if kind == "none" and wants_events(config):  # zones and events follow tracked objects
        kind = "bytetrack"
    if kind == "none":
        return None

    settings = TrackSettings(
        kind,
        threshold=dc.threshold,
        low_threshold=min(dc.track_low_threshold, dc.threshold),
        lost_s=dc.track_lost_s,
        min_iou=dc.track_min_iou,
        motion=dc.track_motion,
    )
    require_trackers()
    return settings


def analysis_stages(
    config: Config, labels: LabelMap, info: Any, consume: Any, who: tuple[str, int, str]
) -> tuple[Any, Any, Any]:
    """``consume`` behind the stages results pass first, in frame order: the detection filter
    (per-class thresholds, areas, masks), then the tracker ``detect.track`` asks for (ids per
    source); and those two (each or None). ``who`` is the source's ``(name, index, uri)``."""
    return _stages(config, labels, info, consume, who, track_settings(config))


def _stages(
    config: Config,
    labels: LabelMap,
    info: Any,
    consume: Any,
    who: tuple[str, int, str],
    track: TrackSettings | None,
) -> tuple[Any, Any, Any]:
    stage = None
    if track is not None:
        stage = TrackStage(track, info, detect_every=config.detect.detect_every)
        consume = stage.wrap(consume)
        log.info(
            "tracking with %s, %s motion (%s clock)",
            track.kind,
            track.motion,
            "capture" if info.live else "media",
        )
    floor = track.detect_threshold if track is not None else config.detect.threshold
    filt = open_filter(config, labels, floor, who)
    if filt is not None:  # before the tracker: filtered boxes never start a track
        consume = filt.wrap(consume)
    return consume, stage, filt


def _close_record(record: RunRecord, source: Any, parts: _Parts) -> Any:
    """Complete and write the record: outputs, numbers, tracker, how the source ended."""
    record.update(outputs=describe_outputs(parts.sinks))
    if parts.stage is not None:
        record.update(track=parts.stage.summary())
    if parts.filter is not None:
        record.update(filtered=parts.filter.summary())
    if parts.events is not None:
        record.update(events=parts.events.summary())
    record.update(stats=parts.stats.to_dict() if parts.stats is not None else None)
    if source.end_note:
        record.update(source_end=source.end_note)
    health = getattr(source, "health", None)
    if health is not None:
        record.update(source_health=health.to_dict())
    record.skipped(source.skips)
    if parts.render is not None and parts.render.unknown_classes:
        labels = {**record.data.get("labels", {})}
        labels["unknown_class_ids"] = dict(sorted(parts.render.unknown_classes.items()))
        record.update(labels=labels)
    return record.finish()


def link_state(source: Any) -> str | None:
    """A reconnecting source's state (``connected``, ``reconnecting 2``...), else None."""
    health = getattr(source, "health", None)
    return str(health.label) if health is not None else None


def _hud_state(source: Any) -> str | None:
    """The HUD's source line: only while a live source is not connected."""
    state = link_state(source)
    return None if state in (None, "connected") else state


def _counted(stats: RunStats | None, written: int) -> RunStats | None:
    """Stats whose processed count is the frames every output holds (a stop may land
    between the last frame's writes and the pipeline's count)."""
    if stats is None or stats.frames_processed == written:
        return stats
    return replace(stats, frames_processed=written)
