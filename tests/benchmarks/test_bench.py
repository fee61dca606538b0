"""The bench command runs end to end and reports every column; no test asserts a time."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.media import noise_frames, write_video

from detector.paths import PROJECT_ROOT as ROOT

REAL_MODEL = ROOT / "models" / "ssd_mobilenet_v2_coco" / "frozen_inference_graph.pb"
SAMPLE = ROOT / "samples" / "vtest.avi"


def _video(path: Path, frames: int = 16, size: tuple[int, int] = (160, 120)) -> Path:
    base = noise_frames(1, size)[0]

    def frame(i: int) -> np.ndarray:
        img = np.roll(base, 4 * i, axis=1)
        cv2.rectangle(img, (10 + i, 20), (60 + i, 90), (255, 255, 255), -1)
        return img

    return write_video(path, (frame(i) for i in range(frames)), 10.0)


def test_report_marks_targets_met_and_missed() -> None:
    from detector.benchmarks.report import format_table, summarize

    def run(fps: float, cpu: float = 10.0) -> dict:
        return {"fps": fps, "cpu_ms_per_frame": cpu, "latency_ms_p50": 1000 / fps}

    results = {
        "machine": {"usable_cores": 2, "versions": {}},
        "videos": {
            "576p": {
                "bare": run(50, 20),
                "naive": run(40),
                "no_model": run(200, 5),
                "pipeline": run(49),
                "pipeline_every_2": run(90),
                "pipeline_every_4": run(150),
                "pipeline_h264": run(47),
                "pipeline_mp4v": run(50),
            },
            "1080p": {
                "bare": run(40, 20),
                "naive": run(20),
                "no_model": run(60, 20),
                "pipeline": run(30),
            },
        },
        "model_latency": {
            "ours_1": {"latency_ms_p50": 19.0},
            "tflite_1": {"latency_ms_p50": 20.0},
            "ours_2": {"latency_ms_p50": 15.0},
            "tflite_2": {"latency_ms_p50": 12.0},
        },
        "video_io": {
            "576p": {
                "write": {
                    "h264": {"cpu_ms_per_frame": 2.6, "wall_ms_per_frame": 3.0},
                    "mp4v": {"cpu_ms_per_frame": 2.0, "wall_ms_per_frame": 2.5},
                },
                "decode": {"opencv": {"cpu_ms_per_frame": 0.7, "wall_ms_per_frame": 1.0}},
            },
        },
        "live": {
            "latency_ms_p50": 25.0,
            "latency_ms_p95": 45.0,
            "dropped": 0,
            "fps_paced": 30,
            "latency_ms_max": 50.0,
            "frames_out": 10,
            "frames_read": 10,
        },
        "memory": {
            "growth_pct": 1.0,
            "rss_mb_first": 100.0,
            "rss_mb_last": 101.0,
            "frames_first": 10,
            "frames_last": 100,
        },
    }
    summarize(results)
    status = {t["target"]: t["status"] for t in results["targets"]}
    assert status["pipeline/bare 576p"] == "met"  # 49/50 = 0.98
    assert status["pipeline/bare 1080p"] == "missed by 0.15"  # 30/40 = 0.75 vs 0.9
    assert status["pipeline/naive 1080p"] == "missed by 0.10"  # 1.5 vs 1.6
    assert status["model/tflite 1 thread"] == "met"
    assert status["model/tflite 2 threads"] == "missed by 0.25"  # 15/12 = 1.25
    assert status["detect_every 4 gain"] == "missed by 0.54"  # 150/49 = 3.06
    assert status["live p95 ms"] == "missed by 5.00"
    assert status["live dropped"] == "met"
    assert status["memory growth %"] == "met"
    assert status["h264/mp4v writer CPU 576p"] == "met"  # 2.6 / 2.0 = 1.3
    assert status["pipeline h264/mp4v 576p"] == "missed by 0.01"  # 47 / 50 = 0.94
    # budget: 2 cores / (20 + 5) ms = 80 frames/s; 49 / 80 = 0.61
    assert math.isclose(results["ratios"]["576p"]["cpu_budget_fps"], 80.0)
    table = format_table(results)
    assert "pipeline ÷ bare" in table and "missed by 0.15" in table
    assert "write h264" in table and "2.6 (3.0)" in table and "pipeline H.264 ÷ mp4v" in table


@pytest.mark.tf
def test_bench_quick_on_tiny_graph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from helpers.tiny_ssd import build_tiny_ssd

    from detector.cli import main

    model = build_tiny_ssd(tmp_path / "tiny.pb")
    video = _video(tmp_path / "clip.avi")
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--quick",
            "--model",
            str(model),
            "--video",
            str(video),
            "--sizes",
            "144",
            "--frames",
            "12",
            "--memory-frames",
            "10,40",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--json",
            str(out),
            "--tflite",
            str(tmp_path / "absent.tflite"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    for row in (
        "bare model  frames/s",
        "naive loop  frames/s",
        "pipeline (video+jsonl)",
        "detect_every 4 gain",
        "pipeline ÷ naive",
        "live, paced",
        "web view, paced 30 fps",
        "web view, flat out",
        "memory (app process): RSS",
        "split model",
        "video i/o, CPU-ms per frame",
        "pipeline writing H.264",
        "tracking, ",
        "static (no tracker)",
        "id switches per 100 frames",
        "targets",
    ):
        assert row in printed, row
    data = json.loads(out.read_text())
    # the model loads as `run` loads it: model.backend (auto in the default config) decides
    used = data["settings"]["backend_used"]
    assert data["settings"]["backend"] == "auto" and used in ("tf", "openvino")
    assert f"backend auto -> {used}" in printed
    assert set(data["videos"]) == {"120p", "144p"}
    small = data["videos"]["120p"]
    for key in (
        "bare",
        "naive",
        "no_model",
        "pipeline",
        "pipeline_w1",
        "pipeline_w2",
        "pipeline_w2_session_each",
        "pipeline_every_2",
        "pipeline_every_4",
        "pipeline_h264",
        "pipeline_mp4v",
    ):
        assert small[key]["fps"] > 0, key
        assert small[key]["frames"] >= 1
    assert small["pipeline"]["in_order"] is True
    # detect_every 4 ran the model on a quarter of the frames (0, 4, 8)
    assert small["pipeline_every_4"]["fresh_frames"] == 3
    assert data["live"]["frames_out"] >= 1
    web = data["web"]
    for pace in ("paced", "flat_out"):
        watched, alone = web[pace]["viewers"], web[pace]["none"]
        assert alone["jpeg_encodes"] == 0  # nobody watching: nothing encoded
        # four viewers read, yet each frame was encoded at most once
        assert 1 <= watched["jpeg_encodes"] <= watched["frames_out"]
        assert watched["mb_sent"] > 0
    assert web["fps_ratio"] > 0 and web["cpu_ms_per_frame_delta"] == web["cpu_ms_per_frame_delta"]
    assert data["memory"]["rss_mb_last"] > 0
    assert data["split"]["same_outputs"] is True
    vio = data["video_io"]
    assert set(vio) == {"120p", "144p"}
    for label in vio:
        assert set(vio[label]["write"]) == {"h264", "mp4v"}  # quick: no x264 variants
        assert set(vio[label]["decode"]) == {"opencv", "pyav"}
        assert all(w["cpu_ms_per_frame"] > 0 for w in vio[label]["write"].values())
    track = data["track"]
    assert track["frames"] == 16  # the whole clip, once through the model
    for kind in ("bytetrack", "sort"):
        assert set(track[kind]["coverage"]) == {"2", "4", "8"}
        assert track[kind]["cpu_ms_per_frame"]["1"] >= 0
    assert track["cost_synthetic"]["objects"] == 20
    assert data["machine"]["versions"]["tensorflow"] != "missing"
    targets = {t["target"]: t for t in data["targets"]}
    assert targets["model/tflite 1 thread"]["status"] == "not measured"  # no .tflite given
    assert all(
        t["status"] == "met" or t["status"].startswith(("missed by", "not measured"))
        for t in data["targets"]
    )
    made = list((tmp_path / "cache").glob("*.mp4"))
    assert len(made) == 1 and cv2.VideoCapture(str(made[0])).get(cv2.CAP_PROP_FRAME_HEIGHT) == 144


def test_bench_rejects_bad_flags(tmp_path: Path) -> None:
    from detector.cli import main

    assert main(["bench", "--model", str(tmp_path / "none.pb")]) == 2
    video = _video(tmp_path / "clip.avi", frames=2)
    model = tmp_path / "m.pb"
    model.write_bytes(b"")
    assert main(["bench", "--model", str(model), "--video", str(video), "--only", "modle"]) == 2
    assert (
        main(["bench", "--model", str(model), "--video", str(video), "--memory-frames", "50,10"])
        == 2
    )


@pytest.mark.e2e
def test_bench_quick_real_model_model_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from detector.cli import main

    if not REAL_MODEL.exists() or not SAMPLE.exists():
        pytest.skip("default model or sample video not fetched: run `python main.py fetch`")
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--quick",
            "--only",
            "model,tflite,split,track",
            "--frames",
            "16",
            "--sizes",
            "720",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    lat = data["model_latency"]
    assert lat["ours_1"]["latency_ms_p50"] > 0 and lat["ours_2"]["latency_ms_p50"] > 0
    tflite = REAL_MODEL.parent / "source" / "mobilenet_ssd_v2_coco_quant_postprocess.tflite"
    if tflite.exists():
        assert lat["tflite_1"]["latency_ms_p50"] > 0
    assert data["split"]["same_outputs"] is True
    track = data["track"]
    assert track["frames"] == 200  # --quick: the first 200 frames of the sample
    static, tracked = track["static"], track["bytetrack"]["coverage"]
    # the tracker's boxes follow the walkers: more of the every-frame boxes covered
    assert tracked["4"] > static["4"], (tracked, static)
    assert 0 <= track["bytetrack"]["id_switches_per_100"] < 50
    assert "model latency" in capsys.readouterr().out
