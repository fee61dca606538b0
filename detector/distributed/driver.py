"""The ``run`` command on the Ray engine: the local run's inputs, outputs and record, on actors.

:func:`run_ray` is what :func:`detector.app.run_app` calls for ``run.engine: ray``. It lists
the work (image files, or videos cut into frame ranges), starts or joins Ray, and lets
:class:`~detector.distributed.runner.RayRunner` stream the actors' detections back in order.
The driver writes every output itself through the app's own sinks and renderer, so the files
are the local engine's: when an output needs pixels (video, images, window) the driver reads
each image again, or decodes the video once in order, and draws on it; when only records are
written (JSON lines) pixels never leave the actors. A folder of videos gives one sub-folder
per video. ``run.json`` adds the engine, the cluster, the actors and each actor's throughput.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from typing import Any, TextIO

from detector.config import Config
from detector.distributed.image_job import run_images
from detector.distributed.meter import ActorMeter
from detector.distributed.options import ModelSpec, RayOptions
from detector.distributed.plan import Plan, Video
from detector.distributed.plan import plan as plan_sources
from detector.distributed.runner import RayRunner
from detector.distributed.session import import_ray, import_ray_data, ray_session
from detector.distributed.video_job import VideoOutcome, run_videos
from detector.distributed.writing import Tally
from detector.errors import ConfigError
from detector.events.setup import wants_events
from detector.outputs import make_run_dir
from detector.outputs.record import RunRecord, list_sources, source_entry, versions
from detector.outputs.summary import print_summary
from detector.pipeline.many import sum_stats
from detector.pipeline.prelude import Prelude, model_entry
from detector.pipeline.signals import StopSignals
from detector.types import RunStats

log = logging.getLogger(__name__)


def ray_options(config: Config) -> RayOptions:
    """The ``run.ray_*`` keys as :class:`RayOptions`."""
    rc = config.run
    return RayOptions(
        address=rc.ray_address,
        actors=rc.ray_actors,
        batch_size=rc.ray_batch_size,
        cpus_per_actor=rc.ray_cpus_per_actor,
        gpus_per_actor=rc.ray_gpus_per_actor,
        ranges_per_video=rc.ray_ranges_per_video,
    )


def actor_spec(prelude: Prelude, options: RayOptions) -> ModelSpec:
    """How each actor loads the model (the run's options, one TF thread per reserved CPU)
    and filters detections."""
    config = prelude.config
    dc = config.detect
    return ModelSpec(
        model=prelude.model.on_actor(options.cpus_per_actor),
        threshold=dc.threshold,
        class_ids=prelude.class_ids,
        max_boxes=dc.max_boxes,
        warmup_runs=1,  # run.warmup_frames only leaves frames out of the figures
        detect_every=dc.detect_every,
    )


def run_ray(prelude: Prelude, out: TextIO) -> RunStats:
    """Run the detection app on Ray actors; see the module docstring.

    Raises:
        ConfigError: Ray is not installed, or files with zones, events or a tracker (exit 2).
        DetectorError: The model cannot load in an actor, Ray fails, a video cannot be read
            whole (exit 1); unreadable image files are reported and skipped.
        KeyboardInterrupt: Ctrl-C or SIGTERM, after the outputs and ``run.json`` were written.
    """

    config = prelude.config
    options = ray_options(config)
    _check_files(prelude)
    if any(s.live for s in prelude.specs):  # cameras and streams: a worker actor each
        # deferred: the live path brings the web page's server (FastAPI, a third of a second)
        from detector.distributed.live_run import run_live

        return run_live(prelude, options, actor_spec(prelude, options), out)
    ray = import_ray(options)
    plan = plan_sources(prelude.specs, many=prelude.many)
    if plan.videos is not None:
        import_ray_data(ray)  # videos run on Ray Data (image files on plain actors)
    if plan.files is not None and config.detect.detect_every > 1:
        raise ConfigError(
            "detect.detect_every > 1 is for videos with run.engine 'ray': "
            "each image is detected on its own",
            hint="set detect.detect_every to 1 or use --engine local",
        )
    spec = actor_spec(prelude, options)
    if config.output.serve is not None:
        log.warning(
            "output.serve: the web view is not served with run.engine 'ray' (the other "
            "outputs are written); use --engine local to watch a run live"
        )
    header = prelude.header("ray")
    header.update(model=model_entry(spec.model), versions=versions())
    t0 = time.monotonic()
    with ray_session(options) as cluster, StopSignals().installed() as stop:
        record = RunRecord(make_run_dir(config.output.dir, prelude.run_name), header)
        if not prelude.many:
            record.update(source=asdict(plan.info))
        ray_record: dict[str, Any] = {
            **asdict(options),
            **cluster,
            "ray_start_s": round(time.monotonic() - t0, 3),
        }
        record.update(ray=ray_record)
        record.start()
        meter = ActorMeter()
        runner = RayRunner(ray, spec, options, meter)
        try:
            return _run(prelude, plan, record, runner, stop)
        finally:
            ray_record.update(meter.to_dict(), elapsed_s=round(time.monotonic() - t0, 3))
            record.finish()
            print_summary(out, record.data)


def _check_files(prelude: Prelude) -> None:
    """Refuse what the Ray engine cannot run on files (a live source's worker runs the
    local engine's whole pipeline, trackers and events included)."""
    config = prelude.config
    files = [s for s in prelude.specs if not s.live]
    if not files:
        return
    if wants_events(config):  # zones and events follow one source's frames in order
        raise ConfigError(
            "zones, lines and events cannot run with run.engine 'ray' on files",
            hint="they follow one source's tracked objects in order: use --engine local "
            "(cameras and streams on ray run them)",
        )
    if config.detect.track != "none":  # actors see frame ranges, not one ordered stream
        raise ConfigError(
            f"detect.track '{config.detect.track}' cannot run with run.engine 'ray' on files",
            hint="a tracker follows one source's frames in order: use --engine local, "
            "or set detect.track: none (cameras and streams on ray track)",
        )


def _run(
    prelude: Prelude, plan: Plan, record: RunRecord, runner: RayRunner, stop: StopSignals
) -> RunStats:
    """The images or the videos through the actors; the record's status, numbers, sources."""
    config, tally = prelude.config, Tally()
    stats: RunStats | None = None
    try:
        if plan.files is not None:
            stats = run_images(
                config, record, prelude.labels, plan.info, plan.files, runner, stop, tally
            )
        else:
            assert plan.videos is not None
            stats = _videos(prelude, plan.videos, record, runner, stop)
        if stop.pending:
            stats = replace(stats, interrupted=True)
            raise KeyboardInterrupt
        if record.data.get("status") == "running":
            record.update(status="ok")
        return stats
    except BaseException as exc:
        if record.data.get("status") == "running":  # several videos: "failed" already
            record.fail(exc)
        raise
    finally:
        if stats is not None:
            record.update(stats=stats.to_dict())
        elif "stats" not in record.data:
            interrupted = record.data.get("status") == "interrupted"
            record.update(stats=tally.stats(0, interrupted=interrupted).to_dict())


def _videos(
    prelude: Prelude, videos: list[Video], record: RunRecord, runner: RayRunner, stop: StopSignals
) -> RunStats:
    """Every video through the actors; for several, the top record lists each as a source."""
    many = prelude.many
    outcomes = [VideoOutcome(v.name) for v in videos]
    try:
        run_videos(prelude.config, record, prelude.labels, videos, outcomes, runner, stop, many)
    finally:
        record.data["ray"]["ranges"] = {o.name: o.ranges for o in outcomes if o.ranges}
        done = [o.stats for o in outcomes if o.stats is not None]
        stats = sum_stats(done, stop.pending) if many or not done else done[0]
        record.update(stats=stats.to_dict())
    if not many:
        return stats
    entries = [source_entry(o.name, o.status, o.error, o.record, record.run_dir) for o in outcomes]
    error = list_sources(record, entries, stop.pending)
    if error is not None:
        raise error
    return stats
