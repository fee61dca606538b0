"""`many.run_jobs`: live jobs at once, file jobs in turn, a failure recorded, the rest go on."""

from __future__ import annotations

import threading

from detector.errors import SourceError
from detector.pipeline.many import FAILED, INTERRUPTED, OK, run_jobs


def test_live_jobs_run_together_files_in_order_and_a_failure_is_recorded():
    order: list[str] = []
    lock = threading.Lock()
    a_started, b_started = threading.Event(), threading.Event()

    def live(mine: threading.Event, other: threading.Event, name: str):
        def job(halt: threading.Event) -> str:
            mine.set()
            # Each live job waits for the other to have started: only true concurrency ends both.
            assert other.wait(10), f"{name}: the other live source never started"
            return name

        return job

    def file(name: str, fail: bool = False):
        def job(halt: threading.Event) -> str:
            with lock:
                order.append(f"start {name}")
            if fail:
                raise SourceError(f"cannot open video file '{name}': not a video\nhint: x")
            with lock:
                order.append(f"end {name}")
            return name

        return job

    jobs = [
        ("f1", False, file("f1")),
        ("cam-a", True, live(a_started, b_started, "cam-a")),
        ("f2", False, file("f2", fail=True)),
        ("cam-b", True, live(b_started, a_started, "cam-b")),
        ("f3", False, file("f3")),
    ]
    outcomes = run_jobs(jobs, threading.Event())
    assert [o.status for o in outcomes] == [OK, OK, FAILED, OK, OK]
    assert [o.result for o in outcomes if o.status == OK] == ["f1", "cam-a", "cam-b", "f3"]
    assert outcomes[2].error == "cannot open video file 'f2': not a video"  # first line only
    assert order == ["start f1", "end f1", "start f2", "start f3", "end f3"]


def test_a_halted_run_marks_running_jobs_interrupted_and_later_files_skipped():
    halt = threading.Event()

    def stops_the_run(h: threading.Event) -> str:
        h.set()  # as Ctrl-C would
        return "first"

    outcomes = run_jobs([("a", False, stops_the_run), ("b", False, lambda h: "never")], halt)
    assert [o.status for o in outcomes] == [INTERRUPTED, "skipped"]
