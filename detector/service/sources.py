"""Sources started and stopped while a run serves: ``POST``, ``GET``, ``DELETE /api/sources``.

Each source runs the app's own per-source path (the ``run`` it is given:
:func:`detector.pipeline.local.spec_runner`, reconnects, outputs, ``run.json``) on the run's
one loaded model, on its own thread, into a sub-folder of the run folder, and gets a feed on
the page. Deleting a source stops it between frames and waits for its outputs to be finalized
(its video closes and plays). Source URIs are shown masked (``rtsp://user:***@host``) in
every answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from detector.config import Config, with_overrides
from detector.errors import DetectorError
from detector.labels import LabelMap
from detector.outputs import make_run_dir
from detector.outputs.record import RunRecord
from detector.outputs.web.hub import Feed, Hub
from detector.outputs.web.server import error_response
from detector.pipeline.prelude import run_header
from detector.sources import parse_source, redact
from detector.sources.spec import SourceSpec
from detector.types import RunStats

log = logging.getLogger(__name__)

MAX_SOURCES = 32
_OPEN_WAIT_S = 5.0  # how long POST waits to report a source that fails at once
_STOP_WAIT_S = 60.0
# Keys a request may change for its source (the rest is the service's config).
OPTION_SECTIONS = ("detect.", "output.", "source.", "run.max_frames")
FIXED_KEYS = ("source.uri", "output.dir", "output.serve", "output.show", "detect.track")

#: Runs one source to its end or ``halt``: ``(config, spec, record, feed, halt) -> stats``.
SpecRunner = Callable[[Config, SourceSpec, RunRecord, Feed, threading.Event], RunStats]


class NewSource(BaseModel):
    """``POST /api/sources``: what to read, and config keys to change for it."""

    uri: str = Field(max_length=4096, description="camera index, file, folder or stream URL")
    options: dict[str, Any] = Field(
        default_factory=dict, description='e.g. {"detect.threshold": 0.6, "output.video": true}'
    )


@dataclass
class _Running:
    spec: SourceSpec
    feed: Feed
    run_dir: Path
    record: dict[str, Any]
    halt: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    error: str | None = None


class SourceJobs:
    """The sources added at run time: each a thread running one source through the shared model.

    Args:
        config: The run's config (each source may override a few keys).
        labels: Class names.
        hub: Where each source's feed goes (the page, the metrics).
        run_dir: The run folder (a sub-folder per source).
        run: Runs one source through the loaded model (the app's per-source path).
    """

    def __init__(
        self, config: Config, labels: LabelMap, hub: Hub, run_dir: Path, run: SpecRunner
    ) -> None:
        self.config, self.labels, self.run = config, labels, run
        self.hub, self.run_dir = hub, run_dir
        self._jobs: dict[str, _Running] = {}
        self._lock = threading.Lock()

    def add(self, uri: str, options: dict[str, Any] | None = None) -> _Running:
        """Start ``uri`` (with config ``options``); returns once it runs or failed.

        Raises:
            DetectorError: A bad URI or option (the caller answers 400), or too many sources.
        """
        config = self._config_for(options or {})
        spec = parse_source(uri)
        class_ids = self.labels.resolve_classes(config.detect.classes)
        with self._lock:
            if sum(1 for j in self._jobs.values() if not j.feed.ended) >= MAX_SOURCES:
                raise DetectorError(
                    f"{MAX_SOURCES} sources are running already", hint="delete one first"
                )
            name = config.output.name or spec.run_name
            run_dir = make_run_dir(self.run_dir, name)
            feed = self.hub.add_feed(run_dir.name, spec.shown, live=spec.live)
            record = run_header(config, self.labels, class_ids)
            job = _Running(spec, feed, run_dir, record)
            self._jobs[feed.key] = job
        job.thread = threading.Thread(
            target=self._run, args=(job, config), name=f"detector-source-{feed.key}", daemon=True
        )
        job.thread.start()
        deadline = time.monotonic() + _OPEN_WAIT_S
        while time.monotonic() < deadline and job.thread.is_alive() and not feed.frames_read:
            time.sleep(0.02)
        return job

    def _config_for(self, options: dict[str, Any]) -> Config:
        for key in options:
            if key in FIXED_KEYS or not str(key).startswith(OPTION_SECTIONS):
                raise DetectorError(
                    f"option '{key}' cannot be set per source",
                    hint="per source: detect.*, output.* (but dir, serve, show), source.* "
                    "(but uri), run.max_frames",
                )
        return with_overrides(self.config, options, "POST /api/sources")

    def _run(self, job: _Running, config: Config) -> None:
        try:
            self.run(config, job.spec, RunRecord(job.run_dir, job.record), job.feed, job.halt)
        except BaseException as exc:
            job.error = redact(str(exc))
            log.error("source %s failed: %s", job.spec.shown, job.error)
        finally:
            job.feed.end()

    def get(self, key: str) -> _Running | None:
        with self._lock:
            return self._jobs.get(key)

    def all(self) -> list[_Running]:
        with self._lock:
            return list(self._jobs.values())

    def stop(self, job: _Running, timeout_s: float = _STOP_WAIT_S) -> None:
        """Stop ``job`` between frames and wait for its outputs to be finalized."""
        job.halt.set()
        if job.thread is not None:
            job.thread.join(timeout_s)

    def close(self) -> None:
        """Stop every source (outputs finalized)."""
        jobs = self.all()
        for job in jobs:
            job.halt.set()
        for job in jobs:
            self.stop(job)

    def describe(self, job: _Running) -> dict[str, Any]:
        """A source as the API shows it (URI masked)."""
        record = job.record
        return {
            "id": job.feed.key,
            "name": job.feed.name,
            "uri": job.spec.shown,
            "kind": str(job.spec.kind),
            "live": job.spec.live,
            "state": job.feed.health(),
            "frames": job.feed.counts(),
            "run_dir": str(job.run_dir),
            "status": record.get("status", "starting"),
            "error": job.error or (redact(record["error"]) if record.get("error") else None),
            "outputs": record.get("outputs"),
            "added": True,
        }

    def describe_feed(self, feed: Feed) -> dict[str, Any]:
        """One of the run's own sources (given at its start: stopped with the run)."""
        return {
            "id": feed.key,
            "name": feed.name,
            "uri": feed.uri,
            "live": feed.live,
            "state": feed.health(),
            "frames": feed.counts(),
            "added": False,
        }

    def own(self, key: str) -> Feed | None:
        """The run's own source ``key`` (not added at run time), if there is one."""
        feed = self.hub.feed(key)
        return feed if feed is not None and self.get(key) is None else None

    def listing(self) -> list[dict[str, Any]]:
        """Every source: the run's own, then the added ones, by id."""
        added = {j.feed.key: self.describe(j) for j in self.all()}
        return [added.get(f.key) or self.describe_feed(f) for f in list(self.hub.feeds)]


def sources_router(jobs: SourceJobs) -> APIRouter:
    """``/api/sources``: list, start and stop sources on the loaded model."""
    router = APIRouter(prefix="/api/sources", tags=["sources"])

    @router.get("", summary="Every source (the run's own and those added), state and counts")
    async def list_sources() -> dict[str, Any]:
        return {"sources": jobs.listing()}

    @router.post(
        "",
        status_code=201,
        summary="Start a source",
        description='JSON `{"uri": "rtsp://cam/live", "options": {"detect.threshold": 0.6, '
        '"output.video": true}}`; the answer is the source, with its `id`.',
    )
    async def add_source(request: Request, new: NewSource) -> Any:
        try:
            job = await run_in_threadpool(jobs.add, new.uri, new.options)
        except DetectorError as exc:
            return error_response(request, 400, redact(str(exc)), hint=exc.hint)
        if job.error is not None:  # it failed at once: say why
            return error_response(request, 422, f"source {job.spec.shown} failed: {job.error}")
        return JSONResponse(jobs.describe(job), 201)

    @router.get("/{key}", summary="One source")
    async def get_source(key: str, request: Request) -> Any:
        job, own = jobs.get(key), jobs.own(key)
        if own is not None:
            return jobs.describe_feed(own)
        if job is None:
            return error_response(request, 404, f"no source {key!r}", hint="GET /api/sources")
        return jobs.describe(job)

    @router.delete("/{key}", summary="Stop an added source; its outputs are finalized")
    async def delete_source(key: str, request: Request) -> Any:
        job = jobs.get(key)
        if jobs.own(key) is not None:
            return error_response(
                request,
                409,
                f"source {key!r} was given when the run started: it stops with the run",
                hint="stop the run (Ctrl-C / SIGTERM); DELETE stops sources added over HTTP",
            )
        if job is None:
            return error_response(request, 404, f"no source {key!r}", hint="GET /api/sources")
        await run_in_threadpool(jobs.stop, job)
        return jobs.describe(job)

    return router
