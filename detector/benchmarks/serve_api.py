"""The detection service under load: requests/s and latency for 1, 4 and 16 clients, batched or not.

Each mode starts the real service (``python -m detector serve`` in a process of its own, on
127.0.0.1, the bench's model) and its clients post the sample photos to ``/api/detect`` over
kept-alive HTTP connections, each client one request at a time. ``batched`` lets concurrent
requests share a model call (``serve.batch_size`` 8, ``serve.batch_wait_ms`` 5);
``one_at_a_time`` gives each request a model call of its own (``serve.batch_size`` 1). Both
have the same model workers, so the difference is the batching alone. Both services run at
once (idle one costs nothing) and their rounds alternate (A B B A ...), medians reported, so a
busy neighbour on the machine weighs on both alike.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from detector.benchmarks.system import percentile

CLIENTS = (1, 4, 16)
MODES = {"batched": 8, "one_at_a_time": 1}
_START_TIMEOUT_S = 240.0


def _start(config: Path, out: Path) -> tuple[subprocess.Popen[str], str, int]:
    """The service in its own process; it, its host and port once it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "detector", "serve", "--config", str(config), "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(proc.stderr.readline, "")) if proc.stderr else None,
        daemon=True,
    )
    reader.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        for line in list(lines):
            found = re.search(r"detection service: http://([\d.]+):(\d+)/", line)
            if found:
                return proc, found.group(1), int(found.group(2))
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the service did not start: " + "".join(lines)[-2000:])


def _client(
    host: str, port: int, photos: Sequence[bytes], count: int, offset: int, out: list[float]
) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=120)
    try:
        for i in range(count):
            body = photos[(offset + i) % len(photos)]
            t0 = time.perf_counter()
            conn.request("POST", "/api/detect", body, {"Content-Type": "image/jpeg"})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"/api/detect answered {answer.status}")
            out.append((time.perf_counter() - t0) * 1e3)
    finally:
        conn.close()


def _load(host: str, port: int, photos: Sequence[bytes], clients: int, each: int) -> dict[str, Any]:
    """``clients`` threads, each posting ``each`` photos one after another."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(target=_client, args=(host, port, photos, each, 3 * k, latencies[k]))
        for k in range(clients)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    flat = [v for lat in latencies for v in lat]
    return {
        "clients": clients,
        "requests": len(flat),
        "requests_per_s": len(flat) / elapsed if elapsed > 0 else float("nan"),
        "latency_ms_p50": percentile(flat, 50),
        "latency_ms_p95": percentile(flat, 95),
    }


Service = tuple[subprocess.Popen[str], str, int]


def _start_modes(
    model: Path,
    labels: Path | None,
    tmp: Path,
    workers: int,
    photos: Sequence[bytes],
    progress: Callable[[str], None],
) -> dict[str, Service]:
    """One service per mode, each warmed up; those started so far are stopped on an error."""
    services: dict[str, Service] = {}
    try:
        for mode, batch in MODES.items():
            config = tmp / f"serve-{mode}.yml"
            config.write_text(
                f"model:\n  path: {model}\n  labels: {labels if labels else 'null'}\n"
                f"  workers: {workers}\n"
                f"output:\n  dir: {tmp / 'runs'}\n"
                f"serve:\n  batch_size: {batch}\n  rate_limit: 0\n  queue: 64\n",
                encoding="utf-8",
            )
            progress(f"serve: starting the {mode} service (batch size {batch})")
            services[mode] = _start(config, tmp)
            _load(services[mode][1], services[mode][2], photos, 2, 8)  # warm-up
    except BaseException:
        _stop(services)
        raise
    return services


def _stop(services: dict[str, Service]) -> None:
    """SIGTERM each service (a clean stop), then wait; kill one that does not end."""
    for proc, _, _ in services.values():
        proc.send_signal(signal.SIGTERM)
    for proc, _, _ in services.values():
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _rounds(
    services: dict[str, Service],
    photos: Sequence[bytes],
    clients: Sequence[int],
    requests: int,
    rounds: int,
    progress: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Each mode's median figures per client count, over rounds in alternating order."""
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {m: {c: [] for c in clients} for m in MODES}
    for r in range(rounds):
        order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
        for c in clients:
            for mode in order:
                progress(f"serve: round {r + 1}, {mode}, {c} clients")
                _, host, port = services[mode]
                runs[mode][c].append(_load(host, port, photos, c, max(c, requests // c)))
    return {
        mode: {
            str(c): {
                k: statistics.median(row[k] for row in runs[mode][c]) for k in runs[mode][c][0]
            }
            for c in clients
        }
        for mode in MODES
    }


def serve_api(
    model: Path,
    labels: Path | None,
    photos_dir: Path,
    tmp: Path,
    *,
    workers: int = 2,
    requests: int = 64,
    clients: Sequence[int] = CLIENTS,
    rounds: int = 2,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Each mode's figures per client count (``requests`` requests each), and the ratios.

    Returns:
        ``{"batched": {"1": {...}, ...}, "one_at_a_time": {...}, "photos": N,
        "rps_ratio": {"16": batched ÷ one at a time, ...}}``.
    """
    photos = [p.read_bytes() for p in sorted(photos_dir.glob("*.jpg"))]
    if not photos:
        raise RuntimeError(f"no .jpg photos in {photos_dir}")
    result: dict[str, Any] = {"photos": len(photos), "requests": requests, "workers": workers}
    services = _start_modes(model, labels, tmp, workers, photos, progress)
    try:
        result.update(_rounds(services, photos, clients, requests, rounds, progress))
    finally:
        _stop(services)
    result["rps_ratio"] = {
        str(c): result["batched"][str(c)]["requests_per_s"]
        / result["one_at_a_time"][str(c)]["requests_per_s"]
        for c in clients
    }
    return result


def format_serve(result: dict[str, Any]) -> str:
    """The report's lines: one per mode and client count."""
    lines = [f"detection service, /api/detect on {result['photos']} sample photos:"]
    for mode in MODES:
        for c, row in result[mode].items():
            lines.append(
                f"  {mode:<14} {c:>2} clients: {row['requests_per_s']:6.1f} req/s, "
                f"p50 {row['latency_ms_p50']:6.1f} ms, p95 {row['latency_ms_p95']:6.1f} ms"
            )
    ratios = ", ".join(f"{c} clients {r:.2f}x" for c, r in result["rps_ratio"].items())
    lines.append(f"  batched ÷ one at a time (req/s): {ratios}")
    return "\n".join(lines)
