"""Cameras on ``--engine ray``: a worker actor per source over a 3-node cluster on this machine.

The cameras are real MJPEG servers on 127.0.0.1; the cluster is the session's
(``conftest.ray_cluster``: a head and two worker nodes, one CPU and a custom resource each).
Each run is checked from its files: where each segment ran (its ``run.json``), JSON lines
counted, frame indices never repeated within a segment, the video parts decoded with OpenCV.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.cli_run import RunningCli, cli_env, decode_video, run_cli
from helpers.media import make_video
from helpers.mjpeg_server import MjpegServer

from detector.cli.main import main

pytestmark = pytest.mark.e2e

FPS = 15
SIZE = (160, 120)
# Frames written before a fault: the video keeps whole fragments (one a second of video).
KILL_AFTER = 40


@pytest.fixture(scope="module")
def cams() -> Iterator[list[MjpegServer]]:
    servers = [MjpegServer(fps=FPS, size=SIZE).start() for _ in range(3)]
    yield servers
    for s in servers:
        s.stop()


class _Run(threading.Thread):
    """``main run ...`` in this process (it joins the session's cluster), on a thread."""

    def __init__(self, out: Path, name: str, *args: str) -> None:
        super().__init__(daemon=True)
        self.argv = ["run", "--engine", "ray", "--output", str(out), "--name", name, *args]
        self.folder = out / name
        self.code: int | None = None

    def run(self) -> None:
        self.code = main(self.argv)

    def finish(self, timeout_s: float = 120.0) -> int:
        self.join(timeout_s)
        assert not self.is_alive(), "the run did not end"
        assert self.code is not None
        return self.code


def _sources(*cams: MjpegServer) -> list[str]:
    return [arg for cam in cams for arg in ("--source", cam.url)]


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _wait(what: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _segment(folder: Path) -> int:
    """A segment's JSON lines (whole ones), frame indices unique; the video part decodes."""
    lines = []
    for raw in (folder / "detections.jsonl").read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:  # the last line of a killed worker may be cut
            continue
    indices = [r["frame"] for r in lines]
    assert len(indices) == len(set(indices)), folder
    assert indices == sorted(indices), folder
    decoded, _ = decode_video(folder / "annotated.mp4")
    assert 0 < decoded <= len(lines), folder
    return len(lines)


def _running(folder: Path, min_lines: int) -> dict[str, Any] | None:
    """The worker of a running segment once it wrote ``min_lines`` lines."""
    try:
        worker = _json(folder / "run.json").get("worker")
        lines = (folder / "detections.jsonl").read_text().count("\n")
    except (OSError, ValueError):
        return None
    return worker if worker and lines >= min_lines else None


def _kill_first_worker(
    tmp_path: Path, name: str, cams: list[MjpegServer], *args: str
) -> tuple[_Run, Path, dict[str, Any]]:
    """A run of two cameras (on node_a and node_b) whose first worker is SIGKILLed once it
    wrote :data:`KILL_AFTER` lines: the run, the first source's folder, the killed worker."""
    pins = f"{cams[0].url}=node_a,{cams[1].url}=node_b"
    run = _Run(tmp_path, name, *_sources(cams[0], cams[1]), *args, "--ray-placement", pins)
    run.start()
    victim = run.folder / "127.0.0.1"
    worker = _wait(lambda: _running(victim / "part-001", KILL_AFTER))
    os.kill(worker["pid"], signal.SIGKILL)
    return run, victim, worker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        body: bytes = r.read()
        return body


def test_sources_spread_over_the_nodes_with_one_page(
    ray_cluster: Any, cams: list[MjpegServer], tmp_path: Path
) -> None:
    pins = {cams[0].url: "node_a", cams[1].url: "node_b", cams[2].url: "node_head"}
    port = _free_port()
    run = _Run(
        tmp_path,
        "spread",
        *_sources(*cams),
        "--max-frames",
        "45",
        "--ray-cpus-per-source",
        "0.5",
        "--ray-placement",
        ",".join(f"{url}={res}" for url, res in pins.items()),
        "--serve",
        f"127.0.0.1:{port}",
        "--track",  # a worker runs the local pipeline whole: tracker, zones and events too
        "--zone",
        "all:0,0 1,0 1,1 0,1",
    )
    run.start()

    def all_reporting() -> Any:
        try:
            status = json.loads(_get(f"http://127.0.0.1:{port}/api/status"))
        except OSError:
            return None
        feeds = status["sources"]
        return feeds if all((f.get("frame") or -1) >= 0 for f in feeds) else None

    feeds = _wait(all_reporting)
    assert sorted(f["uri"] for f in feeds) == sorted(pins)
    assert all(f["worker"]["pid"] for f in feeds)
    assert _get(f"http://127.0.0.1:{port}/snapshot/0.jpg")[:2] == b"\xff\xd8"
    assert b"detector_frames" in _get(f"http://127.0.0.1:{port}/metrics")
    # the workers' frame timings reach the driver's histograms, source by source
    counts = _wait(lambda: (c := _latency_counts(port)) and all(c.values()) and len(c) == 3 and c)
    assert set(counts) == {f["key"] for f in feeds}, counts
    assert run.finish() == 0

    top = _json(run.folder / "run.json")
    assert top["status"] == "ok" and top["engine"] == "ray"
    assert [e["status"] for e in top["sources"]] == ["ok"] * 3
    nodes = set()
    for entry in top["sources"]:
        record = _json(run.folder / entry["run_dir"] / "run.json")
        (segment,) = record["segments"]
        assert pins[record["source"]["uri"]] in segment["worker"]["node_resources"]
        nodes.add(segment["worker"]["node_id"])
        folder = run.folder / entry["run_dir"] / segment["run_dir"]
        assert _segment(folder) == 45
        own = _json(folder / "run.json")
        assert own["track"]["tracker"] == "bytetrack" and own["track"]["frames"] == 45
        assert "all" in own["stats"]["counts"]["zones"]
        if own["model"]["backend"] == "openvino":  # auto's choice here: no TensorFlow loaded
            assert "tensorflow" not in own["versions"]
        assert record["stats"]["frames_processed"] == 45 == entry["frames"]
    assert len(nodes) == 3


def test_a_killed_worker_comes_back_and_its_frames_resume(
    ray_cluster: Any, cams: list[MjpegServer], tmp_path: Path
) -> None:
    run, victim, worker = _kill_first_worker(tmp_path, "kill", cams, "--max-frames", "100")
    assert run.finish() == 0

    record = _json(victim / "run.json")
    assert record["status"] == "ok"
    (restart,) = record["restarts"]
    assert restart["pid"] == worker["pid"]
    assert "went away" in restart["reason"] or "died" in restart["reason"], restart["reason"]
    assert restart["moved"] is False  # pinned to node_a: back on the same node
    lost, resumed = record["segments"]
    assert lost["status"] == "lost" and resumed["status"] == "ok"
    assert resumed["worker"]["pid"] != worker["pid"]
    assert "node_a" in resumed["worker"]["node_resources"]
    assert _json(victim / "part-001" / "run.json")["status"] == "error"
    first, second = _segment(victim / "part-001"), _segment(victim / "part-002")
    assert first >= KILL_AFTER and second > 0 and first + second == 100
    other = _json(run.folder / "127.0.0.12" / "run.json")
    assert len(other["segments"]) == 1 and other["restarts"] == []
    top = _json(run.folder / "run.json")
    assert [w["restarts"] for w in top["ray"]["live"]] == [1, 0]


def test_outputs_sent_to_the_driver_keep_what_came_before_a_kill(
    ray_cluster: Any, cams: list[MjpegServer], tmp_path: Path
) -> None:
    """``--ray-outputs driver``: workers write on their node, the driver gets the bytes."""
    run, victim, worker = _kill_first_worker(
        tmp_path, "driver", cams, "--max-frames", "100", "--ray-outputs", "driver"
    )
    assert run.finish() == 0

    record = _json(victim / "run.json")
    assert record["status"] == "ok"
    lost, resumed = record["segments"]
    assert lost["status"] == "lost" and resumed["status"] == "ok"
    first, second = _segment(victim / "part-001"), _segment(victim / "part-002")
    assert first >= KILL_AFTER and first + second == 100  # what came, then the rest
    own = _json(victim / "part-002" / "run.json")  # the worker's record, sent whole
    assert own["status"] == "ok" and own["run_dir"] == str(victim / "part-002")
    scratch = Path(own["worker"]["scratch"])
    assert scratch.name == "part-002" and not scratch.is_relative_to(tmp_path)
    assert not scratch.exists()  # all of it came: removed from the node
    # the killed worker's scratch folder stays on its node, holding at least what came
    kept = Path(worker["scratch"])
    try:
        assert kept.name == "part-001" and _segment(kept) >= first
    finally:
        shutil.rmtree(kept.parent.parent, ignore_errors=True)
    other = _json(run.folder / "127.0.0.12" / "part-001" / "run.json")
    assert other["status"] == "ok" and _segment(run.folder / "127.0.0.12" / "part-001") == 100


def test_a_lost_node_moves_its_source(
    ray_cluster: Any, cams: list[MjpegServer], tmp_path: Path
) -> None:
    pin = f"{cams[2].url}=edge"
    run = _Run(tmp_path, "node", *_sources(cams[2]), "--max-frames", "110", "--ray-placement", pin)
    run.start()
    source = run.folder / "127.0.0.1"
    worker = _wait(lambda: _running(source / "part-001", KILL_AFTER))
    (node,) = [n for n in ray_cluster.worker_nodes if n.node_id == worker["node_id"]]
    ray_cluster.remove_node(node)
    try:
        assert run.finish(timeout_s=180) == 0
    finally:  # the session's cluster gets its node back
        resources = {"edge": 1.0, **{r: 1.0 for r in worker["node_resources"] if r != "edge"}}
        ray_cluster.add_node(num_cpus=1, resources=resources)
        ray_cluster.wait_for_nodes()
    record = _json(source / "run.json")
    lost, moved = record["segments"]
    assert lost["status"] == "lost" and moved["status"] == "ok"
    assert moved["worker"]["node_id"] != worker["node_id"]
    assert "edge" in moved["worker"]["node_resources"]
    (restart,) = record["restarts"]
    assert restart["node_id"] == worker["node_id"] and restart["moved"] is True
    assert _segment(source / "part-001") + _segment(source / "part-002") == 110


def test_sigterm_stops_every_worker_and_finalizes_every_output(
    ray_cluster: Any, cams: list[MjpegServer], tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    cli = RunningCli(
        "run",
        "--engine",
        "ray",
        "--ray-address",
        ray_cluster.address,
        *_sources(cams[0], cams[1]),
        "--output",
        str(out),
        "--name",
        "term",
        env=cli_env(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0"),
    )
    folders = [out / "term" / "127.0.0.1", out / "term" / "127.0.0.12"]
    _wait(lambda: all(_running(f / "part-001", 5) for f in folders), timeout_s=120)
    cli.signal(signal.SIGTERM)
    result = cli.finish(timeout_s=120)
    assert result.code == 130, result.text
    assert _json(out / "term" / "run.json")["status"] == "interrupted"
    for folder in folders:
        record = _json(folder / "run.json")
        assert record["status"] == "interrupted"
        assert _json(folder / "part-001" / "run.json")["status"] == "interrupted", result.err[
            -3000:
        ]
        assert _segment(folder / "part-001") == record["stats"]["frames_processed"]


def test_a_local_run_leaves_no_ray_process(cams: list[MjpegServer], tmp_path: Path) -> None:
    result = run_cli(
        "run",
        "--engine",
        "ray",
        *_sources(cams[0]),
        "--max-frames",
        "10",
        "--output",
        str(tmp_path),
        "--name",
        "local",
        timeout_s=240,
    )
    result.assert_ok()
    top = _json(tmp_path / "local" / "run.json")
    assert top["ray"]["started_local"] is True
    port = top["ray"]["gcs_address"].rsplit(":", 1)[1]
    left = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f":{port}" in cmdline or f"={port}" in cmdline:
            left.append(cmdline)
    assert left == []


def test_the_python_api_runs_a_camera_beside_a_video_file(
    ray_cluster: Any, cams: list[MjpegServer], tmp_path: Path
) -> None:
    import detector

    clip = make_video(tmp_path / "clip.avi", n=20, size=SIZE)
    stats = detector.run(
        engine="ray",
        source=[cams[1].url, str(clip)],
        max_frames=20,
        output=str(tmp_path / "runs"),
        name="mixed",
        ray_cpus_per_source=0.5,
    )
    assert stats.frames_processed == 40
    top = _json(tmp_path / "runs" / "mixed" / "run.json")
    assert [(e["status"], e["frames"]) for e in top["sources"]] == [("ok", 20), ("ok", 20)]
    camera, video = (tmp_path / "runs" / "mixed" / e["run_dir"] for e in top["sources"])
    assert _segment(camera / "part-001") == 20
    assert len((video / "detections.jsonl").read_text().splitlines()) == 20
    assert _json(video / "run.json")["engine"] == "ray"


def test_a_source_past_its_restarts_fails_while_the_other_goes_on(
    ray_cluster: Any, cams: list[MjpegServer], tmp_path: Path
) -> None:
    args = ("--max-frames", "80", "--ray-max-restarts", "0")
    run, victim, _ = _kill_first_worker(tmp_path, "spent", cams, *args)
    assert run.finish() == 1
    top = _json(run.folder / "run.json")
    assert top["status"] == "failed" and top["failed"] == [cams[0].url]
    failed, other = top["sources"]
    assert failed["status"] == "failed" and "ray_max_restarts 0" in failed["error"]
    assert other["status"] == "ok" and other["frames"] == 80
    record = _json(victim / "run.json")
    assert record["status"] == "error" and len(record["restarts"]) == 1
    assert [s["status"] for s in record["segments"]] == ["lost"]
    assert not (victim / "part-002").exists()
    assert _segment(victim / "part-001") >= KILL_AFTER


def _latency_counts(port: int) -> dict[str, float]:
    """Frames per source (by its key) in the driver's end-to-end latency histogram."""
    counts = {}
    for line in _get(f"http://127.0.0.1:{port}/metrics").decode().splitlines():
        if line.startswith("detector_end_to_end_latency_seconds_count{"):
            key = line.split('id="', 1)[1].split('"', 1)[0]
            counts[key] = float(line.rsplit(" ", 1)[1])
    return counts
