"""Cameras and streams on Ray: a worker actor per live source, restarted by Ray, watched here.

:class:`Fleet` creates one :class:`~detector.distributed.camera.CameraWorker` actor per live
source (Ray places it by resources: ``run.ray_cpus_per_source`` CPUs, and the custom
resource ``run.ray_placement`` names for it), calls its ``run`` for segment 1, and supervises
from a thread of the driver: a call that ends because the worker's process or node died is
a *restart* (recorded with Ray's reason; Ray restarts the actor, possibly on another node,
and the driver calls ``run`` for the next segment with the frames still to do); past
``run.ray_max_restarts`` the source is ``failed`` while the others go on. Every second it
asks each worker for its figures (and the latest frame, when the page is served); with
``run.ray_outputs: driver`` each reply also carries the segment's new bytes, written here into
the source's folder, and an ended segment's rest is pulled before it is recorded.
:meth:`Fleet.stop` asks every worker to stop, waits for their segments to be finalized,
and kills what is left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.distributed.camera import PART_DIR, CameraWorker, LiveJob
from detector.distributed.mirror import Piece, apply
from detector.distributed.segments import finish_source, lost_segment, segment_entry
from detector.outputs.record import RUN_JSON, RunRecord, now_iso
from detector.outputs.rundir import write_json

log = logging.getLogger(__name__)

WAIT_S = 0.25  # how often the supervisor wakes
STATUS_EVERY_S = 1.0  # how often each worker is asked for its figures
STOP_TIMEOUT_S = 30.0  # how long stopped workers get to finalize their outputs
RETRY_S = 0.5  # how often a restarting worker is asked again to run the next segment
RESTART_TIMEOUT_S = 300.0  # a worker not back after this long: its source fails
SETTLE_S = 2.0  # how long a lost worker's last status reply may take to come or fail


@dataclass
class Live:
    """One live source of the run, as the driver follows it."""

    job: LiveJob
    record: RunRecord
    actor: Any = None
    ref: Any = None
    part: int = 0
    status: str = "running"
    error: str | None = None
    restarts: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    last: dict[str, Any] = field(default_factory=dict)
    asked: Any = None
    model: dict[str, Any] | None = None  # what the worker loaded (its segment's record)
    submitted: float = 0.0  # wall time the running segment was asked for
    retry_at: float | None = None  # the next segment waits for the restarting worker
    waiting_since: float | None = None
    copy_error: str | None = None  # outputs sent to the driver: why a piece was not written

    @property
    def name(self) -> str:
        return self.job.spec.shown

    @property
    def folder(self) -> Path:
        return self.segment(self.part)

    def segment(self, part: int) -> Path:
        """Segment ``part``'s folder on the driver."""
        return Path(self.job.source_dir) / PART_DIR.format(part)

    def receive(self, part: int, pieces: list[Piece]) -> bool:
        """Write a segment's pieces sent by its worker; False when the driver cannot (its
        disk full, ...): the segment then stays whole in the worker's scratch folder."""
        try:
            apply(self.segment(part), pieces)
            return True
        except OSError as exc:
            if self.copy_error is None:
                log.error("source %s: cannot write its outputs here: %s", self.name, exc)
            self.copy_error = f"{self.segment(part)}: {exc.strerror or exc}"
            return False


@dataclass(frozen=True)
class Placement:
    """How a worker is placed and restarted: CPUs, GPUs, custom resources by source name."""

    cpus: float = 1.0
    gpus: float = 0.0
    max_restarts: int = 3
    resources: tuple[tuple[str, str, float], ...] = ()

    def for_source(self, job: LiveJob) -> dict[str, float]:
        """The custom resources ``job``'s source needs (by run folder name, URI or index)."""
        spec = job.spec
        names = {spec.run_name, spec.shown, spec.uri, str(job.index)}
        return {res: amount for name, res, amount in self.resources if name in names}


class Fleet:
    """The run's live sources on Ray actors (see the module docstring).

    Args:
        ray: The imported ``ray`` module.
        sources: One :class:`Live` per live source (record started, no actor yet).
        placement: Resources and restarts.
        max_frames: The run's frame limit per source (over all its segments), or None.
        on_status: Called with each source's index and latest figures (the fleet's page).
    """

    def __init__(
        self,
        ray: Any,
        sources: list[Live],
        placement: Placement,
        max_frames: int | None,
        on_status: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> None:
        self.ray = ray
        self.sources = sources
        self.placement = placement
        self.max_frames = max_frames
        self.on_status = on_status
        self.halt = threading.Event()
        self._next_status = 0.0

    def start(self) -> None:
        """Create every worker and start its first segment."""
        p = self.placement
        remote = self.ray.remote(CameraWorker)
        for live in self.sources:
            live.actor = remote.options(
                num_cpus=p.cpus,
                num_gpus=p.gpus,
                resources=p.for_source(live.job),
                max_restarts=p.max_restarts,
                max_task_retries=0,
                max_concurrency=4,  # status and stop answer while run runs
            ).remote(live.job)
            self._submit(live)

    def running(self) -> list[Live]:
        return [s for s in self.sources if s.status == "running"]

    def supervise(self) -> None:
        """Follow every source until each has ended, or :attr:`halt` (then stop them all)."""
        try:
            while self.running():
                if self.halt.is_set():
                    self.stop()
                    return
                self._step(self.running(), WAIT_S)
                self._poll()
        except Exception:
            log.exception("the fleet's supervisor failed: stopping every worker")
            self.stop()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ask every worker to stop, wait for their segments to be finalized, mark the rest."""
        self.halt.set()
        running = self.running()
        for live in running:
            live.actor.stop.remote()
            if live.ref is None:  # its worker is restarting: no segment runs
                live.status = "interrupted"
        running = self.running()
        deadline = time.monotonic() + timeout_s
        while running and time.monotonic() < deadline:
            self._step(running, WAIT_S)
            running = self.running()
        for live in running:  # did not finish in time: its files are as the worker left them
            live.segments.append(lost_segment(live.part, live.folder, "stopped", live.last))
            live.status = "interrupted"

    def kill(self) -> None:
        """Kill every worker (no restart); their processes end."""
        for live in self.sources:
            if live.actor is not None:
                try:
                    self.ray.kill(live.actor, no_restart=True)
                except Exception as exc:  # already gone
                    log.debug("kill %s: %s", live.name, exc)

    def finish(self) -> None:
        """Write every source's record (with the model its worker loaded, and where each
        restart resumed)."""
        for live in self.sources:
            _resumed_where(live)
            if live.model is not None:
                live.record.update(model=live.model)
            status = live.status if live.status != "running" else "interrupted"
            if live.copy_error is not None and status != "failed":
                status = "failed"
                live.error = (
                    f"its outputs could not be written here ({live.copy_error}); what did "
                    "not come stays in its worker's scratch folder (segments[].worker.scratch)"
                )
            finish_source(live.record, live.segments, live.restarts, status, live.error)

    # -- the supervisor's steps ---------------------------------------------------------

    def _submit(self, live: Live) -> None:
        live.part += 1
        live.retry_at = None
        if live.waiting_since is None:  # a retry keeps the first ask's time
            live.submitted = time.time()
        left = None if self.max_frames is None else max(0, self.max_frames - live.frames)
        live.ref = live.actor.run.remote(live.part, left)

    def _step(self, running: list[Live], timeout_s: float) -> None:
        now = time.monotonic()
        for live in running:
            if live.ref is None and live.retry_at is not None and now >= live.retry_at:
                self._submit(live)
        refs = [s.ref for s in running if s.ref is not None]
        if not refs:
            time.sleep(timeout_s)
            return
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        done = set(ready)
        for live in running:
            if live.ref is not None and live.ref in done:
                self._ended(live)

    def _ended(self, live: Live) -> None:
        """A segment's call returned: the source ended, failed, or its worker was lost."""
        exceptions = self.ray.exceptions
        try:
            data = self.ray.get(live.ref)
        except exceptions.RayActorError as exc:
            self._lost(live, exc)
            return
        except exceptions.RayTaskError as exc:
            self._collect(live)
            cause = getattr(exc, "cause", None)
            live.error = str(cause) if cause is not None else _last_line(str(exc))
            data = _read(live.folder)
            live.segments.append(segment_entry(live.part, live.folder, data, live.submitted))
            live.status = "failed"
            log.error("source %s failed: %s (the other sources go on)", live.name, live.error)
            return
        live.waiting_since = None
        self._collect(live)
        live.model = data.get("model") or live.model
        entry = segment_entry(live.part, live.folder, data, live.submitted)
        live.segments.append(entry)
        live.frames += int(entry["frames"] or 0)
        live.status = "interrupted" if self.halt.is_set() else "ok"

    def _collect(self, live: Live) -> None:
        """Outputs sent to the driver: the ended segment's last bytes (a status reply still
        on its way first: it holds earlier ones), then its scratch folder is removed."""
        if not live.job.scratch:
            return
        part = live.part
        try:
            ok = self._settle(live, STOP_TIMEOUT_S)
            while ok and (pieces := self.ray.get(live.actor.pull.remote(part), timeout=60)):
                ok = live.receive(part, pieces)
            if ok:
                _relocated(live.segment(part))
                self.ray.get(live.actor.drop.remote(part), timeout=60)
        except Exception as exc:  # the worker went away meanwhile: the driver keeps what came
            log.warning("source %s: %s's last outputs did not all come: %s", live.name, part, exc)

    def _settle(self, live: Live, timeout_s: float) -> bool:
        """Outputs sent to the driver, a segment over (ended or its worker lost): a status
        reply still on its way holds earlier bytes of it, written before anything else is
        (a reply later than ``timeout_s`` is dropped). False: the driver cannot write."""
        if not live.job.scratch or live.asked is None:
            return True
        ready, _ = self.ray.wait([live.asked], timeout=timeout_s)
        ok = True
        if ready:
            with contextlib.suppress(Exception):  # the reply died with the worker
                ok = self._pieces(live, self.ray.get(live.asked))
        live.asked = None
        return ok

    def _pieces(self, live: Live, reply: dict[str, Any]) -> bool:
        """Write the segment bytes a status reply carries (outputs sent to the driver)."""
        got = reply.pop("pieces", None)
        return live.receive(*got) if got else True

    def _lost(self, live: Live, exc: BaseException) -> None:
        """The worker died (process or node): record the restart, start the next segment."""
        reason = lost_reason(exc)
        self._settle(live, SETTLE_S)
        if not live.folder.exists() and not self.halt.is_set() and self._waiting(live, exc):
            return
        live.waiting_since = None
        entry = lost_segment(live.part, live.folder, reason, live.last, live.submitted)
        live.segments.append(entry)
        live.frames += int(entry["frames"] or 0)
        if self.halt.is_set():
            live.status = "interrupted"
            return
        if "creation task" in str(exc) or "never ran" in str(exc):  # a restart will not help
            live.status, live.error = "failed", f"the worker could not start: {reason}"
            log.error("source %s: %s", live.name, live.error)
            return
        worker = entry.get("worker") or {}
        live.restarts.append({"part": live.part, "at": now_iso(), "reason": reason, **worker})
        if len(live.restarts) > self.placement.max_restarts:
            live.status = "failed"
            live.error = (
                f"its worker was lost {len(live.restarts)} time(s) (run.ray_max_restarts "
                f"{self.placement.max_restarts}); last: {reason}"
            )
            log.error("source %s failed: %s (the other sources go on)", live.name, live.error)
            return
        if self.max_frames is not None and live.frames >= self.max_frames:
            live.status = "ok"
            return
        log.warning(
            "source %s: its worker was lost (%s); Ray restarts it, frames resume in %s",
            live.name,
            reason,
            PART_DIR.format(live.part + 1),
        )
        self._submit(live)

    def _waiting(self, live: Live, exc: BaseException) -> bool:
        """A segment that never started because Ray is still restarting the worker: asked
        again shortly (not a restart of its own). False: it is not that, or too long."""
        if not isinstance(exc, self.ray.exceptions.ActorUnavailableError):
            return False
        now = time.monotonic()
        live.waiting_since = live.waiting_since or now
        if now - live.waiting_since > RESTART_TIMEOUT_S:
            return False
        live.part -= 1  # the same segment number, once the worker is back
        live.ref, live.retry_at = None, now + RETRY_S
        return True

    def _poll(self) -> None:
        """Collect the workers' figures; ask again every :data:`STATUS_EVERY_S`."""
        for i, live in enumerate(self.sources):
            if live.asked is None:
                continue
            ready, _ = self.ray.wait([live.asked], timeout=0)
            if not ready:
                continue
            try:
                live.last = self.ray.get(live.asked)
                self._pieces(live, live.last)
            except Exception:  # the worker is restarting: its run call says why
                gone: dict[str, Any] = {
                    "state": "restarting",
                    "health": "restarting",
                    "rows": [],
                    "jpeg": None,
                }
                live.last = {**live.last, **gone}
            live.asked = None
            if self.on_status is not None:
                self.on_status(i, live.last)
        now = time.monotonic()
        if now < self._next_status:
            return
        self._next_status = now + STATUS_EVERY_S
        for live in self.running():
            if live.asked is None:
                live.asked = live.actor.status.remote(jpeg=self.on_status is not None)


def lost_reason(exc: BaseException) -> str:
    """Ray's reason for a worker's death, in one line (the cause, not the boilerplate)."""
    text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
    kind = type(exc).__name__
    for key, said in (
        ("node has died", "its node died"),
        ("killed by `ray.kill`", "killed by ray.kill"),
        ("out of memory", "out of memory"),
        ("connection error", "its process died (connection closed: killed or crashed)"),
        ("Socket closed", "its process or node went away (connection lost)"),
        ("Connection reset", "its process or node went away (connection lost)"),
        ("rpc_code: 14", "its process or node went away (connection lost)"),
        ("was restarted", "its process or node went away (Ray restarted the worker)"),
    ):
        if key in text:
            return f"{said} ({kind})"
    return _clip(f"{kind}: {_last_line(str(exc))}")


def _resumed_where(live: Live) -> None:
    """Each restart: the node its next segment ran on, and whether that is another node."""
    by_part = {seg["part"]: seg.get("worker") or {} for seg in live.segments}
    for restart in live.restarts:
        after = by_part.get(restart["part"] + 1, {})
        if after.get("node_id"):
            restart["resumed_node_id"] = after["node_id"]
            restart["moved"] = after["node_id"] != restart.get("node_id")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "?"


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _relocated(folder: Path) -> None:
    """A segment sent to the driver: its ``run.json`` names the driver's folder (and keeps
    the scratch folder it was written in, under ``worker``)."""
    data = _read(folder)
    if data:
        data.setdefault("worker", {})["scratch"] = data.get("run_dir")
        data["run_dir"] = str(folder)
        write_json(folder / RUN_JSON, data)


def _read(folder: Path) -> dict[str, Any]:
    """A segment's own record as its worker wrote it ({} when there is none)."""
    try:
        data: dict[str, Any] = json.loads((folder / RUN_JSON).read_text())
        return data
    except (OSError, ValueError):
        return {}
