"""The one process entry for bench measurements that need a process of their own.

TensorFlow sizes its thread pools once per process and RSS must be the app's, not the
bench's, so some measurements run in a fresh ``python -m detector.benchmarks.worker``:
the parent names a function of a ``detector.benchmarks`` module and its keyword arguments
(JSON on stdin), the worker calls it and prints its JSON result as the last stdout line.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from detector.benchmarks.system import worker_env
from detector.paths import PROJECT_ROOT

_PACKAGE = "detector.benchmarks."


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def run_in_worker(
    fn: Callable[..., dict[str, Any]], timeout_s: float, **kwargs: Any
) -> dict[str, Any]:
    """``fn(**kwargs)`` in a fresh process; its JSON result, or ``{"error": …}``.

    ``fn`` is a module-level function of a ``detector.benchmarks`` module taking JSON values
    (paths are passed as strings). A failure comes back as ``{"error": …}`` holding the last
    lines of the worker's stderr, so one broken measurement does not end the bench.
    """

    task = _task(fn)
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__],
            input=json.dumps({"task": task, "kwargs": _jsonable(kwargs)}),
            cwd=PROJECT_ROOT,
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{task} did not finish in {timeout_s:g} s"}
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return {"error": tail or f"exit {done.returncode}"}
    lines = done.stdout.strip().splitlines()
    if not lines:
        return {"error": f"{task} printed no result"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


#: Marks a session's result line on the worker's stdout (libraries may print there too).
_RESULT = "@@bench-result "


class WorkerSession:
    """A worker process kept between measurements: ``fn(**kwargs)`` is a generator run in
    it, and each :meth:`next` here is its next result (a JSON dict).

    Several sessions alive at once let the bench alternate measurements of several
    configurations, each in its own process, round by round: a noisy minute then slows
    every configuration alike, and their ratios are read round by round.
    """

    def __init__(self, fn: Callable[..., Iterator[dict[str, Any]]], **kwargs: Any) -> None:
        self.task = _task(fn)
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self._pending = b""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, "--session"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=PROJECT_ROOT,
            env=worker_env(),
            text=True,
            bufsize=1,
        )
        self._send(json.dumps({"task": self.task, "kwargs": _jsonable(kwargs)}))

    def _send(self, line: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def next(self, timeout_s: float) -> dict[str, Any]:
        """The generator's next result, or ``{"error": …}`` (it failed, ended or timed out)."""
        try:
            self._send("next")
        except (BrokenPipeError, OSError):
            return {"error": f"{self.task} ended: {self._tail()}"}
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while True:
            line, nl, rest = self._pending.partition(b"\n")
            if nl:
                self._pending = rest
                text = line.decode(errors="replace")
                if text.startswith(_RESULT):
                    result: dict[str, Any] = json.loads(text[len(_RESULT) :])
                    return result
                continue  # a library's own output
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                self.close()
                return {"error": f"{self.task} gave no result in {timeout_s:g} s"}
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return {"error": f"{self.task} ended: {self._tail()}"}
            self._pending += chunk

    def _tail(self) -> str:
        self._stderr.seek(0)
        return "\n".join(self._stderr.read().strip().splitlines()[-5:]) or "no message"

    def close(self) -> None:
        """End the worker (its generator's ``finally`` runs on a clean end)."""
        with contextlib.suppress(OSError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()

    def __enter__(self) -> WorkerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _task(fn: Callable[..., Any]) -> str:
    task = f"{fn.__module__}:{fn.__qualname__}"
    if not fn.__module__.startswith(_PACKAGE):
        raise ValueError(f"bench worker task {task!r} is not in {_PACKAGE.rstrip('.')}")
    return task


def _function(task: str) -> Callable[..., Any] | None:
    module, _, name = task.partition(":")
    if not module.startswith(_PACKAGE) or not name.isidentifier():
        print(f"not a bench task: {task!r}", file=sys.stderr)
        return None
    fn: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return fn


def _session() -> int:
    """A :class:`WorkerSession`'s side: the request line, then a result per ``next`` line."""
    request = json.loads(sys.stdin.readline())
    fn = _function(str(request["task"]))
    if fn is None:
        return 2
    results = fn(**request["kwargs"])
    try:
        for line in sys.stdin:
            if line.strip() != "next":
                continue
            try:
                result = next(results)
            except StopIteration:
                result = {"error": "the measurement ended"}
            print(_RESULT + json.dumps(result), flush=True)
    finally:
        results.close()
    return 0


def main() -> int:
    """Read ``{"task": "module:function", "kwargs": {...}}`` on stdin; print the result
    (``--session``: a :class:`WorkerSession`'s worker)."""
    if "--session" in sys.argv[1:]:
        return _session()
    request = json.loads(sys.stdin.read())
    fn = _function(str(request["task"]))
    if fn is None:
        return 2
    print(json.dumps(fn(**request["kwargs"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
