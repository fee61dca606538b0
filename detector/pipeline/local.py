"""The local engine: the run's sources through one model in this process, on threads.

One source runs on the main thread (a window must live there). Several sources (``--source``
given more than once, or a folder of videos) share the one model: each gets a sub-folder of
the run folder and its own pipeline on its own thread (:mod:`detector.pipeline.many`); one
summary covers them all, and the run fails (exit 1) at the end if any source failed.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

from detector.config import Config, ModelConfig
from detector.engine import Engine
from detector.errors import SourceError
from detector.labels import LabelMap
from detector.model.options import ModelOptions, load_with
from detector.outputs import make_run_dir
from detector.outputs.record import RunRecord, list_sources, source_entry, versions
from detector.outputs.summary import print_summary
from detector.pipeline.many import Job, Outcome, run_jobs, sum_stats
from detector.pipeline.prelude import Prelude, model_entry
from detector.pipeline.signals import StopSignals
from detector.pipeline.source_run import (
    SourceJob,
    SourceName,
    model_threshold,
    open_spec,
    run_source,
    run_spec,
    track_settings,
)
from detector.pipeline.stages import inference_workers
from detector.sources import SourceSpec
from detector.track.settings import TrackSettings
from detector.types import RunStats

if TYPE_CHECKING:  # the service's modules import FastAPI: only a run with --serve loads them
    from detector.service.sources import SpecRunner

log = logging.getLogger(__name__)


def run_local(prelude: Prelude, out: TextIO) -> RunStats:
    """Run ``prelude``'s sources on this machine; see the module docstring."""
    track = track_settings(prelude.config)  # before the model: a config error comes fast
    if prelude.many:
        return _run_many(prelude, track, out)
    return _run_one(prelude, track, out)


def load_configured_model(mc: ModelConfig, workers: int) -> Any:
    """Load the model ``model:`` describes, for ``workers`` concurrent callers (a context
    manager: ``with`` closes it); the app and the public API load it this one way."""
    return load_with(ModelOptions.from_model(mc).sharing(workers))


def load_model(
    options: ModelOptions,
    stack: ExitStack,
    workers: int,
    size: tuple[int, int] = (640, 480),
    warmup_runs: int = 1,
) -> tuple[Any, dict[str, Any]]:
    """Load the model once for ``workers`` callers (closed with ``stack``), warm it up on a
    ``size`` (width, height) frame; it and its record entry."""
    options = options.sharing(workers)
    model: Any = stack.enter_context(load_with(options))
    warmup_ms = model.warm_up(width=size[0], height=size[1], runs=max(1, warmup_runs))
    return model, model_entry(options, model, warmup_ms)


def _engine(prelude: Prelude, model: Any, track: TrackSettings | None) -> Any:
    """The app's ``Engine``; with ByteTrack the threshold is lower (it takes the low-score
    detections too; the tracker decides what is shown), and lower still for a per-class
    floor (``detect.thresholds``; the filter in front of the tracker restores each class's)."""

    dc = prelude.config.detect
    threshold = model_threshold(prelude.config, prelude.labels, track)
    return Engine(model, threshold, prelude.class_ids, dc.max_boxes)


def _start_web(config: Config, specs: tuple[SourceSpec, ...], stack: ExitStack) -> Any:
    """The web server (its hub has a feed per source) running, or None. The page is up
    before the model loads; :func:`_serve_model` adds the routes that need the model."""
    if config.output.serve is None:
        return None
    from detector.outputs.web import Hub, WebServer

    hub = Hub(stalled_after_s=config.serve.stalled_after_s)
    for spec in specs:
        hub.add_feed(spec.run_name, spec.shown, live=spec.live)
    title = specs[0].shown if len(specs) == 1 else f"{len(specs)} sources"
    server = WebServer.for_run(hub, config, title)
    stack.enter_context(server)
    return server


def _serve_model(
    server: Any, prelude: Prelude, model: Any, record: RunRecord, stack: ExitStack
) -> None:
    """The model is loaded: ``/readyz`` says ready, and the server gets the service's routes
    (detection API, sources added at run time into the run folder), stopped with ``stack``."""
    if server is None:
        return
    from detector.service.mount import mount

    server.hub.model = record.data["model"]
    engine = _engine(prelude, model, None)
    runner = spec_runner(prelude.labels, model)
    mounted = mount(server, prelude.config, engine, prelude.labels, record.run_dir, runner)
    stack.callback(mounted.close)


def source_job(config: Config, labels: LabelMap, model: Any) -> SourceJob:
    """What one source of ``config`` needs to run through the loaded ``model``."""
    track = track_settings(config)
    threshold = model_threshold(config, labels, track)
    class_ids = labels.resolve_classes(config.detect.classes)
    return SourceJob(
        config, labels, Engine(model, threshold, class_ids, config.detect.max_boxes), track
    )


def spec_runner(labels: LabelMap, model: Any) -> SpecRunner:
    """Runs a source added at run time through the loaded ``model``, with its own config:
    ``(config, spec, record, feed, halt) -> RunStats`` (see :mod:`detector.service.sources`)."""

    def run(
        config: Config, spec: SourceSpec, record: RunRecord, feed: Any, halt: threading.Event
    ) -> RunStats:
        return run_spec(source_job(config, labels, model), spec, record, feed=feed, halt=halt)

    return run


# -- one source ---------------------------------------------------------------------------


def _run_one(prelude: Prelude, track: TrackSettings | None, out: TextIO) -> RunStats:
    config, spec = prelude.config, prelude.specs[0]
    header = prelude.header("local")
    warmups = config.run.warmup_frames
    with StopSignals().installed() as stop, ExitStack() as stack:
        server = _start_web(config, prelude.specs, stack)
        source = stack.enter_context(open_spec(config, spec))
        info = source.info
        workers = inference_workers(info.live, config.model.workers)
        size = (info.width or 640, info.height or 480)
        model, header["model"] = load_model(prelude.model, stack, workers, size, warmups)
        header["versions"] = versions()
        record = RunRecord(make_run_dir(config.output.dir, prelude.run_name), header)
        _serve_model(server, prelude, model, record, stack)
        job = SourceJob(config, prelude.labels, _engine(prelude, model, track), track)
        try:
            return run_source(
                job,
                source,
                workers,
                record,
                feed=server.hub.feeds[0] if server is not None else None,
                guard=stop,
                who=SourceName(spec.run_name),
            )
        finally:
            print_summary(out, record.data)


# -- several sources ----------------------------------------------------------------------


def _run_many(prelude: Prelude, track: TrackSettings | None, out: TextIO) -> RunStats:
    config, specs = prelude.config, prelude.specs
    if config.output.show:
        log.warning(
            "output.show: the window shows one source; with %d sources, watch them "
            "with --serve PORT (one page, every source)",
            len(specs),
        )
        config = replace(config, output=replace(config.output, show=False))
    live = sum(1 for s in specs if s.live)
    file_workers = config.model.workers if live < len(specs) else 0
    header = prelude.header("local")
    warmups = config.run.warmup_frames
    with StopSignals().installed(), ExitStack() as stack:
        server = _start_web(config, specs, stack)
        model, header["model"] = load_model(
            prelude.model, stack, live + file_workers, warmup_runs=warmups
        )
        header["versions"] = versions()
        top = RunRecord(make_run_dir(config.output.dir, prelude.run_name), header)
        top.start()
        _serve_model(server, prelude, model, top, stack)
        job = SourceJob(config, prelude.labels, _engine(prelude, model, track), track)
        feeds = list(server.hub.feeds[: len(specs)]) if server is not None else [None] * len(specs)
        jobs = [
            (spec.shown, spec.live, _source_job(job, spec, i, top, feeds[i]))
            for i, spec in enumerate(specs)
        ]
        interrupted = False
        try:
            outcomes = run_jobs(jobs, threading.Event())
        except KeyboardInterrupt as exc:
            outcomes, interrupted = exc.outcomes, True  # type: ignore[attr-defined]
        stats, error = _finish_many(top, outcomes, interrupted)
        print_summary(out, top.data)
    if interrupted:
        raise KeyboardInterrupt
    if error is not None:
        raise error
    return stats


def _source_job(job: SourceJob, spec: SourceSpec, index: int, top: RunRecord, feed: Any) -> Job:
    """One source of several as a job for :func:`run_jobs`: its own sub-folder and record."""

    def run(halt: threading.Event) -> Any:
        sub = top.child(make_run_dir(top.run_dir, spec.run_name))
        try:
            return sub, run_spec(job, spec, sub, feed=feed, halt=halt, index=index)
        except BaseException as exc:
            if "finished" not in sub.data:  # it failed before its run began
                sub.not_started(spec.shown, str(spec.kind), exc)
                if feed is not None:
                    feed.end()
            exc.result = (sub, None)  # type: ignore[attr-defined]
            raise

    return run


def _finish_many(
    top: RunRecord, outcomes: list[Outcome], interrupted: bool
) -> tuple[RunStats, SourceError | None]:
    """The top record: every source's entry, the run's status and summed numbers; written.
    Returns the numbers and the error to end with when a source failed."""
    entries = []
    for o in outcomes:
        sub, _stats = o.result if o.result else (None, None)
        entries.append(source_entry(o.name, o.status, o.error, sub, top.run_dir))
    total = sum_stats([o.result[1] for o in outcomes if o.result and o.result[1]], interrupted)
    top.update(stats=total.to_dict())
    error = list_sources(top, entries, interrupted)
    top.finish()
    return total, error
