"""The web view's cost to a live run: no viewer beside five (four watching, one stalled).

Each run is the app's own live path (a paced source, keep-newest, the model, the renderer,
video + JSON lines) with the web view's sink and server; viewers are real HTTP clients on
127.0.0.1 reading ``/stream.mjpg`` (one of them sends its request and never reads). Two
paces: the camera's rate (capture-to-output latency, the p95 delta is the goal) and flat
out (the model saturated: the inference-rate ratio is the goal). Runs with and without
viewers alternate, and medians over the rounds are reported, so a noisy neighbour on the
machine weighs on both sides alike.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from detector.benchmarks.paced import PACED_URI, Pace, paced_run

VIEWERS = 50  # one of them stalled
# Flat out: a camera far faster than the model (about 70 frames/s at 576p on 2 cores), read
# for as long as the paced run lasts, so keep-newest drops and the model never waits.
FLAT_OUT_FPS = 150.0


class _Viewer:
    """An MJPEG client: reads (and discards) the stream, or, stalled, never reads."""

    def __init__(self, port: int, *, stalled: bool) -> None:
        self.bytes = 0
        self.stalled = stalled
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if stalled:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.sendall(b"GET /stream.mjpg HTTP/1.0\r\nHost: bench\r\n\r\n")
        self._thread = None
        if not stalled:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(1 << 16):
                self.bytes += len(chunk)
        except OSError:
            pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _one_run(pace: Pace, out_dir: Path, viewers: int) -> dict[str, Any]:
    from detector.outputs.web import Hub, WebServer

    hub = Hub()
    feed = hub.add_feed("bench", PACED_URI, live=True)
    clients: list[_Viewer] = []
    try:
        with WebServer(hub, port=0) as server:
            clients = [_Viewer(server.port, stalled=(k == 0)) for k in range(viewers)]
            run = paced_run(pace, out_dir, web_feed=feed)
            status = feed.status()
            received = sum(c.bytes for c in clients)
    finally:
        for c in clients:
            c.close()
    stats = run.stats
    return {
        "viewers": viewers,
        "inference_fps": run.inference_fps(),
        **run.latency(),
        # the whole process's CPU (every thread: capture, model, render, server) per frame out
        "cpu_ms_per_frame": 1e3 * run.cpu_s / max(1, stats.frames_processed),
        "frames_out": stats.frames_processed,
        "dropped": stats.frames_dropped,
        "jpeg_encodes": status["jpeg_encodes"],
        "viewers_dropped": status["viewers_dropped"],
        "mb_sent": round(received / 1e6, 2),
    }


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in runs[0]:
        vals = [r[key] for r in runs if isinstance(r[key], (int, float))]
        out[key] = statistics.median(vals) if vals else runs[0][key]
    return out


def web_viewers(pace: Pace, out_dir: Path, rounds: int = 2) -> dict[str, Any]:
    """Live runs without and with :data:`VIEWERS` viewers at ``fps`` and flat out.

    Returns:
        ``paced`` and ``flat_out``, each ``{"none": {...}, "viewers": {...}}`` (medians over
        ``rounds``), plus ``fps_ratio`` (flat out: inference frames/s with viewers ÷
        without), ``p95_delta_ms`` (paced: p95 capture-to-output latency with viewers −
        without) and ``cpu_ms_per_frame_delta`` (paced: the process's CPU per frame with
        viewers − without: what serving costs, less sensitive to a loaded machine).
    """
    fps, count = pace.fps, pace.count
    result: dict[str, Any] = {"viewers": VIEWERS, "stalled": 1, "fps_paced": fps}
    for name, rate in (("paced", fps), ("flat_out", FLAT_OUT_FPS)):
        n = count if name == "paced" else int(count * FLAT_OUT_FPS / fps)
        at_rate = replace(pace, fps=rate, count=n)
        runs: dict[int, list[dict[str, Any]]] = {0: [], VIEWERS: []}
        for r in range(rounds):
            order = (0, VIEWERS) if r % 2 == 0 else (VIEWERS, 0)  # ABBA: drift cancels
            for v in order:
                runs[v].append(_one_run(at_rate, out_dir / f"{name}_{v}_{r}", v))
        result[name] = {"none": _median(runs[0]), "viewers": _median(runs[VIEWERS])}
    flat, paced = result["flat_out"], result["paced"]
    result["fps_ratio"] = flat["viewers"]["inference_fps"] / flat["none"]["inference_fps"]
    result["p95_delta_ms"] = paced["viewers"]["latency_ms_p95"] - paced["none"]["latency_ms_p95"]
    result["cpu_ms_per_frame_delta"] = (
        paced["viewers"]["cpu_ms_per_frame"] - paced["none"]["cpu_ms_per_frame"]
    )
    return result
