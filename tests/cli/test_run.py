"""The run command end to end on a tiny TF graph and media made in the test (no fakes)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.cli_run import RunningCli, cli_env, tiny_model_flags
from helpers.tiny_models import (
    build_frozen,
    build_unsafe_frozen,
    read_video,
    tiny_model_files,
    tiny_video,
)
from helpers.xvfb import Xvfb

from detector.cli import main

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("assets")
    return {**tiny_model_files(d), "video": tiny_video(d / "clip.avi", frames=12, fps=7.0)}


def run_flags(
    assets: dict[str, Path], out: Path, *extra: str, source: Path | None = None
) -> list[str]:
    source_flags = ["--source", str(source or assets["video"])]
    return [*source_flags, *tiny_model_flags(assets["model"], assets["labels"], out), *extra]


def video_frames(path: Path) -> tuple[int, float, list[np.ndarray]]:
    (_, fps, _, _), frames = read_video(path)
    return len(frames), fps, frames


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_video_run_writes_video_jsonl_and_run_json(assets, tmp_path, capsys):
    assert main(run_flags(assets, tmp_path, "--name", "clip")) == 0
    run = tmp_path / "clip"
    n, fps, frames = video_frames(run / "annotated.mp4")
    record = json.loads((run / "run.json").read_text())
    stats = record["stats"]
    assert stats["frames_processed"] == 12 == n
    assert fps == pytest.approx(7.0)
    assert frames[0].shape == (48, 64, 3)
    lines = read_jsonl(run / "detections.jsonl")
    assert [r["frame"] for r in lines] == list(range(12))
    # The tiny model scores the mean red level: frame i is red 40 + 20 i.
    for r in lines:
        red = min(255, 40 + 20 * r["frame"]) / 255
        assert r["fresh"] is True
        top = r["detections"][0]
        assert top["label"] == "red" and top["class_id"] == 1
        assert top["score"] == pytest.approx(red, abs=0.02)  # codec noise
        assert top["box_xyxy"] == pytest.approx([12.8, 4.8, 38.4, 24.0], abs=0.1)
    assert record["status"] == "ok"
    assert record["model"]["format"] == "frozen_pb" and record["model"]["device"] == "cpu"
    assert record["source"]["fps"] == pytest.approx(7.0)
    assert record["config"]["detect"]["threshold"] == 0.1
    assert {"python", "tensorflow", "opencv", "numpy"} <= set(record["versions"])
    assert record["outputs"]["video"]["frames"] == 12
    assert record["outputs"]["jsonl"]["lines"] == 12
    assert stats["inferences"] == 12 and stats["inference_ms_mean"] > 0
    out = capsys.readouterr().out
    assert "12 processed" in out and str(run) in out and "FPS" in out


def test_annotated_video_shows_the_boxes(assets, tmp_path):
    assert (
        main(run_flags(assets, tmp_path, "--name", "a", "--no-hud", "--video-format", "avi")) == 0
    )
    _, _, frames = video_frames(tmp_path / "a" / "annotated.avi")
    plain = tiny_video(tmp_path / "plain.avi", frames=12, fps=7.0)
    _, _, originals = video_frames(plain)
    # Box 0 spans x 12.8..38.4, y 4.8..24: its edges differ from the flat frame.
    diff = np.abs(frames[5].astype(int) - originals[5].astype(int)).sum(axis=2)
    assert diff[14, 20:30].max() > 60  # inside the box's interior left edge row
    assert diff[3, 50] < 30  # inside the full-frame box, above every label: untouched


def test_detect_every_marks_fresh_and_carried(assets, tmp_path):
    assert (
        main(run_flags(assets, tmp_path, "--name", "d", "--detect-every", "3", "--workers", "1"))
        == 0
    )
    lines = read_jsonl(tmp_path / "d" / "detections.jsonl")
    assert [r["fresh"] for r in lines] == [i % 3 == 0 for i in range(12)]
    assert [r["detected_frame"] for r in lines] == [i - i % 3 for i in range(12)]
    carried = lines[4]
    assert carried["detections"] == lines[3]["detections"] and carried["inference_ms"] is None
    record = json.loads((tmp_path / "d" / "run.json").read_text())
    assert record["stats"]["inferences"] == 4


def test_max_frames_class_filter_and_runs_never_overwrite(assets, tmp_path):
    for _ in range(2):
        assert (
            main(
                run_flags(
                    assets,
                    tmp_path,
                    "--name",
                    "m",
                    "--max-frames",
                    "5",
                    "--classes",
                    "whole",
                    "--no-video",
                )
            )
            == 0
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m2"]
    lines = read_jsonl(tmp_path / "m2" / "detections.jsonl")
    assert len(lines) == 5
    assert {d["label"] for r in lines for d in r["detections"]} == {"whole"}
    assert not (tmp_path / "m2" / "annotated.mp4").exists()


def test_image_folder_with_a_corrupt_image_is_skipped_and_counted(assets, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, red in enumerate((100, 200)):
        img = np.zeros((30, 40, 3), np.uint8)
        img[..., 2] = red
        cv2.imwrite(str(photos / f"img{i + 1}.png"), img)
    (photos / "img10.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert main(run_flags(assets, tmp_path / "runs", "--images", "--no-video", source=photos)) == 0
    run = tmp_path / "runs" / "photos"
    record = json.loads((run / "run.json").read_text())
    assert record["stats"]["frames_skipped"] == 1
    assert record["stats"]["frames_processed"] == 2
    assert sorted(p.name for p in (run / "images").iterdir()) == ["img1.jpg", "img2.jpg"]
    lines = read_jsonl(run / "detections.jsonl")
    assert [r["name"] for r in lines] == ["img1.png", "img2.png"]
    assert lines[1]["detections"][0]["score"] == pytest.approx(200 / 255, abs=1e-3)


def test_show_without_display_runs_disk_only(assets, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert main(run_flags(assets, tmp_path, "--name", "s", "--show", "--max-frames", "3")) == 0
    assert len(read_jsonl(tmp_path / "s" / "detections.jsonl")) == 3
    assert "cannot show a window" in capsys.readouterr().err  # the CLI logs to stderr


def test_bad_config_exits_2(assets, tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("detect:\n  treshold: 0.3\n")
    assert main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "detect.treshold" in err and "detect.threshold" in err
    assert main(run_flags(assets, tmp_path, "--threshold", "2")) == 2
    assert main(run_flags(assets, tmp_path, "--classes", "persn")) == 2
    assert "persn" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["--no-such-flag"])
    assert info.value.code == 2
    assert not any(tmp_path.glob("*/run.json"))


def test_missing_model_and_source_exit_1_with_hints(assets, tmp_path, capsys):
    assert main([*run_flags(assets, tmp_path), "--model", str(tmp_path / "none.pb")]) == 1
    err = capsys.readouterr().err
    assert "none.pb" in err and "python main.py fetch" in err
    assert main(run_flags(assets, tmp_path, source=tmp_path / "missing.mp4")) == 1
    assert "missing.mp4" in capsys.readouterr().err


def test_unsafe_graph_is_refused_exit_1(assets, tmp_path, capsys):
    evil = build_unsafe_frozen(tmp_path / "evil.pb")
    assert main([*run_flags(assets, tmp_path), "--model", str(evil)]) == 1
    assert "ReadFile" in capsys.readouterr().err


def _long_run(tmp_path: Path, name: str, *extra: str) -> tuple[Path, list[str]]:
    """Flags of a 3000-frame run of the tiny model into ``tmp_path/runs/name``."""
    model = build_frozen(tmp_path / "g.pb")
    video = tiny_video(tmp_path / "long.avi", frames=3000, fps=25.0)
    out = tmp_path / "runs"
    flags = ["--source", str(video), "--model", str(model), "--labels", "null"]
    flags += ["--output", str(out), "--name", name, "--device", "cpu", *extra]
    return out / name, flags


def test_sigterm_finalizes_video_and_exits_130(tmp_path):
    """A real subprocess: SIGTERM mid-run → playable video, run.json, exit 130."""
    folder, flags = _long_run(tmp_path, "t", "--workers", "1", "--video-format", "avi")
    run = RunningCli(*flags)
    jsonl = folder / "detections.jsonl"
    try:
        run.wait_for(lambda: jsonl.exists() and jsonl.stat().st_size > 2000, 120, "2 kB of lines")
        run.signal(signal.SIGTERM)
        result = run.finish(60)
    finally:
        run.kill()
    assert result.code == 130, result.err[-2000:]
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "interrupted"
    processed = record["stats"]["frames_processed"]
    assert 0 < processed < 3000
    n, fps, _ = video_frames(folder / "annotated.avi")
    assert n == processed == len(read_jsonl(jsonl))
    assert fps == pytest.approx(25.0)


@pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("xdotool")), reason="needs Xvfb and xdotool"
)
def test_window_q_ends_the_run_cleanly_under_xvfb(tmp_path):
    """`--show` on a real (virtual) display: q in the window stops the run with exit 0."""
    folder, flags = _long_run(tmp_path, "w", "--show")
    with Xvfb() as xvfb:
        env = cli_env(DISPLAY=xvfb.display)
        run = RunningCli(*flags, env=env)
        try:
            found = subprocess.run(
                ["xdotool", "search", "--sync", "--name", "detector"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            wid = found.stdout.split()[0]
            subprocess.run(
                ["xdotool", "key", "--window", wid, "q"], env=env, check=True, timeout=30
            )
            result = run.finish(60)
        finally:
            run.kill()
    assert result.code == 0, result.err[-2000:]
    assert "quit key pressed" in result.err
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "ok" and record["outputs"]["window"] is True
    processed = record["stats"]["frames_processed"]
    assert 0 < processed < 3000
    assert video_frames(folder / "annotated.mp4")[0] == processed


def test_model_failing_mid_run_names_the_frame_and_keeps_outputs(assets, tmp_path, capsys):
    """An error on frame 6 (red 160 > 0.6 · 255): exit 1, the frame named, outputs finalized."""
    model = build_frozen(tmp_path / "breaks.pb", fail_above=0.6)
    code = main(
        [*run_flags(assets, tmp_path, "--name", "e", "--workers", "1"), "--model", str(model)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "inference stage failed on frame 6" in err
    record = json.loads((tmp_path / "e" / "run.json").read_text())
    assert record["status"] == "error" and "frame 6" in record["error"]
    processed = record["stats"]["frames_processed"]
    assert processed <= 6  # results queued behind the failure may be discarded
    video = tmp_path / "e" / "annotated.mp4"
    assert (video_frames(video)[0] if video.exists() else 0) == processed
    assert len(read_jsonl(tmp_path / "e" / "detections.jsonl")) == processed
