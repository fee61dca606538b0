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
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from detector.config import Config
from detector.distributed.image_job import run_images
from detector.distributed.meter import ActorMeter
from detector.distributed.options import ModelSpec, RayOptions
from detector.distributed.plan import plan as plan_sources
from detector.distributed.runner import RayRunner
from detector.distributed.session import import_ray, ray_session
from detector.distributed.video_job import run_videos
from detector.distributed.writing import Tally
from detector.errors import ConfigError, DetectorError, SourceError
from detector.labels import LabelMap, load_label_map
from detector.model.loader import require_model_path
from detector.outputs import RUN_JSON, describe_outputs, make_run_dir, write_json
from detector.outputs.summary import now_iso, print_summary, versions
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


def model_spec(config: Config, class_ids: frozenset[int] | None) -> ModelSpec:
    """How each actor loads the model: the ``model.*`` keys, one TF thread per reserved CPU."""
    mc, dc = config.model, config.detect
    threads = mc.intra_op_threads or max(1, int(config.run.ray_cpus_per_actor))
    return ModelSpec(
        path=Path(mc.path),
        loader={
            "signature": mc.signature,
            "device": mc.device,
            "allow_memory_growth": mc.allow_memory_growth,
            "intra_op_threads": threads,
            "inter_op_threads": mc.inter_op_threads,
            "allow_unsafe_ops": mc.allow_unsafe_ops,
            "precision": mc.precision,
            "backend": mc.backend,
            "cache_dir": mc.cache_dir,
            "init_missing": mc.init_missing,
        },
        tensors=(
            mc.input_tensor,
            mc.boxes_tensor,
            mc.scores_tensor,
            mc.classes_tensor,
            mc.num_tensor,
        ),
        threshold=dc.threshold,
        class_ids=class_ids,
        max_boxes=dc.max_boxes,
        warmup_runs=1,  # run.warmup_frames only leaves frames out of the figures
        detect_every=dc.detect_every,
    )


def run_ray(config: Config, *, out: TextIO | None = None) -> RunStats:
    """Run the detection app on Ray actors; see the module docstring.

    Raises:
        ConfigError: Ray is not installed, or the source is a camera or stream (exit 2).
        DetectorError: The model cannot load in an actor, Ray fails, a video cannot be read
            whole (exit 1); unreadable image files are reported and skipped.
        KeyboardInterrupt: Ctrl-C or SIGTERM, after the outputs and ``run.json`` were written.
    """

    options = ray_options(config)
    ray = import_ray(options)
    out = out if out is not None else sys.stdout
    mc = config.model
    require_model_path(mc.path)
    labels = load_label_map(mc.labels) if mc.labels is not None else LabelMap({})
    class_ids = labels.resolve_classes(config.detect.classes)
    plan = plan_sources(config.source.uris)
    files, videos, info = plan.files, plan.videos, plan.info
    if files is not None and config.detect.detect_every > 1:
        raise ConfigError(
            "detect.detect_every > 1 is for videos with run.engine 'ray': "
            "each image is detected on its own",
            hint="set detect.detect_every to 1 or use --engine local",
        )
    mspec = model_spec(config, class_ids)
    if config.output.serve is not None:
        log.warning(
            "output.serve: the web view is not served with run.engine 'ray' (the other "
            "outputs are written); use --engine local to watch a run live"
        )
    record: dict[str, Any] = {
        "status": "running",
        "started": now_iso(),
        "argv": sys.argv[1:],
        "engine": "ray",
    }
    t0 = time.monotonic()
    with ray_session(options) as cluster, StopSignals().installed() as stop:
        ray_start_s = time.monotonic() - t0
        run_dir = make_run_dir(config.output.dir, config.output.name or plan.run_name)
        meter = ActorMeter()
        failures: list[dict[str, str]] = []
        record.update(
            run_dir=str(run_dir),
            config_file=str(config.path) if config.path else None,
            config=config.to_dict(),
            source=asdict(info),
            model={
                "path": str(mc.path),
                "backend": mc.backend,
                "device": mc.device,
                "precision": mc.precision,
                "intra_op_threads": mspec.loader["intra_op_threads"],
            },
            labels={"path": str(mc.labels) if mc.labels else None, "classes": len(labels)},
            class_filter=sorted(class_ids) if class_ids else None,
            versions=versions(),
        )
        ray_record: dict[str, Any] = {
            **asdict(options),
            **cluster,
            "ray_start_s": round(ray_start_s, 3),
        }
        record["ray"] = ray_record
        stats: RunStats | None = None
        tally = Tally()
        sinks: dict[str, Any] = {}
        runner = RayRunner(ray, mspec, options, meter)
        try:
            if files is not None:
                stats = run_images(
                    config, run_dir, labels, info, files, runner, stop, tally, failures, sinks
                )
            else:
                assert videos is not None
                stats = run_videos(
                    config,
                    run_dir,
                    labels,
                    videos,
                    runner,
                    stop,
                    tally,
                    failures,
                    record,
                    many=plan.many,
                )
            if stop.pending:
                stats = tally.stats(len(failures), interrupted=True)
                raise KeyboardInterrupt
            if videos is not None and failures:
                names = ", ".join(f"'{f['file']}'" for f in failures)
                raise SourceError(
                    f"{len(failures)} of {len(videos)} videos could not be read whole: {names}",
                    hint="run.json lists each one's reason",
                )
            record["status"] = "ok"
        except KeyboardInterrupt:
            stats = stats or tally.stats(len(failures), interrupted=True)
            record["status"] = "interrupted"
            raise
        except DetectorError as exc:
            record.update(status="error", error=str(exc))
            raise
        except Exception as exc:
            record.update(status="error", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            stats = stats or tally.stats(len(failures))
            record["finished"] = now_iso()
            if files is not None:
                record["outputs"] = describe_outputs(sinks)
            record["failed"] = failures
            ray_record.update(meter.to_dict(), elapsed_s=round(time.monotonic() - t0, 3))
            record["stats"] = stats.to_dict()
            write_json(run_dir / RUN_JSON, record)
            print_summary(out, record, stats, run_dir)
            _print_ray_summary(out, ray_record, failures)
    return stats


def _print_ray_summary(
    out: TextIO, ray_record: dict[str, Any], failures: list[dict[str, str]]
) -> None:
    first = ray_record.get("first_result_s")
    lines = [
        f"  ray: {ray_record.get('actors_seen', 0)} actors on {ray_record.get('nodes', '?')} "
        f"node(s) ({ray_record.get('address')}); start {ray_record['ray_start_s']:.1f} s, "
        + (f"first result after {first:.1f} s" if first is not None else "no result")
    ]
    for a in ray_record.get("per_actor", []):
        rate = a["items_per_busy_s"]
        lines.append(
            f"    actor {a['actor']}: {a['items']} items, "
            f"{rate if rate is not None else '-'} per busy second"
        )
    for f in failures[:10]:
        lines.append(f"  failed: {f['file']}: {f['reason']}")
    if len(failures) > 10:
        lines.append(f"  ... and {len(failures) - 10} more failures (run.json lists them all)")
    print("\n".join(lines), file=out, flush=True)
