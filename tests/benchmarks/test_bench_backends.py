"""The bench's backend column: every row measured in its own process, parity, start-up, goals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.benchmarks.backends import backend_rows
from detector.benchmarks.backends_report import format_backends, goals


def _row(pipe: float, flight: float, passed: bool = True) -> dict:
    return {
        "pipeline": {"fps": pipe},
        "in_flight_2": {"fps": flight},
        "bare_1_thread": {"latency_ms_p50": 10.0},
        "parity": {"matched": 20, "reference": 21, "candidate": 20, "passed": passed},
    }


def test_goals_take_the_fastest_backend_that_passes_parity() -> None:
    section = {
        "rows": {
            "tf": {"pipeline": {"fps": 50.0}, "in_flight_2": {"fps": 100.0}},
            "openvino bf16": _row(70.0, 150.0),
            "openvino int8": _row(90.0, 200.0, passed=False),  # fastest, but fails parity
        },
        "peer_litert": {"in_flight_2": {"fps": 120.0}},
    }
    got = {g["what"].split(" (")[0]: g for g in goals(section)}
    pipe = got["pipeline openvino bf16 ÷ pipeline tf"]
    assert pipe["value"] == pytest.approx(1.4) and pipe["met"] is True
    peer = got["bare 2 in flight openvino bf16 ÷ LiteRT peer"]
    assert peer["value"] == pytest.approx(1.25) and peer["met"] is True
    text = format_backends(section | {"goals": goals(section), "frames": 300, "repeats": 3})
    assert "openvino int8" in text and "20/21 FAIL" in text and "litert (peer)" in text
    assert "-> met" in text


@pytest.mark.tf
def test_backend_rows_on_a_tiny_graph(tmp_path: Path) -> None:
    from helpers.media import image_folder, make_video, noise_frames
    from helpers.tiny_ssd import build_tiny_ssd

    model = build_tiny_ssd(tmp_path / "tiny.pb")
    video = make_video(tmp_path / "clip.avi", n=10, size=(96, 64))
    photos = image_folder(tmp_path / "photos", noise_frames(3, (96, 64)))
    section = backend_rows(
        model,
        None,
        video,
        photos,
        None,
        frames=8,
        warmup=2,
        repeats=1,
        cache_dir=tmp_path / "cache",
        calibration_frames=8,
        threshold=0.1,
        only=("tf", "openvino fp32", "openvino int8"),  # bf16 runs the same code as fp32
        rss_frames=30,
        streams_seconds=0,
        ray_rounds=0,
    )
    rows = section["rows"]
    assert "openvino bf16" not in rows
    for name in ("tf", "openvino fp32"):
        row = rows[name]
        assert "error" not in row, row
        for key in ("bare_1_thread", "bare_2_threads", "in_flight_2", "pipeline"):
            assert row[key]["fps"] > 0, (name, key)
        assert "passed" in row["parity"]
        pipe = row["pipeline"]
        assert len(pipe["fps_repeats"]) >= 3  # 3 rounds, tf between every two other rows
        stages = pipe["cpu_ms_by_stage"]
        assert stages["decode"] > 0 and stages["detect_calls"] > 0 and stages["render"] > 0
        # threads are read from /proc in clock ticks: a tiny clip's encoder may show 0
        assert set(stages) >= {"runtime_threads", "encoder_threads", "other"}
    assert rows["openvino fp32"]["parity"]["passed"], rows["openvino fp32"]["parity"]
    paired = rows["openvino fp32"]["pipeline"]
    assert len(paired["x_tf_rounds"]) == 3 and paired["x_tf"] > 0  # a ratio per round
    # int8: made and gated on first use; used only when it passed
    assert ("openvino int8" in rows) == bool(section["int8"].get("parity", {}).get("passed"))
    start = section["startup"]
    assert start["openvino_cold"]["converted"] is True
    assert start["openvino_warm"]["converted"] is False  # the second start hit the cache
    assert all(v["process_s"] > 0 for v in start.values())
    assert "error" in section["peer_litert"]  # no .tflite given
    assert section["rows"]["tf"]["rss"]["rss"]["rss_mb_last"] > 0
    assert section["rows"]["tf"]["rss"]["tensorflow_loaded"] is True
    post = section["post"]
    assert post["frames"] > 0 and post["numpy"]["ms_p50"] > 0, post
    text = format_backends(section)
    assert "openvino fp32" in text and "start-up" in text
    assert "by where it is spent" in text and "x264 threads" in text
    assert "post-processing ms a frame" in text and "side by side" in text


@pytest.mark.tf
def test_a_streams_trial_runs_several_paced_sources_on_one_model(tmp_path: Path) -> None:
    from helpers.tiny_ssd import build_tiny_ssd

    from detector.benchmarks.parts import engine, labels_for
    from detector.benchmarks.streams import trial
    from detector.model.backends import load_backend_model

    model = build_tiny_ssd(tmp_path / "tiny.pb")
    frames = [np.full((48, 64, 3), i * 20, np.uint8) for i in range(6)]
    with load_backend_model("tf", model, device="cpu") as loaded:
        got = trial(frames, engine(loaded, 0.5), labels_for(None), 3, 2.0, tmp_path / "o")
    assert got["sources"] == 3
    assert 0.0 < got["kept_min"] <= 1.0 and got["latency_ms_p95_max"] > 0
    assert got["held"] == (got["kept_min"] >= 0.95 and got["latency_ms_p95_max"] <= 200.0)


def test_thread_cpu_tells_the_runtime_threads_from_the_ones_started_during_the_run() -> None:
    import threading
    import time

    from detector.benchmarks.throughput import InsideCalls, ThreadCpu

    def burn(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    go, done = threading.Event(), threading.Event()
    burned = [threading.Event(), threading.Event()]

    def worker(first_wait: threading.Event | None, mine: threading.Event) -> None:
        if first_wait is not None:
            first_wait.wait()
        burn(0.3)
        mine.set()
        done.wait()  # alive at the split, as a runtime's pool and x264's threads are

    pool = threading.Thread(target=worker, args=(go, burned[0]))  # a runtime's pool
    pool.start()
    cpu, calls = ThreadCpu(), InsideCalls()
    go.set()
    late = threading.Thread(target=worker, args=(None, burned[1]))  # an encoder's thread
    late.start()
    calls.wrap(burn)(0.2)  # inside a wrapped call on this thread
    assert all(b.wait(30) for b in burned)
    parts = cpu.split(0.0, calls.cpu_s)
    done.set()
    pool.join()
    late.join()
    assert parts is not None
    assert parts["detect_calls"] == pytest.approx(0.2, abs=0.02)
    assert parts["runtime_threads"] == pytest.approx(0.3, abs=0.05)
    assert parts["encoder_threads"] == pytest.approx(0.3, abs=0.05)
    assert parts["render"] >= 0.19  # the calling thread, wrapped calls included


def test_a_worker_session_reports_a_failed_measurement_and_ends(tmp_path: Path) -> None:
    from detector.benchmarks.backend_pipeline import pipeline_rounds
    from detector.benchmarks.worker import WorkerSession

    missing = tmp_path / "no-such-model.pb"
    with WorkerSession(
        pipeline_rounds,
        backend="openvino",
        precision="fp32",
        model=missing,
        video=tmp_path / "clip.avi",
        cache_dir=tmp_path / "cache",
    ) as session:
        got = session.next(300.0)
        assert "error" in got and "no-such-model.pb" in got["error"], got
        assert "error" in session.next(60.0)  # asked again: still an error, no hang
    assert session._proc.poll() is not None  # the worker process has ended
