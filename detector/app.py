"""Composition: build the detection app from a ``Config`` and run it to the end.

``run_app`` is the only place that knows every part: it resolves the label map and class
filter, opens the source(s), loads the model once, starts the web view if asked, opens the
outputs in a new run folder, runs the pipeline with the renderer, and writes ``run.json``
and a summary however the run ends (end of source, q, Ctrl-C, SIGTERM or an error).

One source runs on the main thread (a window must live there). Several sources (``--source``
given more than once, or a folder of videos) share the one model: each gets a sub-folder of
the run folder and its own pipeline on its own thread (see :mod:`detector.pipeline.many`);
one summary covers them all, and the run fails (exit 1) at the end if any source failed.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TextIO

from detector.config import Config, ModelConfig, parse_address
from detector.distributed.driver import run_ray
from detector.engine import Engine
from detector.errors import (
    ConfigError,
    DetectorError,
    RunInterrupted,
    SinkError,
    SourceError,
    StageError,
)
from detector.events.setup import engine_threshold, open_events, open_filter, wants_events
from detector.labels import LabelMap, load_label_map
from detector.model.backends import check_backend, load_backend_model
from detector.model.loader import TensorNames, require_model_path
from detector.outputs import RUN_JSON, describe_outputs, make_run_dir, open_outputs, write_json
from detector.outputs.rundir import write_csv
from detector.outputs.summary import now_iso, print_summary, versions
from detector.pipeline.many import FAILED, INTERRUPTED, run_jobs
from detector.pipeline.render import Renderer, RenderOptions
from detector.pipeline.signals import StopSignals
from detector.pipeline.stages import PipelineOptions, inference_workers, run_pipeline
from detector.sources import ReconnectPolicy, SourceSpec, open_source, parse_source, redact
from detector.sources.spec import expand_sources
from detector.track import TrackStage
from detector.track.association import require_trackers
from detector.track.settings import TrackSettings
from detector.types import RunStats, SourceInfo

log = logging.getLogger(__name__)

SKIPPED_CSV = "skipped.csv"
# run.json is written at the start padded by this much, so its final version can replace it
# in place when the disk is full (no new blocks needed).
_RUN_JSON_RESERVE = 16384


def intra_op_threads(configured: int, workers: int) -> int:
    """Threads per op: the configured number, or for 0 the cores shared among the workers.

    TensorFlow's own default (one thread per core in every concurrent ``Session.run``)
    oversubscribes the cores when several workers run at once: on 2 cores, 2 workers ran
    the sample video at 45 FPS with TF's default and at 90 FPS with one thread each.
    """
    if configured or workers <= 1:
        return configured
    return max(1, (os.cpu_count() or 1) // workers)


def run_app(config: Config, *, out: TextIO | None = None) -> RunStats:
    """Run the detection app described by ``config``.

    Args:
        config: The validated configuration.
        out: Where the run summary is printed (default: stdout).

    Returns:
        The run's numbers (several sources: their sums, see :func:`_total`).

    Raises:
        DetectorError: Config (exit 2), source, model, sink or stage errors (exit 1); with
            several sources, once all have ended, naming every source that failed.
        KeyboardInterrupt: Ctrl-C or SIGTERM, after the outputs were finalized and
            ``run.json`` written (exit 130).
    """

    check_backend(config.model.backend, config.model.precision)  # before anything opens
    if config.run.engine == "ray":  # the same run on a pool of Ray actors
        if wants_events(config):  # zones and events follow one source's frames in order
            raise ConfigError(
                "zones, lines and events cannot run with run.engine 'ray'",
                hint="they follow one source's tracked objects in order: use --engine local",
            )
        if config.detect.track != "none":  # actors see frame ranges, not one ordered stream
            raise ConfigError(
                f"detect.track '{config.detect.track}' cannot run with run.engine 'ray'",
                hint="a tracker follows one source's frames in order: use --engine local, "
                "or set detect.track: none",
            )

        return run_ray(config, out=out)
    out = out if out is not None else sys.stdout
    mc = config.model

    require_model_path(mc.path)
    labels = load_label_map(mc.labels) if mc.labels is not None else LabelMap({})
    class_ids = labels.resolve_classes(config.detect.classes)
    uris = config.source.uris
    specs = expand_sources(uris)
    many = len(specs) > 1 or len(uris) > 1 or specs[0].uri != str(uris[0]).strip()
    if many:
        return _run_many(config, specs, labels, class_ids, out)
    return _run_one(config, specs[0], labels, class_ids, out)


# -- shared parts -------------------------------------------------------------------------


def load_configured_model(mc: ModelConfig, workers: int) -> Any:
    """Load the model ``model:`` describes, for ``workers`` concurrent callers (a context
    manager: ``with`` closes it); the app and the public API load it this one way."""

    return load_backend_model(  # tf (whole graph, or split) or openvino: model.backend
        mc.backend,
        mc.path,
        workers=workers,
        split=mc.split,
        signature=mc.signature,
        tensors=TensorNames(
            mc.input_tensor,
            mc.boxes_tensor,
            mc.scores_tensor,
            mc.classes_tensor,
            mc.num_tensor,
        ),
        device=mc.device,
        allow_memory_growth=mc.allow_memory_growth,
        intra_op_threads=intra_op_threads(mc.intra_op_threads, workers),
        inter_op_threads=mc.inter_op_threads,
        allow_unsafe_ops=mc.allow_unsafe_ops,
        precision=mc.precision,
        cache_dir=mc.cache_dir,
        init_missing=mc.init_missing,
    )


def load_model(
    config: Config, stack: ExitStack, workers: int, width: int, height: int
) -> tuple[Any, dict[str, Any]]:
    """Load the model once (closed with ``stack``), warm it up; it and its ``run.json`` entry."""
    mc = config.model
    threads = intra_op_threads(mc.intra_op_threads, workers)
    model: Any = stack.enter_context(load_configured_model(mc, workers))
    warmup_ms = model.warm_up(width=width, height=height, runs=max(1, config.run.warmup_frames))
    entry = {
        "path": str(model.path),
        "backend": getattr(model, "backend", "tf"),
        "format": model.format,
        "device": model.device,
        "precision": model.precision,
        "workers": workers,
        "intra_op_threads": threads,
        "load_s": round(model.load_s, 3),
        "warmup_ms": round(warmup_ms, 3),
    }
    choice = getattr(model, "backend_choice", None)
    if choice is not None:  # why this backend: backend auto's decision, or the config's
        entry["backend_choice"] = choice.to_dict()
    return model, entry


def _start_web(config: Config, specs: list[SourceSpec], stack: ExitStack) -> Any:
    """The web view's hub (a feed per source) with its server running, or None."""
    if config.output.serve is None:
        return None
    from detector.outputs.web import Hub, WebServer, access_from

    host, port = parse_address(config.output.serve)
    hub = Hub()
    for spec in specs:
        hub.add_feed(spec.run_name, spec.shown, live=spec.live)
    title = specs[0].shown if len(specs) == 1 else f"{len(specs)} sources"
    server = WebServer(
        hub,
        host,
        port,
        title=f"detector — {title}",
        access=access_from(config.serve),
        insecure=config.serve.insecure,
    )
    stack.enter_context(server)
    return hub


def analysis_stages(
    config: Config,
    labels: LabelMap,
    info: SourceInfo,
    consume: Any,
    who: tuple[str, int, str],
) -> tuple[Any, Any, Any]:
    """``consume`` behind the stages results pass first, in frame order: the detection filter
    (per-class thresholds, areas, masks), then the tracker; and those two (each or None).

    ``who`` is the source's ``(name, index, uri)`` (masks may name a source)."""

    dc = config.detect
    stage = None
    settings = track_settings(config)
    if settings is not None:  # each source its own tracker: ids are per source
        stage = TrackStage(settings, info, detect_every=dc.detect_every)
        consume = stage.wrap(consume)
        log.info(
            "tracking with %s, %s motion (%s clock)",
            settings.kind,
            settings.motion,
            "capture" if info.live else "media",
        )
    filt = open_filter(config, labels, _detect_threshold(dc.threshold, settings), who)
    if filt is not None:  # before the tracker: filtered boxes never start a track
        consume = filt.wrap(consume)
    return consume, stage, filt


def reconnect_policy(config: Config) -> ReconnectPolicy:
    """How live sources reconnect (``source.reconnect*``, ``source.stall_timeout_s``)."""
    sc = config.source
    return ReconnectPolicy(
        attempts=sc.reconnect,
        first_delay_s=sc.reconnect_delay_s,
        max_delay_s=max(sc.reconnect_max_delay_s, sc.reconnect_delay_s),
        stall_timeout_s=sc.stall_timeout_s,
    )


def _redacted(data: Any) -> Any:
    """``data`` with any ``scheme://user:password@`` in its strings masked."""
    if isinstance(data, dict):
        return {k: _redacted(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_redacted(v) for v in data]
    return redact(data) if isinstance(data, str) else data


def new_record(config: Config, labels: LabelMap, class_ids: Any) -> dict[str, Any]:
    """The start of a run's ``run.json`` (credentials masked)."""
    return _record(config, labels, class_ids)


def _record(config: Config, labels: LabelMap, class_ids: Any) -> dict[str, Any]:
    return {
        "status": "running",
        "started": now_iso(),
        # Credentials in a stream URL never reach run.json.
        "argv": [redact(a) for a in sys.argv[1:]],
        "config_file": str(config.path) if config.path else None,
        "config": _redacted(config.to_dict()),
        "labels": {
            "path": str(config.model.labels) if config.model.labels else None,
            "classes": len(labels),
        },
        "class_filter": sorted(class_ids) if class_ids else None,
    }


def _run_source(
    config: Config,
    source: Any,
    engine: Any,
    labels: LabelMap,
    workers: int,
    run_dir: Path,
    record: dict[str, Any],
    *,
    feed: Any = None,
    guard: StopSignals | None = None,
    halt: threading.Event | None = None,
    label: str = "",
    index: int = 0,
    name: str = "",
) -> RunStats:
    """One open source through the model into ``run_dir``; ``run.json`` written however it
    ends (``record`` is completed in place)."""

    info = source.info
    if feed is not None:  # the feed counts what the source delivers (stalled vs blocked)
        source = feed.watch(source)
        feed.attach(state=lambda: _link_state(source), skipped=lambda: source.skipped)
    record.update(run_dir=str(run_dir), source=asdict(info))
    # Written now, so a run killed outright (SIGKILL, out of memory) shows as "running".
    write_json(run_dir / RUN_JSON, record, reserve_bytes=_RUN_JSON_RESERVE)
    stats: RunStats | None = None
    sinks: dict[str, Any] = {}
    render: Renderer | None = None
    stage = events = filt = None
    try:
        with ExitStack() as outputs:
            sinks = open_outputs(
                config.output,
                run_dir,
                labels,
                info,
                outputs,
                max_frames=config.run.max_frames,
                web_feed=feed,
                min_score=config.detect.threshold,
            )
            dc = config.detect
            who = (name or label or Path(info.uri).stem or str(info.kind), index, info.uri)
            events = open_events(config, run_dir, labels, info, outputs, source=who)
            render = Renderer(
                labels,
                list(sinks.values()) + (events.frame_sinks if events is not None else []),
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
            consume: Any = events.wrap(render) if events is not None else render
            consume, stage, filt = analysis_stages(config, labels, info, consume, who)
            options = PipelineOptions(
                detect_every=dc.detect_every,
                workers=workers,
                max_frames=config.run.max_frames,
                fps_interval_s=config.run.fps_interval_s,
                warmup_frames=config.run.warmup_frames,
                label=label,
            )
            log.info("running %s (%s) → %s", info.uri, info.kind, run_dir)
            try:
                stats = run_pipeline(source, engine, consume, options, stop=halt)
            except (StageError, RunInterrupted) as exc:
                stats = _counted(exc.stats, render.frames)
                raise
            finally:
                if guard is not None:  # from here on a signal waits: the sinks finalize
                    guard.deferring = True
        if events is not None and stats is not None:  # every object has ended: final counts
            stats = replace(stats, counts=events.counts())
        if guard is not None and guard.pending:  # a signal arrived mid-frame or finalizing
            stats = replace(stats, interrupted=True)
            raise KeyboardInterrupt
        record["status"] = "interrupted" if halt is not None and halt.is_set() else "ok"
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        raise
    except DetectorError as exc:
        record.update(status="error", error=str(exc))
        raise
    except Exception as exc:
        record.update(status="error", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        record["finished"] = now_iso()
        record["outputs"] = describe_outputs(sinks)
        if stage is not None:
            record["track"] = stage.summary()
        if filt is not None:
            record["filtered"] = filt.summary()
        if events is not None:
            record["events"] = events.summary()
        record["stats"] = stats.to_dict() if stats is not None else None
        _record_source(record, source, run_dir)
        if render is not None and render.unknown_classes:
            record["labels"] = {
                **record.get("labels", {}),
                "unknown_class_ids": dict(sorted(render.unknown_classes.items())),
            }
        saved = _save_record(run_dir, record)
        if feed is not None:
            feed.end()
        if saved is not None and record["status"] == "ok":
            raise saved  # the run went well but its record could not be written
    assert stats is not None
    return stats


def run_spec(
    config: Config,
    spec: SourceSpec,
    engine: Any,
    labels: LabelMap,
    run_dir: Path,
    record: dict[str, Any],
    *,
    feed: Any = None,
    halt: threading.Event | None = None,
    index: int = 0,
) -> RunStats:
    """Open ``spec`` and run it through ``engine`` into ``run_dir`` until it ends or ``halt``;
    ``run.json`` is written however it ends (``record`` is completed in place)."""
    with open_source(
        spec,
        width=config.source.width,
        height=config.source.height,
        reconnect=reconnect_policy(config),
    ) as source:
        workers = inference_workers(source.info.live, config.model.workers)
        return _run_source(
            config,
            source,
            engine,
            labels,
            workers,
            run_dir,
            record,
            feed=feed,
            halt=halt,
            label=spec.run_name,
            index=index,
            name=spec.run_name,
        )


def _link_state(source: Any) -> str | None:
    """A reconnecting source's state (``connected``, ``reconnecting 2``...), else None."""
    health = getattr(source, "health", None)
    return str(health.label) if health is not None else None


def _hud_state(source: Any) -> str | None:
    """The HUD's source line: only while a live source is not connected."""
    state = _link_state(source)
    return None if state in (None, "connected") else state


def _record_source(record: dict[str, Any], source: Any, run_dir: Path) -> None:
    """How the source ended: cut short, skipped files (``skipped.csv``), link health."""
    if source.end_note:
        record["source_end"] = source.end_note
    health = getattr(source, "health", None)
    if health is not None:
        record["source_health"] = health.to_dict()
    if source.skips:
        try:
            write_csv(run_dir / SKIPPED_CSV, ("path", "reason"), source.skips)
            record["outputs"]["skipped"] = {"path": SKIPPED_CSV, "count": len(source.skips)}
        except SinkError as exc:
            log.error("%s", exc)


def _save_record(run_dir: Path, record: dict[str, Any]) -> SinkError | None:
    """Write the final ``run.json``; on failure log it and return the error (never raise
    over the run's own outcome, which the summary still reports)."""
    try:
        write_json(run_dir / RUN_JSON, record)
        return None
    except SinkError as exc:
        log.error("%s", exc)
        return exc


# -- one source ---------------------------------------------------------------------------


def _run_one(
    config: Config, spec: SourceSpec, labels: LabelMap, class_ids: Any, out: TextIO
) -> RunStats:
    mc = config.model
    record = _record(config, labels, class_ids)
    track = track_settings(config)  # before the model: a config error comes fast
    with StopSignals().installed() as stop, ExitStack() as stack:
        hub = _start_web(config, [spec], stack)
        source = stack.enter_context(
            open_source(
                spec,
                width=config.source.width,
                height=config.source.height,
                reconnect=reconnect_policy(config),
            )
        )
        info = source.info
        workers = inference_workers(info.live, mc.workers)
        model, record["model"] = load_model(
            config, stack, workers, info.width or 640, info.height or 480
        )
        if hub is not None:  # /readyz: ready
            hub.model = record["model"]
        record["versions"] = versions()
        run_dir = make_run_dir(config.output.dir, config.output.name or spec.run_name)
        dc = config.detect
        engine = Engine(model, model_threshold(config, labels, track), class_ids, dc.max_boxes)
        stats: RunStats | None = None
        try:
            stats = _run_source(
                config,
                source,
                engine,
                labels,
                workers,
                run_dir,
                record,
                feed=hub.feeds[0] if hub is not None else None,
                guard=stop,
                name=spec.run_name,
            )
        finally:
            if stats is None and record.get("stats"):
                stats = RunStats(**record["stats"])
            print_summary(out, record, stats, run_dir)
    assert stats is not None
    return stats


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


def _detect_threshold(threshold: float, track: TrackSettings | None) -> float:
    """The engine's score threshold: ``detect.threshold``, lower for ByteTrack (it also takes
    the low-score detections; the stage decides what is shown)."""
    return track.detect_threshold if track is not None else threshold


def model_threshold(config: Config, labels: LabelMap, track: TrackSettings | None) -> float:
    """The engine's threshold, lowered to the lowest per-class floor (``detect.thresholds``;
    the filter in front of the tracker restores each class's own)."""

    return engine_threshold(config, labels, _detect_threshold(config.detect.threshold, track))


def _counted(stats: RunStats | None, written: int) -> RunStats | None:
    """Stats whose processed count is the frames every output holds (a stop may land
    between the last frame's writes and the pipeline's count)."""
    if stats is None or stats.frames_processed == written:
        return stats
    return replace(stats, frames_processed=written)


# -- several sources ----------------------------------------------------------------------


def _run_many(
    config: Config, specs: list[SourceSpec], labels: LabelMap, class_ids: Any, out: TextIO
) -> RunStats:
    mc = config.model
    if config.output.show:
        log.warning(
            "output.show: the window shows one source; with %d sources, watch them "
            "with --serve PORT (one page, every source)",
            len(specs),
        )
        config = replace(config, output=replace(config.output, show=False))
    live = sum(1 for s in specs if s.live)
    file_workers = mc.workers if live < len(specs) else 0
    record = _record(config, labels, class_ids)
    track = track_settings(config)  # before the model: a config error comes fast
    with StopSignals().installed(), ExitStack() as stack:
        hub = _start_web(config, specs, stack)
        model, record["model"] = load_model(config, stack, live + file_workers, 640, 480)
        if hub is not None:  # /readyz: ready
            hub.model = record["model"]
        record["versions"] = versions()
        name = config.output.name or _many_name(config.source.uris, specs)
        run_dir = make_run_dir(config.output.dir, name)
        dc = config.detect
        engine = Engine(model, model_threshold(config, labels, track), class_ids, dc.max_boxes)
        halt = threading.Event()

        def job(i: int, spec: SourceSpec) -> Any:
            def run(halt: threading.Event) -> Any:
                sub = dict(record, started=now_iso())
                sub_dir = make_run_dir(run_dir, spec.run_name)
                sub["run_dir"] = str(sub_dir)
                feed = hub.feeds[i] if hub is not None else None
                try:
                    return sub, run_spec(
                        config, spec, engine, labels, sub_dir, sub, feed=feed, halt=halt, index=i
                    )
                except BaseException as exc:
                    if "finished" not in sub:  # it failed before its run began
                        sub.update(
                            status="error",
                            error=str(exc),
                            finished=now_iso(),
                            source={"uri": spec.shown, "kind": str(spec.kind)},
                        )
                        write_json(sub_dir / RUN_JSON, sub)
                        if feed is not None:
                            feed.end()
                    exc.result = (sub, None)  # type: ignore[attr-defined]
                    raise

            return run

        jobs = [(spec.shown, spec.live, job(i, spec)) for i, spec in enumerate(specs)]
        interrupted = False
        try:
            outcomes = run_jobs(jobs, halt)
        except KeyboardInterrupt as exc:
            outcomes = exc.outcomes  # type: ignore[attr-defined]
            interrupted = True
        failed = [o for o in outcomes if o.status == FAILED]
        record["sources"] = [_source_entry(o, run_dir) for o in outcomes]
        status = (
            "interrupted"
            if interrupted or any(o.status == INTERRUPTED for o in outcomes)
            else "failed"
            if failed
            else "ok"
        )
        record.update(
            status=status, finished=now_iso(), run_dir=str(run_dir), failed=[o.name for o in failed]
        )
        total = _total([o.result[1] for o in outcomes if o.result and o.result[1]], interrupted)
        record["stats"] = total.to_dict()
        write_json(run_dir / RUN_JSON, record)
        _print_many(out, record, run_dir)
    if interrupted:
        raise KeyboardInterrupt
    if failed:
        names = ", ".join(f"'{o.name}'" for o in failed)
        raise SourceError(
            f"{len(failed)} of {len(outcomes)} sources failed: {names}",
            hint=f"the others completed; each failure's reason is in the summary above and "
            f"in its folder's {RUN_JSON}",
        )
    return total


def _many_name(uris: tuple[str, ...], specs: list[SourceSpec]) -> str:
    """A folder of videos: the folder's name; several sources: ``sources``."""
    if len(uris) == 1:
        return parse_source(uris[0]).run_name
    return "sources"


def _source_entry(outcome: Any, run_dir: Path) -> dict[str, Any]:
    sub, stats = outcome.result if outcome.result else ({}, None)
    folder = sub.get("run_dir")
    return {
        "source": outcome.name,
        "status": outcome.status,
        "error": outcome.error,
        "run_dir": str(Path(folder).relative_to(run_dir)) if folder else None,
        "frames": stats.frames_processed if stats is not None else None,
        "fps": round(stats.fps, 2) if stats is not None else None,
        "outputs": sub.get("outputs"),
    }


def _total(all_stats: list[RunStats], interrupted: bool) -> RunStats:
    """Every source's numbers summed (rates: the sum of the sources' rates)."""

    def add(name: str) -> int:
        return sum(int(getattr(s, name)) for s in all_stats)

    means = [s.inference_ms_mean for s in all_stats if s.inference_ms_mean is not None]
    p50s = [s.inference_ms_p50 for s in all_stats if s.inference_ms_p50 is not None]
    return RunStats(
        frames_read=add("frames_read"),
        frames_processed=add("frames_processed"),
        frames_dropped=add("frames_dropped"),
        frames_skipped=add("frames_skipped"),
        inferences=add("inferences"),
        inference_ms_mean=sum(means) / len(means) if means else None,
        inference_ms_p50=sorted(p50s)[len(p50s) // 2] if p50s else None,
        latency_ms_p50=None,
        latency_ms_p95=None,
        fps=sum(s.fps for s in all_stats),
        elapsed_s=max((s.elapsed_s for s in all_stats), default=0.0),
        interrupted=interrupted,
    )


def _print_many(out: TextIO, record: dict[str, Any], run_dir: Path) -> None:
    """One summary for a run of several sources: a line per source, then what failed."""
    entries = record["sources"]
    ok = sum(1 for e in entries if e["status"] == "ok")
    lines = [f"run {record['status']}: {len(entries)} sources ({ok} ok) → {run_dir}/"]
    for e in entries:
        if e["error"]:
            what = e["error"]
        elif e["frames"] is not None:
            what = f"{e['frames']} frames, {e['fps']:.1f} FPS → {e['run_dir']}/"
        else:
            what = "not started (the run was stopped)"
        lines.append(f"  {e['status']:<11} {e['source']}: {what}")
    if record["failed"]:
        lines.append("  failed: " + ", ".join(record["failed"]))
    print("\n".join(lines), file=out, flush=True)
