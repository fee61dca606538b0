"""Fault rows for live sources, produced for real: a local MJPEG camera on 127.0.0.1 that the
test stops, restarts and stalls while ``main.py`` reads it in a subprocess; a port nothing
listens on; a camera index with no device; credentials in the URL; a model slower than the
stream.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from helpers.cli_run import RunningCli, RunOutputs, only_run_folder, run_cli
from helpers.mjpeg_server import MjpegServer
from helpers.slow_model import build_slow_frozen
from helpers.tiny_models import tiny_video

FAST_RECONNECT = """\
source:
  reconnect: {attempts}
  reconnect_delay_s: 0.1
  reconnect_max_delay_s: 0.5
  stall_timeout_s: {stall}
"""


def _config(tmp_path: Path, attempts: str = "forever", stall: float = 2.0) -> Path:
    path = tmp_path / "live.yml"
    path.write_text(FAST_RECONNECT.format(attempts=attempts, stall=stall))
    return path


def _frames_seen(run: RunningCli, runs: Path) -> int:
    """JSON lines written so far by the run (0 before its folder exists)."""
    folders = [p for p in runs.iterdir() if p.is_dir()] if runs.exists() else []
    if not folders or not (folders[0] / "detections.jsonl").exists():
        return 0
    return (folders[0] / "detections.jsonl").read_bytes().count(b"\n")


def _quiet_for(run: RunningCli, runs: Path, seconds: float) -> bool:
    """True once no new JSON line came for ``seconds`` (the stream hangs)."""
    before = _frames_seen(run, runs)
    time.sleep(seconds)
    return _frames_seen(run, runs) == before


def test_closed_port_fails_at_once_with_the_reason(tmp_path: Path, tiny: list[str]) -> None:
    with MjpegServer() as cam:
        url = cam.url
    result = run_cli("--source", url, *tiny)  # the camera is gone: nothing listens there
    result.assert_failed(1, f"'{url}'", "connection refused")


def test_unavailable_camera_index(tiny: list[str]) -> None:
    result = run_cli("--source", "63", *tiny)
    result.assert_failed(1, "'63'", "camera index not available", "/dev/video")


def test_stream_dropped_and_restarted_goes_on_to_its_end(
    tmp_path: Path, tiny: list[str], runs: Path
) -> None:
    with MjpegServer(fps=25) as cam:
        run = RunningCli("--source", cam.url, *tiny, "--config", _config(tmp_path),
                         "--max-frames", "150")  # fmt: skip
        run.wait_for(lambda: _frames_seen(run, runs) >= 20, what="20 frames")
        cam.stop()  # the camera goes away...
        threading.Timer(1.0, cam.start).start()  # ...and is back a second later
        result = run.finish()
        assert cam.connections >= 2
    result.assert_ok()
    out = RunOutputs.read(only_run_folder(runs))
    health = out.run["source_health"]
    assert health["reconnects"] >= 1 and health["outages"] >= 1 and health["offline_s"] > 0
    assert out.run["status"] == "ok"
    assert len(out.lines) == out.run["stats"]["frames_processed"] == 150
    assert out.video_frames == 150  # one video across the gap
    assert "reconnect(s)" in result.out
    assert "lost" in result.err and "connected (back after" in result.err


def test_stalled_stream_is_restarted_by_the_watchdog(
    tmp_path: Path, tiny: list[str], runs: Path
) -> None:
    with MjpegServer(fps=25) as cam:
        run = RunningCli("--source", cam.url, *tiny, "--config", _config(tmp_path, stall=1.0),
                         "--max-frames", "120")  # fmt: skip
        run.wait_for(lambda: _frames_seen(run, runs) >= 20, what="20 frames")
        cam.stall()
        run.wait_for(lambda: ": stalled (" in run.stderr_so_far(), timeout_s=30, what="the stall")
        cam.resume()
        result = run.finish()
    result.assert_ok()
    out = RunOutputs.read(only_run_folder(runs))
    assert out.run["source_health"]["stalls"] >= 1
    assert out.run["source_health"]["reconnects"] >= 1
    assert len(out.lines) == 120 and out.video_frames == 120
    assert "stalled (no frame for 1 s: restarting the capture)" in result.err


def test_stream_that_never_comes_back_gives_up_with_exit_1(
    tmp_path: Path, tiny: list[str], runs: Path
) -> None:
    with MjpegServer(fps=25) as cam:
        run = RunningCli("--source", cam.url, *tiny, "--config", _config(tmp_path, attempts="3"))
        run.wait_for(lambda: _frames_seen(run, runs) >= 10, what="10 frames")
        cam.stop()
        result = run.finish()
    result.assert_failed(1, "gave up after 3 reconnect attempt(s)", cam.url)
    assert "run error" in result.out and "gave up" in result.out  # never "ok"
    out = RunOutputs.read(only_run_folder(runs))
    assert out.run["status"] == "error" and "gave up" in out.run["error"]
    assert out.run["source_health"]["state"] == "gave up"
    assert len(out.lines) == out.run["stats"]["frames_processed"] >= 10
    assert out.video_frames == len(out.lines)


def test_credentials_never_reach_files_logs_or_names(
    tmp_path: Path, tiny: list[str], runs: Path
) -> None:
    secret = "pa55-w0rd-xyz"
    with MjpegServer(fps=25, user="viewer", password=secret) as cam:
        result = run_cli("--source", cam.url_with_credentials, *tiny, "--max-frames", "10", "-v")
    result.assert_ok()
    assert secret not in result.text
    folder = only_run_folder(runs)
    assert secret not in folder.name
    for path in folder.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    run = RunOutputs.read(folder).run
    assert any("viewer:***@" in a for a in run["argv"])
    assert "viewer:***@" in run["config"]["source"]["uri"]


def test_credentials_masked_in_errors(tiny: list[str]) -> None:
    with MjpegServer() as cam:
        url = f"http://viewer:hunter2-secret@127.0.0.1:{cam.port}/stream.mjpg"
    result = run_cli("--source", url, *tiny)
    result.assert_failed(1, "viewer:***@127.0.0.1")
    assert "hunter2-secret" not in result.text


def test_ctrl_c_while_the_stream_hangs(tmp_path: Path, tiny: list[str], runs: Path) -> None:
    with MjpegServer(fps=25) as cam:
        # A watchdog far away: only Ctrl-C can end this run while the camera hangs.
        run = RunningCli("--source", cam.url, *tiny, "--config", _config(tmp_path, stall=60.0))
        run.wait_for(lambda: _frames_seen(run, runs) >= 10, what="10 frames")
        cam.stall()
        run.wait_for(lambda: _quiet_for(run, runs, 0.5), what="the hang")
        seen = _frames_seen(run, runs)
        run.signal(signal.SIGINT)
        result = run.finish(timeout_s=120)  # bounded: the hung read does not hold shutdown
        cam.resume()
    assert result.code == 130, result.text
    assert "Traceback" not in result.text
    out = RunOutputs.read(only_run_folder(runs))
    assert out.run["status"] == "interrupted"
    assert len(out.lines) >= seen and out.video_frames == len(out.lines)


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_slow_frozen(tmp_path_factory.mktemp("slow") / "slow.pb")


def test_slow_model_on_a_live_stream_drops_and_counts(
    tmp_path: Path, slow_model: Path, tiny_labels: Path, runs: Path
) -> None:
    with MjpegServer(fps=25) as cam:
        result = run_cli("--source", cam.url, "--model", slow_model, "--labels", tiny_labels,
                         "--output", runs, "--max-frames", "12")  # fmt: skip
    result.assert_ok()
    out = RunOutputs.read(only_run_folder(runs))
    stats = out.run["stats"]
    assert stats["frames_dropped"] > 0  # the model cannot keep up: frames dropped, counted
    assert stats["frames_read"] > stats["frames_processed"] == 12 == len(out.lines)
    # Latency stays bounded by the model, not by a growing queue: under a few model runs.
    assert stats["latency_ms_p50"] < 4 * stats["inference_ms_p50"] + 200
    indices = [line["frame"] for line in out.lines]
    assert indices == sorted(indices) and indices[-1] > 12  # newest frames, in order


def test_slow_model_on_a_file_drops_nothing(
    tmp_path: Path, slow_model: Path, tiny_labels: Path, runs: Path
) -> None:
    video = tiny_video(tmp_path / "clip.avi", frames=10, fps=25)
    result = run_cli("--source", video, "--model", slow_model, "--labels", tiny_labels,
                     "--output", runs)  # fmt: skip
    result.assert_ok()
    out = RunOutputs.read(only_run_folder(runs))
    assert out.run["stats"]["frames_dropped"] == 0
    assert [line["frame"] for line in out.lines] == list(range(10))
    assert out.video_frames == 10


def test_live_recording_lasts_as_long_as_the_stream(
    slow_model: Path, tiny_labels: Path, runs: Path
) -> None:
    with MjpegServer(fps=20) as cam:  # the model keeps up with a fraction: most frames drop
        result = run_cli("--source", cam.url, "--model", slow_model, "--labels", tiny_labels,
                         "--output", runs, "--max-frames", "25")  # fmt: skip
    result.assert_ok()
    out = RunOutputs.read(only_run_folder(runs))
    assert out.run["stats"]["frames_dropped"] > 0
    span_s = out.lines[-1]["timestamp_s"] - out.lines[0]["timestamp_s"]
    assert out.video_duration_s is not None
    # The video's clock is the capture clock: as long as the stream it recorded.
    assert abs(out.video_duration_s - span_s) <= 0.2 * span_s + 0.3
