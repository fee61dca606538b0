"""Composition: build the detection app from a ``Config`` and run it to the end.

``run_app`` is the only place that knows every part: it resolves the label map and class
filter, opens the source, loads the model, opens the outputs in a new run folder, runs the
pipeline with the renderer on the main thread, and writes ``run.json`` and a summary however
the run ends (end of source, q, Ctrl-C, SIGTERM or an error).
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import ExitStack
from dataclasses import asdict, replace
from typing import Any, TextIO

from detector.config import Config
from detector.errors import DetectorError, ModelError, RunInterrupted, StageError
from detector.fps import RunStats
from detector.labels import LabelMap, load_label_map
from detector.outputs import RUN_JSON, describe_outputs, make_run_dir, open_outputs, write_json
from detector.outputs.summary import now_iso, print_summary, versions
from detector.pipeline import PipelineOptions, inference_workers, run_pipeline
from detector.render import Renderer, RenderOptions
from detector.signals import StopSignals
from detector.sources import open_source, parse_source

log = logging.getLogger(__name__)


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
        The run's numbers.

    Raises:
        DetectorError: Config (exit 2), source, model, sink or stage errors (exit 1).
        KeyboardInterrupt: Ctrl-C or SIGTERM, after the outputs were finalized and
            ``run.json`` written (exit 130).
    """
    from detector.engine import Engine
    from detector.model.backends import check_backend, load_backend_model
    from detector.model.loader import TensorNames, model_path_exists

    out = out if out is not None else sys.stdout
    mc = config.model
    check_backend(mc.backend, mc.precision)  # a bad pair is a config error before anything opens
    if not model_path_exists(mc.path):
        raise ModelError(
            f"model '{mc.path}' does not exist",
            hint="run 'python main.py fetch' for the default model, or set "
            "model.path (--model) to a frozen .pb, SavedModel or checkpoint folder",
        )
    labels = load_label_map(mc.labels) if mc.labels is not None else LabelMap({})
    class_ids = labels.resolve_classes(config.detect.classes)
    spec = parse_source(config.source.uri)
    record: dict[str, Any] = {"status": "running", "started": now_iso(), "argv": sys.argv[1:]}
    with StopSignals().installed() as stop, ExitStack() as stack:
        source = stack.enter_context(
            open_source(spec, width=config.source.width, height=config.source.height)
        )
        info = source.info
        workers = inference_workers(info.live, mc.workers)
        threads = intra_op_threads(mc.intra_op_threads, workers)
        model: Any = stack.enter_context(
            load_backend_model(
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
                intra_op_threads=threads,
                inter_op_threads=mc.inter_op_threads,
                allow_unsafe_ops=mc.allow_unsafe_ops,
                precision=mc.precision,
                cache_dir=mc.cache_dir,
            )
        )
        warmup_ms = model.warm_up(
            width=info.width or 640,
            height=info.height or 480,
            runs=max(1, config.run.warmup_frames),
        )
        run_dir = make_run_dir(config.output.dir, config.output.name or spec.run_name)
        record.update(
            run_dir=str(run_dir),
            config_file=str(config.path) if config.path else None,
            config=config.to_dict(),
            source=asdict(info),
            model={
                "path": str(model.path),
                "backend": getattr(model, "backend", "tf"),
                "format": model.format,
                "device": model.device,
                "precision": model.precision,
                "workers": workers,
                "intra_op_threads": threads,
                "load_s": round(model.load_s, 3),
                "warmup_ms": round(warmup_ms, 3),
            },
            labels={"path": str(mc.labels) if mc.labels else None, "classes": len(labels)},
            class_filter=sorted(class_ids) if class_ids else None,
            versions=versions(),
        )
        stats: RunStats | None = None
        sinks: dict[str, Any] = {}
        try:
            with ExitStack() as outputs:
                sinks = open_outputs(config.output, run_dir, labels, info, outputs)
                dc = config.detect
                render = Renderer(
                    labels,
                    list(sinks.values()),
                    RenderOptions(
                        hud=config.output.hud,
                        report_every=dc.report_every,
                        report_threshold=dc.report_threshold,
                        fps_interval_s=config.run.fps_interval_s,
                    ),
                    guard=stop,
                )
                engine = Engine(model, dc.threshold, class_ids, dc.max_boxes)
                options = PipelineOptions(
                    detect_every=dc.detect_every,
                    workers=workers,
                    max_frames=config.run.max_frames,
                    fps_interval_s=config.run.fps_interval_s,
                    warmup_frames=config.run.warmup_frames,
                )
                log.info("running %s (%s) → %s", info.uri, info.kind, run_dir)
                try:
                    stats = run_pipeline(source, engine, render, options)
                except (StageError, RunInterrupted) as exc:
                    stats = _counted(exc.stats, render.frames)
                    raise
                finally:
                    # From here on a signal waits: closing the sinks finalizes the files.
                    stop.deferring = True
            if stop.pending:  # a signal arrived mid-frame or while finalizing
                stats = replace(stats, interrupted=True)
                raise KeyboardInterrupt
            record["status"] = "ok"
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
            record["stats"] = stats.to_dict() if stats is not None else None
            write_json(run_dir / RUN_JSON, record)
            print_summary(out, record, stats, run_dir)
    assert stats is not None
    return stats


def _counted(stats: RunStats | None, written: int) -> RunStats | None:
    """Stats whose processed count is the frames every output holds (a stop may land
    between the last frame's writes and the pipeline's count)."""
    if stats is None or stats.frames_processed == written:
        return stats
    return replace(stats, frames_processed=written)
