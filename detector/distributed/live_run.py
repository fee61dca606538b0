"""A Ray run with cameras or streams: live sources on worker actors, files on Ray Data beside them.

:func:`run_live` is what :func:`detector.distributed.driver.run_ray` calls when a source is
live. The run folder gets a sub-folder per source, as a local run of several sources does:
a live source's folder holds its segments (``part-001``, ...) and its ``run.json``
(:mod:`segments`); video files go through the Ray Data path (:mod:`video_job`) on the
driver's main thread while the fleet (:mod:`fleet`) runs on the cluster. The top ``run.json``
lists every source (the local schema) plus, under ``ray.live``, each worker's restarts and
the nodes its segments ran on. Ctrl-C / SIGTERM stops every worker and finalizes every
output; a local Ray started for the run is shut down with it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, replace
from typing import Any, TextIO

from detector.distributed.camera import LiveJob
from detector.distributed.fleet import Fleet, Live, Placement
from detector.distributed.meter import ActorMeter
from detector.distributed.options import ModelSpec, RayOptions
from detector.distributed.plan import plan as plan_sources
from detector.distributed.runner import RayRunner
from detector.distributed.session import import_ray, ray_session
from detector.distributed.video_job import VideoOutcome, run_videos
from detector.distributed.view import FleetView
from detector.outputs import make_run_dir
from detector.outputs.record import RunRecord, list_sources, source_entry, versions
from detector.outputs.summary import print_summary
from detector.pipeline.many import sum_stats
from detector.pipeline.prelude import Prelude, model_entry
from detector.pipeline.signals import StopSignals
from detector.types import RunStats

log = logging.getLogger(__name__)


def local_cpus(prelude: Prelude, options: RayOptions) -> int:
    """CPUs a local Ray gets: the machine's, or enough for every worker (Ray's CPUs are
    reservations: a camera worker that mostly waits for frames needs less than one core)."""
    rc = prelude.config.run
    live = sum(1 for s in prelude.specs if s.live)
    files = len(prelude.specs) > live
    need = live * rc.ray_cpus_per_source + (options.actors * options.cpus_per_actor if files else 0)
    return max(os.cpu_count() or 1, int(need + 0.999))


def run_live(prelude: Prelude, options: RayOptions, spec: ModelSpec, out: TextIO) -> RunStats:
    """Run ``prelude``'s sources with the live ones on worker actors; see the module docstring."""
    config = prelude.config
    if not options.address and options.local_cpus is None:
        options = replace(options, local_cpus=local_cpus(prelude, options))
    model = prelude.model.on_actor(config.run.ray_cpus_per_source)
    header = prelude.header("ray")
    header.update(model=model_entry(model), versions=versions())
    t0 = time.monotonic()
    ray = import_ray(options)
    with ray_session(options) as cluster, StopSignals().installed() as stop, ExitStack() as stack:
        top = RunRecord(make_run_dir(config.output.dir, prelude.run_name), header)
        ray_record: dict[str, Any] = {
            **asdict(options),
            **cluster,
            "ray_start_s": round(time.monotonic() - t0, 3),
        }
        top.update(ray=ray_record)
        top.start()
        sources = _live_sources(prelude, top, model)
        view = FleetView.start(config, prelude.specs, stack)
        on_status = view.update if view is not None else None
        fleet = Fleet(ray, sources, _placement(prelude), config.run.max_frames, on_status)
        runner = RayRunner(ray, spec, options, ActorMeter())
        try:
            return _supervised(prelude, fleet, top, runner, stop)
        finally:
            ray_record.update(
                live=[_live_entry(s) for s in sources], elapsed_s=round(time.monotonic() - t0, 3)
            )
            loaded = next((s.model for s in sources if s.model is not None), None)
            if loaded is not None:  # what the workers loaded (backend auto's choice, ...)
                top.update(model=loaded)
            top.finish()
            print_summary(out, top.data)


def _placement(prelude: Prelude) -> Placement:
    rc = prelude.config.run
    return Placement(
        cpus=rc.ray_cpus_per_source,
        gpus=rc.ray_gpus_per_actor,
        max_restarts=rc.ray_max_restarts,
        resources=rc.ray_placement,
    )


def _live_sources(prelude: Prelude, top: RunRecord, model: Any) -> list[Live]:
    """A :class:`Live` per live source: its folder, its record (started), its worker's job."""
    sources = []
    run_key = uuid.uuid4().hex[:8]
    for i, spec in enumerate(prelude.specs):
        if not spec.live:
            continue
        record = top.child(make_run_dir(top.run_dir, spec.run_name))
        scratch = ""
        if prelude.config.run.ray_outputs == "driver":  # a folder of its own on any node
            scratch = f"detector-ray/{top.run_dir.name}-{run_key}/{record.run_dir.name}"
        record.update(source={"uri": spec.shown, "kind": str(spec.kind), "live": True})
        record.start()
        job = LiveJob(
            prelude.config,
            prelude.labels,
            prelude.class_ids,
            model,
            spec,
            i,
            str(record.run_dir),
            {k: v for k, v in top.data.items() if k in record.data},
            scratch,
        )
        sources.append(Live(job, record))
    return sources


def _supervised(
    prelude: Prelude, fleet: Fleet, top: RunRecord, runner: RayRunner, stop: StopSignals
) -> RunStats:
    """Start the fleet, run the files beside it, wait; stop everything on Ctrl-C / SIGTERM."""
    # Completion is an event, not Thread.is_alive(): a join that a signal interrupts can
    # leave is_alive() False for a thread that still runs.
    done = threading.Event()

    def supervise() -> None:
        try:
            fleet.supervise()
        finally:
            done.set()

    thread = threading.Thread(target=supervise, name="detector-fleet", daemon=True)
    outcomes: list[VideoOutcome] = []
    interrupted = False
    try:
        fleet.start()
        thread.start()
        outcomes = _files(prelude, top, runner, stop)
        while not done.wait(0.2):
            pass
        interrupted = stop.pending or stop.fired
    except KeyboardInterrupt:
        interrupted = True
        log.info("stopping every worker (their outputs are being finalized)")
    finally:
        stop.deferring = True  # a second signal waits: the workers finalize their outputs
        fleet.halt.set()
        if thread.ident:
            done.wait()
        else:  # never started: the fleet stops from here
            fleet.stop()
        fleet.kill()
        fleet.finish()
    return _top(top, fleet, outcomes, interrupted)


def _files(
    prelude: Prelude, top: RunRecord, runner: RayRunner, stop: StopSignals
) -> list[VideoOutcome]:
    """The run's video files through Ray Data, a sub-folder each (as a local run of several)."""
    specs = [s for s in prelude.specs if not s.live]
    if not specs:
        return []
    videos = plan_sources(specs, many=True).videos
    if videos is None:  # images beside cameras: plan refuses several sources with images
        return []
    outcomes = [VideoOutcome(v.name) for v in videos]
    run_videos(prelude.config, top, prelude.labels, videos, outcomes, runner, stop, True)
    return outcomes


def _top(top: RunRecord, fleet: Fleet, outcomes: list[VideoOutcome], interrupted: bool) -> RunStats:
    """The top record's sources (live ones first, in the run's order) and summed numbers."""
    entries = [
        source_entry(s.name, s.status, s.error, s.record, top.run_dir) for s in fleet.sources
    ]
    entries += [source_entry(o.name, o.status, o.error, o.record, top.run_dir) for o in outcomes]
    done = [s.record.data.get("stats") for s in fleet.sources]
    stats = [RunStats(**d) for d in done if d]
    stats += [o.stats for o in outcomes if o.stats is not None]
    total = sum_stats(stats, interrupted)
    top.update(stats=total.to_dict())
    error = list_sources(top, entries, interrupted)
    if interrupted:
        raise KeyboardInterrupt
    if error is not None:
        raise error
    return total


def _live_entry(live: Live) -> dict[str, Any]:
    """A live source in ``ray.live``: its restarts and where each segment ran."""
    return {
        "source": live.name,
        "status": live.status,
        "segments": len(live.segments),
        "restarts": len(live.restarts),
        "nodes": [(s.get("worker") or {}).get("node_id") for s in live.segments if s.get("worker")],
    }
