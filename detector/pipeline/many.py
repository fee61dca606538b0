"""Several sources in one run: a thread per source, live ones all at once, files one after another.

Each source is a *job* (a callable that runs that source to its end and returns its outcome).
Live sources (cameras, streams) start together and run until they end or the run stops;
files and folders run one at a time beside them, each with the configured inference workers
(the cores are already busy with one). A job that fails is recorded and the others go on.
A stop (Ctrl-C / SIGTERM on the main thread, which waits here) sets the shared ``halt``
event: every running job finishes its current frame and finalizes its outputs, jobs not
yet started are marked ``skipped``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from detector.pipeline.signals import stop_requested
from detector.types import RunStats

log = logging.getLogger(__name__)

OK, FAILED, INTERRUPTED, SKIPPED = "ok", "failed", "interrupted", "skipped"
_POLL_S = 0.2  # how often the main thread wakes (signals are handled between waits)


@dataclass
class Outcome:
    """How one source's run ended.

    Attributes:
        name: The source as shown to the user (credentials masked).
        status: ``ok``, ``failed``, ``interrupted`` or ``skipped`` (never started).
        error: Why it failed (one line, with the path and the reason).
        result: Whatever the job returned (the app: its record and numbers).
    """

    name: str
    status: str = SKIPPED
    error: str | None = None
    result: Any = None


Job = Callable[[threading.Event], Any]


def run_jobs(
    jobs: Sequence[tuple[str, bool, Job]], halt: threading.Event, *, join_timeout_s: float = 30.0
) -> list[Outcome]:
    """Run ``jobs`` (``(name, live, job)``): live ones concurrently, the rest in order.

    A job is called with ``halt`` (set when the run stops) on its own thread; it returns
    its result or raises. Exceptions are recorded as that job's failure (``Exception``) or
    interruption (``KeyboardInterrupt``), never propagated.

    Returns:
        One :class:`Outcome` per job, in the jobs' order.

    Raises:
        KeyboardInterrupt: The main thread was interrupted; ``halt`` was set and every
            running job finished before this is raised (outcomes in its ``outcomes``).
    """
    outcomes = [Outcome(name) for name, _, _ in jobs]
    lock = threading.Lock()

    def run(i: int) -> None:
        _run_job(jobs[i][2], outcomes[i], halt, lock)

    def files_in_order(indices: list[int]) -> None:
        for i in indices:
            if halt.is_set():
                break
            run(i)

    live = [i for i, (_, is_live, _) in enumerate(jobs) if is_live]
    files = [i for i, (_, is_live, _) in enumerate(jobs) if not is_live]
    lanes: list[tuple[str, Callable[[], None]]] = [
        (f"detector-source-{i}", functools.partial(run, i)) for i in live
    ]
    if files:
        lanes.append(("detector-files", functools.partial(files_in_order, files)))
    # Completion is counted here rather than read from Thread.is_alive(): a join that a
    # Ctrl-C interrupts can leave is_alive() False for a thread that is still running.
    done = threading.Condition()
    running = [len(lanes)]

    def lane(body: Callable[[], None]) -> None:
        try:
            body()
        finally:
            with done:
                running[0] -= 1
                done.notify_all()

    for name, body in lanes:
        threading.Thread(target=lane, args=(body,), name=name, daemon=True).start()
    try:
        _wait(done, running, None)
    except KeyboardInterrupt as exc:
        halt.set()
        if not _wait(done, running, join_timeout_s):
            log.error("sources still running after %.0f s", join_timeout_s)
        exc.outcomes = outcomes  # type: ignore[attr-defined]
        raise
    return outcomes


def _run_job(job: Job, outcome: Outcome, halt: threading.Event, lock: threading.Lock) -> None:
    """Run one job on this thread; its result, failure or interruption into ``outcome``."""
    try:
        result = job(halt)
    except KeyboardInterrupt as exc:
        outcome.status = INTERRUPTED
        outcome.result = getattr(exc, "result", None)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        with lock:
            outcome.status = FAILED
            outcome.error = message
            outcome.result = getattr(exc, "result", None)
        log.error("source %s failed: %s (the other sources go on)", outcome.name, message)
        log.debug("source %s failed", outcome.name, exc_info=True)
    else:
        outcome.status = INTERRUPTED if halt.is_set() else OK
        outcome.result = result


def _wait(done: threading.Condition, running: list[int], timeout_s: float | None) -> bool:
    """Wait until no lane runs (waking every 0.2 s, so signals are handled); False on timeout.

    Without a timeout, a stop already received (whose ``KeyboardInterrupt`` a library caught
    during start-up) is raised here, as if it arrived now."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with done:
        while running[0] > 0:
            if deadline is None and stop_requested():  # a stop a library swallowed in start-up
                raise KeyboardInterrupt
            if deadline is not None and time.monotonic() >= deadline:
                return False
            done.wait(_POLL_S)
    return True


def sum_stats(all_stats: Sequence[RunStats], interrupted: bool) -> RunStats:
    """Every source's numbers summed (rates: the sum of the sources' rates)."""

    def add(name: str) -> int:
        return sum(int(getattr(s, name)) for s in all_stats)

    means = [s.inference_ms_mean for s in all_stats if s.inference_ms_mean is not None]
    p50s = [s.inference_ms_p50 for s in all_stats if s.inference_ms_p50 is not None]
    return RunStats(
        frames_read=add("frames_read"),
        frames_processed=add("frames_processed"),
        frames_dropped=add("frames_dropped"),
        frames_skipped=add("frames_skipped"),
        inferences=add("inferences"),
        inference_ms_mean=sum(means) / len(means) if means else None,
        inference_ms_p50=sorted(p50s)[len(p50s) // 2] if p50s else None,
        latency_ms_p50=None,
        latency_ms_p95=None,
        fps=sum(s.fps for s in all_stats),
        elapsed_s=max((s.elapsed_s for s in all_stats), default=0.0),
        interrupted=interrupted,
    )
