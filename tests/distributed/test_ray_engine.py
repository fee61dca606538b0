"""``--engine ray`` end to end on a real local Ray, the real model and real photos and video.

Ray and the actors' TensorFlow take seconds to start, so each case is one run of the CLI
per engine (module fixtures), and every assertion reads those runs' files.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from helpers.media import make_video

from detector.cli.main import main

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _run(tmp: Path, name: str, *args: str) -> tuple[int, Path]:
    code = main(["run", "--output", str(tmp), "--name", name, *args])
    return code, tmp / name


@pytest.fixture(scope="module")
def twenty_photos(tmp_path_factory: pytest.TempPathFactory, photos_dir: Path) -> Path:
    """20 files: the 12 sample photos, 7 mirrored or scaled variants, one truncated JPEG."""
    folder = tmp_path_factory.mktemp("photos")
    originals = sorted(photos_dir.iterdir())
    for p in originals:
        shutil.copy(p, folder / p.name)
    for i, p in enumerate(originals[:7]):
        image = cv2.imread(str(p))
        variant = cv2.flip(image, 1) if i % 2 else cv2.resize(image, None, fx=0.75, fy=0.75)
        assert cv2.imwrite(str(folder / f"variant_{i}_{p.stem}.png"), variant)
    (folder / "corrupt.jpg").write_bytes((photos_dir / "dog.jpg").read_bytes()[:1500])
    assert len(list(folder.iterdir())) == 20
    return folder


@pytest.fixture(scope="module")
def photo_runs(
    twenty_photos: Path, tmp_path_factory: pytest.TempPathFactory, local_ray: Any
) -> dict[str, tuple[int, Path]]:
    tmp = tmp_path_factory.mktemp("photo_runs")
    common = ("--source", str(twenty_photos), "--no-video", "--coco", "--csv")
    return {
        "local": _run(tmp, "local", *common),
        "ray": _run(tmp, "ray", *common, "--engine", "ray", "--ray-batch-size", "3"),
    }


def test_ray_detections_equal_the_local_engines_per_file(
    photo_runs: dict[str, tuple[int, Path]],
) -> None:
    by_name = {
        engine: {r["name"]: r for r in _lines(folder / "detections.jsonl")}
        for engine, (_code, folder) in photo_runs.items()
    }
    assert len(by_name["local"]) == 19
    assert set(by_name["ray"]) == set(by_name["local"])
    for name, local in by_name["local"].items():
        ray = by_name["ray"][name]
        assert len(ray["detections"]) == len(local["detections"]), name
        for a, b in zip(local["detections"], ray["detections"], strict=True):
            assert a["class_id"] == b["class_id"] and a["label"] == b["label"], name
            assert abs(a["score"] - b["score"]) <= 1e-5, name
            assert np.allclose(a["box_xyxy"], b["box_xyxy"], atol=0.11), name
    assert sum(len(r["detections"]) for r in by_name["local"].values()) > 19  # real findings


def test_ray_writes_the_same_exports_as_the_local_engine(
    photo_runs: dict[str, tuple[int, Path]],
) -> None:
    (_, local_dir), (_, ray_dir) = photo_runs["local"], photo_runs["ray"]
    assert (ray_dir / "coco_results.json").read_text() == (
        local_dir / "coco_results.json"
    ).read_text()

    def rows(folder: Path) -> list[list[str]]:
        with (folder / "detections.csv").open(newline="") as f:
            table = list(csv.reader(f))
        ts = table[0].index("timestamp_s")
        return [r[:ts] + r[ts + 1 :] for r in table]

    assert rows(ray_dir) == rows(local_dir) and len(rows(local_dir)) > 20


def test_the_corrupt_file_is_reported_and_the_exit_codes_agree(
    photo_runs: dict[str, tuple[int, Path]],
) -> None:
    (local_code, _), (ray_code, ray_dir) = photo_runs["local"], photo_runs["ray"]
    assert local_code == ray_code == 0
    record = json.loads((ray_dir / "run.json").read_text())
    assert record["status"] == "ok" and record["engine"] == "ray"

    # skipped as the local engine skips it: the same skipped.csv (file and reason), counted
    def skipped(folder: Path) -> list[dict[str, str]]:
        with (folder / "skipped.csv").open(newline="") as f:
            return list(csv.DictReader(f))

    assert [Path(r["path"]).name for r in skipped(ray_dir)] == ["corrupt.jpg"]
    assert skipped(ray_dir) == skipped(photo_runs["local"][1])
    assert record["outputs"]["skipped"] == {"path": "skipped.csv", "count": 1}
    assert record["stats"]["frames_skipped"] == 1 and record["stats"]["frames_processed"] == 19
    ray = record["ray"]
    assert ray["actors"] == 2 and ray["batch_size"] == 3 and ray["items"] == 19
    assert ray["per_actor"] and all(a["items_per_busy_s"] > 0 for a in ray["per_actor"])
    assert sum(a["items"] for a in ray["per_actor"]) == 19


def test_a_video_in_three_ranges_gives_the_local_json_lines(
    sample_video: Path, tmp_path: Path, local_ray: Any
) -> None:
    config = tmp_path / "ray.yml"
    config.write_text("run:\n  ray_ranges_per_video: 3\n")
    args = ("--source", str(sample_video), "--max-frames", "45", "--mot")
    local_code, local_dir = _run(tmp_path, "local", *args)
    ray_code, ray_dir = _run(tmp_path, "ray", "--config", str(config), *args, "--engine", "ray")
    assert local_code == ray_code == 0

    def strip(r: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in r.items() if k not in ("timestamp_s", "inference_ms")}

    local = [strip(r) for r in _lines(local_dir / "detections.jsonl")]
    ray = [strip(r) for r in _lines(ray_dir / "detections.jsonl")]
    assert len(local) == 45 and ray == local
    assert (ray_dir / "mot.txt").read_text() == (local_dir / "mot.txt").read_text()
    record = json.loads((ray_dir / "run.json").read_text())
    assert list(record["ray"]["ranges"].values()) == [[[0, 15], [15, 30], [30, 45]]]
    assert record["outputs"]["video"]["frames"] == 45  # annotated by the driver, in order
    cap = cv2.VideoCapture(str(ray_dir / "annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 45
    cap.release()


def test_a_folder_of_videos_gives_one_sub_run_each_and_names_the_broken_one(
    tmp_path: Path, local_ray: Any
) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    make_video(folder / "a.avi", n=12)
    make_video(folder / "b.avi", n=10)
    (folder / "broken.avi").write_bytes(b"\x00" * 64)
    code, run_dir = _run(tmp_path / "runs", "clips", "--source", str(folder), "--engine", "ray")
    assert code == 1
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed"
    assert [Path(name).name for name in record["failed"]] == ["broken.avi"]
    assert [(s["status"], s["run_dir"]) for s in record["sources"]] == [
        ("ok", "a"),
        ("ok", "b"),
        ("failed", "broken"),
    ]
    assert len(_lines(run_dir / "a" / "detections.jsonl")) == 12
    assert len(_lines(run_dir / "b" / "detections.jsonl")) == 10
    assert (run_dir / "a" / "annotated.mp4").stat().st_size > 0
    # each video has its own run.json, as with the local engine; the broken one says why
    assert json.loads((run_dir / "a" / "run.json").read_text())["status"] == "ok"
    assert json.loads((run_dir / "broken" / "run.json").read_text())["status"] == "error"


def test_a_model_that_cannot_load_in_an_actor_fails_the_run_with_its_message(
    tmp_path: Path, photos_dir: Path, local_ray: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"this is not a graph")
    code, run_dir = _run(
        tmp_path, "bad", "--source", str(photos_dir), "--model", str(bad), "--engine", "ray"
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "could not be loaded on Ray actor" in err and "bad.pb" in err
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "error" and "bad.pb" in record["error"]


HEAD = """
import sys, ray
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
         logging_level="ERROR")  # a new head, never the test session's cluster
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # runs until the test closes stdin
ray.shutdown()
"""


def test_joins_a_running_ray_cluster_by_address(tmp_path: Path, photos_dir: Path) -> None:
    """A Ray head in another process (as `ray start --head` would be): the run joins it with
    --ray-address, using the machine's token, and leaves it running."""
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert head.stdout is not None
        address = head.stdout.readline().strip()
        assert ":" in address, address
        args = ["run", "--source", str(photos_dir), "--engine", "ray", "--no-video"]
        args += ["--ray-address", address, "--output", str(tmp_path), "--name", "joined"]
        proc = subprocess.run(
            [sys.executable, "main.py", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "gcs_client" not in proc.stderr  # Ray's C++ lines stay out of the output
        record = json.loads((tmp_path / "joined" / "run.json").read_text())
        assert record["ray"]["address"] == address and not record["ray"]["started_local"]
        assert record["stats"]["frames_processed"] == len(list(photos_dir.iterdir()))
        assert head.poll() is None  # the cluster is still up after the run
        # without --ray-address the run starts its own Ray, never joins the one running here
        args = [a for a in args if a not in ("--ray-address", address)]
        args[args.index("joined")] = "alone"
        proc = subprocess.run(
            [sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        alone = json.loads((tmp_path / "alone" / "run.json").read_text())["ray"]
        assert alone["address"] == "local" and alone["started_local"]
        assert alone["gcs_address"] != address
    finally:
        if head.stdin is not None:
            head.stdin.close()
        head.wait(timeout=120)


def test_a_camera_that_cannot_be_opened_fails_its_source(local_ray: Any, tmp_path: Path) -> None:
    code, folder = _run(tmp_path, "cam", "--source", "/dev/video99", "--engine", "ray")
    assert code == 1
    top = json.loads((folder / "run.json").read_text())
    (entry,) = top["sources"]
    assert entry["status"] == "failed" and "/dev/video99" in entry["error"]


def test_without_ray_installed_the_run_exits_2_with_the_install_command(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from detector.cli.main import main\n"
        f"sys.exit(main(['run', '--engine', 'ray', '--output', {str(tmp_path)!r}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'ray[data]==2.60.0'" in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing written before the check


def test_a_name_that_is_not_utf8_is_read_and_written_on_ray(
    tmp_path: Path, photos_dir: Path, local_ray: Any
) -> None:
    """The Ray engine once died of SIGSEGV (no message, no run.json) on such a name with
    --images: OpenCV was handed the raw name to write."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photos_dir / "dog.jpg", folder / "dog.jpg")
    raw = os.path.join(os.fsencode(folder), b"caf\xe9.jpg")
    with open(raw, "wb") as f:
        f.write((photos_dir / "dog.jpg").read_bytes())
    code, run = _run(tmp_path, "ray", "--source", str(folder), "--engine", "ray", "--images")
    assert code == 0
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "ok" and record["stats"]["frames_processed"] == 2
    written = sorted(p.name for p in (run / "images").iterdir())
    assert len(written) == 2
    for p in (run / "images").iterdir():
        assert cv2.imdecode(np.fromfile(p, np.uint8), cv2.IMREAD_COLOR) is not None


def test_a_huge_warmup_frames_only_leaves_frames_out_of_the_figures(
    tmp_path: Path, photos_dir: Path, local_ray: Any
) -> None:
    """`run.warmup_frames` once made each actor run the model that many times before its
    first image (a silent hang); it only leaves the first frames out of the figures."""
    config = tmp_path / "warm.yml"
    config.write_text("run:\n  warmup_frames: 1000000\n")
    photos = tmp_path / "two"
    photos.mkdir()
    for name in ("dog.jpg", "horses.jpg"):
        shutil.copy(photos_dir / name, photos / name)
    code, run = _run(tmp_path, "warm", "--config", str(config), "--source", str(photos),
                     "--engine", "ray", "--no-video")  # fmt: skip
    assert code == 0
    assert json.loads((run / "run.json").read_text())["stats"]["frames_processed"] == 2
