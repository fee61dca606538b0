"""The one process entry for bench measurements that need a process of their own.

TensorFlow sizes its thread pools once per process and RSS must be the app's, not the
bench's, so some measurements run in a fresh ``python -m detector.benchmarks.worker``:
the parent names a function of a ``detector.benchmarks`` module and its keyword arguments
(JSON on stdin), the worker calls it and prints its JSON result as the last stdout line.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

    task = f"{fn.__module__}:{fn.__qualname__}"
    if not fn.__module__.startswith(_PACKAGE):
        raise ValueError(f"bench worker task {task!r} is not in {_PACKAGE.rstrip('.')}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__],
            input=json.dumps({"task": task, "kwargs": _jsonable(kwargs)}),
            cwd=PROJECT_ROOT,
            env=env,
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


def main() -> int:
    """Read ``{"task": "module:function", "kwargs": {...}}`` on stdin; print the result."""
    request = json.loads(sys.stdin.read())
    module, _, name = str(request["task"]).partition(":")
    if not module.startswith(_PACKAGE) or not name.isidentifier():
        print(f"not a bench task: {request['task']!r}", file=sys.stderr)
        return 2
    fn = getattr(importlib.import_module(module), name)
    print(json.dumps(fn(**request["kwargs"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
