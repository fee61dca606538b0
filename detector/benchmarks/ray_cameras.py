"""Cameras on Ray: 10 FPS cameras held on one node vs two nodes, memory and start-up per worker.

The cameras are MJPEG streams served from this process (:class:`MjpegCameras`, the frames of
a sample video at a fixed rate, as an IP camera sends them). One Ray cluster of two nodes is
started on this machine (``ray.cluster_utils.Cluster``, shut down through its handle); each
run is the user's command, ``main.py run --engine ray --ray-address ...`` in a process of its
own, with every camera pinned (``--ray-placement``) to node A, or alternately to A and B. From
each source's segment record: frames held (processed / read from the camera) and p95
capture-to-output latency; from ``/proc`` while it runs: each worker's memory (RSS); from the
record, how long a worker took from the driver's ask to its first segment (placement,
process start, imports, model load); and the driver's own CPU time per camera-second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2

from detector.distributed.session import prepare_machine_cluster
from detector.paths import PROJECT_ROOT

BOUNDARY = b"frame"
FPS = 10.0


class MjpegCameras:
    """``count`` MJPEG cameras on 127.0.0.1 sending ``frames`` (JPEG bytes) at ``fps``."""

    def __init__(self, frames: list[bytes], count: int, fps: float = FPS) -> None:
        self.frames, self.fps = frames, fps
        self.servers = [self._server() for _ in range(count)]

    def _server(self) -> ThreadingHTTPServer:
        cams = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                t0, i = time.monotonic(), 0
                try:
                    while True:
                        jpeg = cams.frames[i % len(cams.frames)]
                        head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                        self.wfile.write(
                            b"--" + BOUNDARY + b"\r\n" + head.encode() + jpeg + b"\r\n"
                        )
                        i += 1
                        time.sleep(max(0.0, t0 + i / cams.fps - time.monotonic()))
                except OSError:
                    return

            def log_message(self, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{s.server_address[1]}/cam.mjpg" for s in self.servers]

    def close(self) -> None:
        for s in self.servers:
            s.shutdown()
            s.server_close()


def video_jpegs(video: Path, count: int = 100, width: int = 640) -> list[bytes]:
    """The first ``count`` frames of ``video``, ``width`` pixels wide, as JPEG bytes."""
    cap = cv2.VideoCapture(str(video))
    out: list[bytes] = []
    while len(out) < count:
        ok, image = cap.read()
        if not ok:
            break
        h = round(image.shape[0] * width / image.shape[1])
        ok, buf = cv2.imencode(
            ".jpg", cv2.resize(image, (width, h)), [cv2.IMWRITE_JPEG_QUALITY, 80]
        )
        if ok:
            out.append(buf.tobytes())
    cap.release()
    if not out:
        raise FileNotFoundError(f"no frames in {video}")
    return out


def _usage(pid: int) -> tuple[float, float] | None:
    """A process's resident memory (MB) and CPU seconds so far, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    rss = next((int(ln.split()[1]) / 1024 for ln in status if ln.startswith("VmRSS:")), 0.0)
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _workers(folder: Path) -> list[int]:
    """PIDs of the run's running camera workers (from their segments' records)."""
    pids = []
    for record in folder.glob("*/part-*/run.json"):
        try:
            pid = json.loads(record.read_text()).get("worker", {}).get("pid")
        except (OSError, ValueError):
            continue
        if pid:
            pids.append(int(pid))
    return pids


def one_run(
    address: str, urls: list[str], nodes: list[str], frames: int, out: Path, name: str
) -> dict[str, Any]:
    """One ``main.py run`` of ``urls`` pinned round-robin to ``nodes``; its figures."""
    pins = ",".join(f"{u}={nodes[i % len(nodes)]}" for i, u in enumerate(urls))
    cmd = [sys.executable, "main.py", "run", "-q", "--engine", "ray", "--ray-address", address]
    cmd += [a for u in urls for a in ("--source", u)]
    cmd += ["--max-frames", str(frames), "--ray-placement", pins, "--ray-cpus-per-source", "0.5"]
    cmd += ["--output", str(out), "--name", name]
    err = out / f"{name}.stderr"
    with err.open("wb") as err_file:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=err_file)
        rss: dict[int, float] = {}
        cpu: dict[int, float] = {}
        while True:  # the workers' memory and CPU while they run; the driver's CPU at its end
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            for worker in _workers(out / name):
                got = _usage(worker)
                if got is not None:
                    rss[worker] = max(rss.get(worker, 0.0), got[0])
                    cpu[worker] = got[1]
            time.sleep(0.5)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code != 0 or not (out / name / "run.json").is_file():
        lines = err.read_text(errors="replace").strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {code}"}
    return _figures(out / name, rss, cpu, usage)


def _figures(
    folder: Path, rss: dict[int, float], cpu: dict[int, float], usage: Any
) -> dict[str, Any]:
    """Held frames, p95 latency, start-up, memory and CPU per worker, from the run's records."""
    read = processed = 0
    p95s, waits, starts, models = [], [], [], []
    for record in folder.glob("*/run.json"):
        data = json.loads(record.read_text())
        for seg in data.get("segments", []):
            seg_record = json.loads((record.parent / seg["run_dir"] / "run.json").read_text())
            stats = seg_record.get("stats") or {}
            read += int(stats.get("frames_read") or 0)
            processed += int(stats.get("frames_processed") or 0)
            if stats.get("latency_ms_p95") is not None:
                p95s.append(float(stats["latency_ms_p95"]))
            if seg.get("start_wait_s") is not None:
                waits.append(float(seg["start_wait_s"]))
            worker = seg.get("worker") or {}
            starts.append(float(worker.get("start_s") or 0.0))
            mem = worker.get("rss_mb") or {}
            if mem.get("with_model") and mem.get("before_model"):
                models.append(mem["with_model"] - mem["before_model"])
    top = json.loads((folder / "run.json").read_text())
    cams = len(top.get("sources", []))
    elapsed = float((top.get("stats") or {}).get("elapsed_s") or 0.0)
    return {
        "cameras": cams,
        "held": processed / read if read else None,
        "p95_ms": max(p95s) if p95s else None,
        "worker_rss_mb": sum(rss.values()) / len(rss) if rss else None,
        "worker_start_s": sum(waits) / len(waits) if waits else None,
        "model_load_s": sum(starts) / len(starts) if starts else None,
        "model_mb": sum(models) / len(models) if models else None,
        "worker_cpu": sum(cpu.values()) / (len(cpu) * elapsed) if cpu and elapsed else None,
        "driver_cpu_s": usage.ru_utime + usage.ru_stime,
        "driver_cpu_per_camera": (
            (usage.ru_utime + usage.ru_stime) / (cams * elapsed) if cams and elapsed else None
        ),
    }


def cameras_bench(
    video: Path, tmp: Path, counts: tuple[int, ...] = (2, 4), frames: int = 300
) -> dict[str, Any]:
    """``counts`` cameras at 10 FPS for ``frames`` frames each, on one node then two, on one
    cluster of two nodes started here (8 logical CPUs each; the machine's cores are shared).

    Returns:
        ``rows``: per camera count and layout, the figures of :func:`_figures` (or ``error``).
    """
    prepare_machine_cluster()  # before Ray is imported
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        return {"error": "Ray is not installed: .venv/bin/python -m pip install 'ray[data]'"}
    tmp.mkdir(parents=True, exist_ok=True)
    cams = MjpegCameras(video_jpegs(video), max(counts))
    head = {"num_cpus": 8, "resources": {"bench_a": 64.0}, "include_dashboard": False}
    cluster: Any = Cluster(initialize_head=True, head_node_args=head)
    rows = []
    try:
        cluster.add_node(num_cpus=8, resources={"bench_b": 64.0})
        cluster.wait_for_nodes()
        for n in counts:
            for nodes in (["bench_a"], ["bench_a", "bench_b"]):
                name = f"cams{n}_nodes{len(nodes)}"
                got = one_run(cluster.address, cams.urls[:n], nodes, frames, tmp, name)
                rows.append({"cameras": n, "nodes": len(nodes), **got})
    finally:
        cluster.shutdown()
        cams.close()
    return {"fps": FPS, "frames": frames, "rows": rows}


def format_lines(res: dict[str, Any]) -> list[str]:
    """The report's lines: a row per camera count and layout."""
    if "error" in res:
        return [f"cameras on ray: not measured ({res['error']})"]
    lines = [
        f"cameras on ray ({res['fps']:g} FPS MJPEG cameras, {res['frames']} frames each; "
        "one worker per camera, its own model; nodes of one cluster on this machine):",
        "  cams nodes  held   p95 ms  worker MB (model)  worker CPU  worker start s  "
        "model load s  driver CPU s",
    ]
    for r in res["rows"]:
        if "error" in r:
            lines.append(f"  {r['cameras']:>4} {r['nodes']:>5}  error: {r['error']}")
            continue

        def f(v: float | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        lines.append(
            f"  {r['cameras']:>4} {r['nodes']:>5}  {f(r['held'], '.1%'):>5}  "
            f"{f(r['p95_ms'], '.0f'):>6}  {f(r['worker_rss_mb'], '.0f'):>9} "
            f"({f(r.get('model_mb'), '.0f'):>5})  {f(r.get('worker_cpu'), '.0%'):>10}  "
            f"{f(r['worker_start_s'], '.1f'):>14}  {f(r['model_load_s'], '.1f'):>12}  "
            f"{f(r['driver_cpu_s'], '.1f'):>12}"
        )
    return lines
