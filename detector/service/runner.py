"""The detection service: one :class:`~detector.api.Detector`, the HTTP app, sources started live.

``detector serve`` and :func:`detector.serve` build a :class:`Service` on a
:class:`~detector.Detector` (the public model object: the same loader and model type an
embedding program uses): the server (live view, health, metrics) starts first, then the
detector's model gets the service's routes (:func:`detector.service.mount.mount`: DeepStack's
``/v1/vision/detection``, ``/api/detect``, ``/api/sources``), exactly as a run with
``--serve`` gets them, and any sources given at start are added. It runs until Ctrl-C /
SIGTERM (or :meth:`Service.close`); then every source stops between frames and finalizes its
outputs before the process ends.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detector.api import Detector
from detector.config import Config, keyword_overrides, load_config, with_overrides
from detector.errors import ConfigError
from detector.outputs import make_run_dir
from detector.outputs.web import Hub, WebServer, access_from
from detector.pipeline.local import spec_runner
from detector.pipeline.signals import StopSignals
from detector.service.detect import DetectApi
from detector.service.mount import Mounted, mount
from detector.service.sources import SourceJobs

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


class Service:
    """A running detection service (a context manager; :meth:`start` it, :meth:`close` it).

    Args:
        config: The configuration (``model``, ``detect``, ``output``, ``serve`` sections);
            ``None``: the ``detector``'s.
        host: Address to bind (``127.0.0.1``: this machine only).
        port: TCP port (0: a free one; see :attr:`url` once started).
        sources: URIs to start with (more can be added with ``POST /api/sources``).
        detector: The model to serve; ``None``: one is made from ``config`` at :meth:`start`
            (and closed with the service; a detector given stays the caller's).
    """

    def __init__(
        self,
        config: Config | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        sources: Sequence[str] = (),
        detector: Detector | None = None,
    ) -> None:
        if config is None:
            if detector is None:
                raise ValueError("Service needs a config or a detector")
            config = detector.config
        self.config: Config = config
        self.host, self.port = host, port
        self.initial = list(sources)
        self.detector = detector
        self._owns_detector = detector is None
        self.server: WebServer | None = None
        self.mounted: Mounted | None = None
        self.run_dir: Path | None = None
        self.hub = Hub(stalled_after_s=self.config.serve.stalled_after_s)

    @property
    def url(self) -> str:
        return self.server.url if self.server is not None else ""

    @property
    def api(self) -> DetectApi | None:
        """The detection routes' shared state (batcher, labels, defaults) once started."""
        return self.mounted.api if self.mounted is not None else None

    @property
    def jobs(self) -> SourceJobs | None:
        """The sources added so far (at start or over HTTP) once started."""
        return self.mounted.jobs if self.mounted is not None else None

    def start(self) -> Service:
        """Start the server, load the model (unless given), add the initial sources."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        sc = self.config.serve
        server = WebServer(
            self.hub,
            self.host,
            self.port,
            title="detector service",
            access=access_from(sc),  # a missing token file fails before the model loads
            insecure=sc.insecure,
        )
        server.check_access()  # before the model loads: a refusal comes at once
        self.server = server.start()
        self.port = server.port
        if self.detector is None:
            self.detector = Detector.from_config(self.config)
        detector = self.detector
        self.hub.model = detector.describe()  # /readyz: ready
        self.run_dir = make_run_dir(self.config.output.dir, self.config.output.name or "serve")
        runner = spec_runner(detector.label_map, detector.model)
        self.mounted = mount(
            server, self.config, detector.engine, detector.label_map, self.run_dir, runner
        )
        for uri in self.initial:
            job = self.mounted.jobs.add(uri)
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
        if self.mounted is not None:
            self.mounted.close()
        if self.server is not None:
            self.server.close()
        if self._owns_detector and self.detector is not None:
            self.detector.close()

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def serve(
    model: Detector | PathLike | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    sources: Sequence[str] = (),
    config: Config | PathLike | None = None,
    block: bool = True,
    **settings: object,
) -> Service:
    """Start the detection service (``detector serve`` in Python).

    Args:
        model: A :class:`~detector.Detector` to serve (it stays yours to close), or a model
            path for a new one (``None``: the config's, the default SSD).
        host: Address to bind; beyond loopback ``serve.token`` (or ``DETECTOR_API_TOKEN``)
            is required unless ``serve.insecure``.
        port: TCP port (0: a free one, see ``service.url``).
        sources: URIs to start with.
        config: A YAML config file or a loaded :class:`~detector.config.Config`
            (``None``: the given detector's, or the packaged defaults).
        block: Serve until Ctrl-C / SIGTERM, then close (True), or return the running
            service at once (False: call ``close()`` or use it as a context manager).
        **settings: Config keys over ``config``'s, as :class:`~detector.Detector` takes
            them (``token="..."``, ``batch_size=4``, ``threshold=0.6``, dotted keys).

    Returns:
        The service (closed already when ``block``).

    Raises:
        ConfigError: A bad setting, or a bind beyond loopback with no token.
        ModelError: The model is missing or unusable.
    """
    detector = model if isinstance(model, Detector) else None
    if detector is not None and (config is not None or settings):
        cfg = _config(config, settings, base=detector.config)
    elif detector is not None:
        cfg = detector.config
    else:
        cfg = _config(config, {"model": model, **settings})
    service = Service(cfg, host, port, sources=sources, detector=detector).start()
    if block:
        try:
            service.wait()
        finally:
            service.close()
    return service


def _config(
    config: Config | PathLike | None, settings: dict[str, object], base: Config | None = None
) -> Config:
    """The service's config: ``config`` (a Config, a file, or ``base``) with ``settings``."""
    overrides = keyword_overrides({k: v for k, v in settings.items() if v is not None})
    fixed = sorted(k for k in overrides if k.startswith("model.")) if base is not None else []
    if fixed:
        raise ConfigError(
            f"serve(): {', '.join(fixed)} cannot change for a Detector already made",
            hint="model settings are fixed when the Detector is made: Detector(..., **settings)",
        )
    if isinstance(config, Config):
        return with_overrides(config, overrides, "serve()") if overrides else config
    if config is None and base is not None:
        return with_overrides(base, overrides, "serve()")
    return load_config(config, overrides)
