"""End to end with the real default model and the sample media from set-up (``fetch``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from detector.fetch.assets import DEFAULT_MODEL_DIR, PHOTOS_DIR, SAMPLE_VIDEO

ROOT = Path(__file__).resolve().parent.parent
MODEL = DEFAULT_MODEL_DIR / "frozen_inference_graph.pb"
LABELS = DEFAULT_MODEL_DIR / "label_map.pbtxt"
DOG = PHOTOS_DIR / "dog.jpg"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (MODEL.is_file() and LABELS.is_file() and SAMPLE_VIDEO.is_file() and DOG.is_file()),
        reason="default model or sample media missing: run 'python main.py fetch'",
    ),
]


def play(path: Path) -> tuple[int, float]:
    """Decode a whole video: (frames decoded, container fps)."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"cannot play {path}"
    fps = cap.get(cv2.CAP_PROP_FPS)
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n, fps


def source_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return fps


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def main_py(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_main_py_default_run_on_the_full_sample_video(tmp_path):
    """`python main.py` (default config, only the output folder moved): the main job."""
    proc = main_py("--output", str(tmp_path), "--name", "vtest")
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    run = tmp_path / "vtest"
    record = json.loads((run / "run.json").read_text())
    stats = record["stats"]
    n, fps = play(run / "annotated.mp4")
    expected = cv2.VideoCapture(str(SAMPLE_VIDEO)).get(cv2.CAP_PROP_FRAME_COUNT)
    assert stats["frames_processed"] == n == stats["frames_read"] == int(expected)
    assert fps == pytest.approx(source_fps(SAMPLE_VIDEO))
    lines = read_jsonl(run / "detections.jsonl")
    assert [r["frame"] for r in lines] == list(range(n))
    with_people = sum(any(d["label"] == "person" for d in r["detections"]) for r in lines)
    assert with_people >= 0.9 * n, f"people on only {with_people} of {n} frames"
    assert record["status"] == "ok" and record["model"]["format"] == "frozen_pb"
    assert "FPS" in out and str(run) in out
    print(out)  # the summary, with the FPS, for the log (pytest -s)


def test_photo_folder_finds_the_dog(tmp_path):
    from detector.cli import main

    assert (
        main(
            [
                "--source",
                str(PHOTOS_DIR),
                "--output",
                str(tmp_path),
                "--name",
                "p",
                "--images",
                "--no-video",
                "--threshold",
                "0.5",
            ]
        )
        == 0
    )
    run = tmp_path / "p"
    lines = {r["name"]: r for r in read_jsonl(run / "detections.jsonl")}
    dog = {d["label"]: d["score"] for d in lines["dog.jpg"]["detections"]}
    assert dog.get("dog", 0) >= 0.8, dog
    assert dog.get("bicycle", 0) >= 0.8 and dog.get("car", 0) >= 0.5, dog
    assert (run / "images" / "dog.jpg").is_file()
    record = json.loads((run / "run.json").read_text())
    assert record["stats"]["frames_processed"] == len(lines) >= 1
    assert record["stats"]["frames_skipped"] == 0


def test_folder_with_a_corrupt_image_skips_and_counts_it(tmp_path):
    from detector.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(DOG, photos / "dog.jpg")
    (photos / "broken.jpg").write_bytes(DOG.read_bytes()[:300])  # a truncated JPEG
    (photos / "empty.png").write_bytes(b"")
    assert (
        main(
            [
                "--source",
                str(photos),
                "--output",
                str(tmp_path / "runs"),
                "--name",
                "c",
                "--no-video",
            ]
        )
        == 0
    )
    run = tmp_path / "runs" / "c"
    record = json.loads((run / "run.json").read_text())
    assert record["stats"]["frames_skipped"] == 2
    assert record["stats"]["frames_processed"] == 1
    (line,) = read_jsonl(run / "detections.jsonl")
    assert line["name"] == "dog.jpg"
    assert "dog" in {d["label"] for d in line["detections"]}


def test_sigterm_mid_run_finalizes_a_playable_video_and_exits_130(tmp_path):
    proc = main_py("--output", str(tmp_path), "--name", "t", "--workers", "1")
    jsonl = tmp_path / "t" / "detections.jsonl"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if jsonl.exists() and len(jsonl.read_bytes().splitlines()) >= 20:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate(timeout=10)[1][-3000:]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130, err[-3000:]
    record = json.loads((tmp_path / "t" / "run.json").read_text())
    assert record["status"] == "interrupted"
    processed = record["stats"]["frames_processed"]
    n, fps = play(tmp_path / "t" / "annotated.mp4")
    assert 20 <= processed < 795
    assert n == processed == len(read_jsonl(jsonl))
    assert fps == pytest.approx(source_fps(SAMPLE_VIDEO))
    assert "run interrupted" in out
