"""The detection service: one model loaded once, the HTTP app, sources started and stopped live.

``detector serve`` and :func:`detector.service.serve` build a :class:`Service`: the model
(shared by the detection API's batcher and every source's pipeline), a hub of feeds for the
page and the metrics, the server (live view, health, metrics, ``/v1/vision/detection``,
``/api/detect``, ``/api/sources``) on uvicorn in a thread, and any sources given at start.
It runs until Ctrl-C / SIGTERM (or :meth:`Service.close`); then every source stops between
frames and finalizes its outputs before the process ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from detector.config import Config, load_config
from detector.engine import Engine
from detector.labels import LabelMap, load_label_map
from detector.model.loader import require_model_path
from detector.model.options import ModelOptions
from detector.outputs import make_run_dir
from detector.outputs.web import Hub, WebServer, access_from
from detector.pipeline.local import load_model
from detector.pipeline.signals import StopSignals
from detector.service.batcher import Batcher
from detector.service.detect import DetectApi, detect_router
from detector.service.sources import SourceJobs, sources_router

log = logging.getLogger(__name__)


class Service:
    """A running detection service (a context manager; :meth:`start` it, :meth:`close` it).

    Args:
        config: The configuration (``model``, ``detect``, ``output``, ``serve`` sections).
        host: Address to bind (``127.0.0.1``: this machine only).
        port: TCP port (0: a free one; see :attr:`url` once started).
        sources: URIs to start with (more can be added with ``POST /api/sources``).
    """

    def __init__(
        self,
        config: Config,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        sources: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.host, self.port = host, port
        self.initial = list(sources)
        self.stack = ExitStack()
        self.server: WebServer | None = None
        self.jobs: SourceJobs | None = None
        self.batcher: Batcher | None = None
        self.api: DetectApi | None = None
        self.run_dir: Path | None = None
        self.hub = Hub(stalled_after_s=config.serve.stalled_after_s)

    @property
    def url(self) -> str:
        return self.server.url if self.server is not None else ""

    def start(self) -> Service:
        """Load the model, start the server and the initial sources; returns self."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        config, mc, dc, sc = self.config, self.config.model, self.config.detect, self.config.serve
        access = access_from(sc)  # a missing token file fails before the model loads
        server = WebServer(
            self.hub,
            self.host,
            self.port,
            title="detector service",
            access=access,
            insecure=sc.insecure,
        )
        server.check_access()  # before the model loads: a refusal comes at once
        require_model_path(mc.path)
        labels = load_label_map(mc.labels) if mc.labels is not None else LabelMap({})
        class_ids = labels.resolve_classes(dc.classes)
        options = ModelOptions.from_config(config)
        model, entry = load_model(options, self.stack, max(1, mc.workers))
        self.hub.model = entry
        engine = Engine(model, dc.threshold, class_ids, dc.max_boxes)
        self.run_dir = make_run_dir(config.output.dir, config.output.name or "serve")
        self.jobs = SourceJobs(config, engine, labels, class_ids, self.hub, self.run_dir)
        self.batcher = Batcher(
            engine,
            batch_size=sc.batch_size,
            max_wait_s=sc.batch_wait_ms / 1e3,
            queue_size=sc.queue,
            side=sc.batch_side,
            workers=max(1, mc.workers),
            on_batch=server.metrics.batch,
        )
        server.metrics.queue_depth = lambda: self.batcher.depth if self.batcher else 0
        self.api = api = DetectApi(
            self.batcher,
            labels,
            dc.threshold,
            class_ids,
            int(sc.max_megapixels * 1e6),
            server.metrics,
        )
        server.routers += [detect_router(api), sources_router(self.jobs)]
        self.server = server.start()
        self.port = server.port
        for uri in self.initial:
            job = self.jobs.add(uri)
            if job.error:
                log.error("source %s: %s", job.spec.shown, job.error)
        log.info(
            "detection service: %s (API docs %sdocs; runs in %s)", self.url, self.url, self.run_dir
        )

    def wait(self, stop: threading.Event | None = None) -> None:
        """Block until Ctrl-C / SIGTERM (main thread) or ``stop`` is set."""
        stop = stop or threading.Event()
        with StopSignals().installed():
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                log.info("stopping the service")

    def close(self) -> None:
        """Stop every source (outputs finalized), the server and the model. Idempotent."""
        if self.jobs is not None:
            self.jobs.close()
        if self.server is not None:
            self.server.close()
        if self.batcher is not None:
            self.batcher.close()
        self.stack.close()

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def serve(
    config: Config | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    sources: Sequence[str] = (),
    block: bool = True,
) -> Service:
    """Start the detection service (``detector serve`` in Python).

    Args:
        config: The configuration (default: ``configs/default.yml``).
        host: Address to bind; beyond loopback ``serve.token`` (or ``DETECTOR_API_TOKEN``)
            is required unless ``serve.insecure``.
        port: TCP port (0: a free one, see ``service.url``).
        sources: URIs to start with.
        block: Serve until Ctrl-C / SIGTERM, then close (True), or return the running
            service at once (False: call ``close()`` or use it as a context manager).

    Returns:
        The service (closed already when ``block``).
    """

    service = Service(config or load_config(None), host, port, sources=sources).start()
    if block:
        try:
            service.wait()
        finally:
            service.close()
    return service
