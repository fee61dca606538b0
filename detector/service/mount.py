"""The service's routes on a run's web server, over its loaded model: detection API and sources.

``detector serve`` and any run with ``--serve`` call :func:`mount` once the model is loaded,
so both serve one app with the same routes: the live view, health and metrics (always there),
DeepStack's ``/v1/vision/detection`` and ``/api/detect`` (a :class:`Batcher` over the run's
model) and ``/api/sources`` (sources added at run time, each through the run's own
per-source path).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detector.config import Config
from detector.engine import Engine
from detector.labels import LabelMap
from detector.outputs.web import WebServer
from detector.service.batcher import Batcher
from detector.service.detect import DetectApi, detect_router
from detector.service.sources import SourceJobs, SpecRunner, sources_router


@dataclass
class Mounted:
    """What :func:`mount` started; :meth:`close` stops it (sources finalized first)."""

    api: DetectApi
    jobs: SourceJobs

    def close(self) -> None:
        """Stop every added source (outputs finalized), then the batcher. Idempotent."""
        self.jobs.close()
        self.api.batcher.close()


def mount(
    server: WebServer,
    config: Config,
    engine: Engine,
    labels: LabelMap,
    run_dir: Path,
    run: SpecRunner,
) -> Mounted:
    """Add the detection API and ``/api/sources`` to ``server`` (started or not).

    Args:
        server: The run's web server (its hub gets a feed per added source).
        config: The run's config (``serve.*`` batching and limits, ``detect.*`` defaults).
        engine: The loaded model (the batcher calls :meth:`Engine.detect_batch`).
        labels: Class names.
        run_dir: The run folder (added sources get sub-folders).
        run: Runs one added source through the loaded model.
    """
    sc, dc = config.serve, config.detect
    batcher = Batcher(
        engine,
        batch_size=sc.batch_size,
        max_wait_s=sc.batch_wait_ms / 1e3,
        queue_size=sc.queue,
        side=sc.batch_side,
        workers=max(1, config.model.workers),
        on_batch=server.metrics.batch,
    )
    server.metrics.queue_depth = lambda: batcher.depth
    api = DetectApi(
        batcher,
        labels,
        dc.threshold,
        labels.resolve_classes(dc.classes),
        int(sc.max_megapixels * 1e6),
        server.metrics,
    )
    jobs = SourceJobs(config, labels, server.hub, run_dir, run)
    server.include([detect_router(api), sources_router(jobs)])
    return Mounted(api, jobs)
