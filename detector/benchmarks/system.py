"""Machine facts, library versions, and the CPU-time / memory probes every measurement uses."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from detector.paths import PROJECT_ROOT as root


def machine_info() -> dict[str, object]:
    """CPU model, core count, OS, Python and the versions of the libraries that set speed."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions: dict[str, str] = {"python": platform.python_version()}
    for mod in ("numpy", "cv2", "tensorflow", "ai_edge_litert"):
        try:
            versions[mod] = str(__import__(mod).__version__)
        except Exception:  # absent or broken: record, do not fail the bench
            versions[mod] = "missing"
    if versions.get("ai_edge_litert") == "missing":
        with contextlib.suppress(Exception):
            versions["ai_edge_litert"] = version("ai-edge-litert")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "env": {
            k: os.environ[k]
            for k in ("TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS", "TF_XLA_FLAGS")
            if k in os.environ
        },
        "versions": versions,
        "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def rss_mb() -> float:
    """Resident set size of this process now, in MB (from /proc; peak RSS where absent)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class Span:
    """Wall and process-CPU time between ``start()`` and ``stop()`` (all threads counted)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    _w0: float = 0.0
    _c0: float = 0.0

    def start(self) -> Span:
        self._w0, self._c0 = time.perf_counter(), time.process_time()
        return self

    def stop(self) -> Span:
        self.wall_s = time.perf_counter() - self._w0
        self.cpu_s = time.process_time() - self._c0
        return self


def rate(frames: int, span: Span) -> dict[str, float]:
    """Frames/s, wall ms and CPU ms per frame, and cores used, for ``frames`` in ``span``."""
    frames = max(frames, 1)
    wall = max(span.wall_s, 1e-9)
    return {
        "fps": frames / wall,
        "ms_per_frame": 1e3 * wall / frames,
        "cpu_ms_per_frame": 1e3 * span.cpu_s / frames,
        "cores_used": span.cpu_s / wall,
        "frames": frames,
    }


def warm_frames(warmup: int, frames: int) -> int:
    """Frames left out of a timing as warm-up: ``warmup``, but never more than a quarter of
    ``frames`` (and at least one)."""
    return min(warmup, max(1, frames // 4))


def worker_env() -> dict[str, str]:
    """The environment of a bench's worker process: TensorFlow's C++ start-up chatter off
    unless the user set its level."""
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))


def median_run(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    """Per-key median over repeats of the same measurement; keeps the repeat values of fps."""
    if not runs:
        return {}
    out: dict[str, float] = {}
    for key in runs[0]:
        vals = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if vals:
            out[key] = float(statistics.median(vals))
    if "fps" in runs[0]:
        out["fps_repeats"] = [round(float(r["fps"]), 2) for r in runs]  # type: ignore[assignment]
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def run_json_subprocess(module: str, args: Sequence[str], timeout_s: float) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh process and return its last stdout line as JSON.

    Used where a measurement needs a process of its own (TF sizes its thread pools once per
    process; RSS must be the app's, not the bench's). A failure comes back as ``{"error": …}``
    holding the last lines of its stderr, so one broken measurement does not end the run.
    """

    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=root,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return {"error": tail or f"exit {done.returncode}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
