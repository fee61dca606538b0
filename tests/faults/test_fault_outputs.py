"""Fault rows for outputs and stops: unwritable folder, full disk, a writer that fails, run
folders that exist, hostile names, and real SIGINT / SIGTERM / SIGKILL sent to ``main.py``.

The full disk is a real small filesystem: a ``tmpfs`` with ``size=`` mounted by root (or in
an unprivileged user namespace with ``unshare``); a read-only mount makes an unwritable folder
that root cannot write either. A writer failure is a real ``EFBIG`` from ``RLIMIT_FSIZE``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers.cli_run import (
    MAIN,
    RunningCli,
    RunOutputs,
    cli_env,
    decode_video,
    only_run_folder,
    run_cli,
)
from helpers.media import noise_frames, write_video
from helpers.slow_model import build_slow_frozen
from helpers.tiny_models import tiny_video
from helpers.xvfb import Xvfb


@contextmanager
def _tmpfs(where: Path, options: str, unable: str) -> Iterator[Path]:
    """A ``tmpfs`` mounted at ``where`` with ``options`` for the block (root only; else skip
    the test, saying ``unable``)."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip(f"{unable} (needs root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(unable)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1.5 MiB tmpfs: filled by a few dozen frames of video."""
    with _tmpfs(tmp_path / "small", "size=1536k,mode=0777", "cannot mount a tmpfs here") as where:
        yield where


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "ro"
    if os.geteuid() == 0:
        with _tmpfs(where, "size=64k,ro", "cannot mount a read-only tmpfs"):
            yield where
    else:
        where.mkdir()
        where.chmod(0o555)
        yield where
        where.chmod(0o755)


def test_unwritable_output_folder(read_only_dir: Path, tiny: list[str], tmp_path: Path) -> None:
    clip = tiny_video(tmp_path / "clip.avi")
    result = run_cli("--source", clip, *tiny, "--output", read_only_dir / "runs")
    result.assert_failed(1, f"'{read_only_dir / 'runs'}'", "writable")
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    result = run_cli("--source", clip, *tiny, "--output", a_file / "runs")
    result.assert_failed(1, f"'{a_file / 'runs'}'", "Not a directory")


def test_full_disk_stops_cleanly_and_keeps_what_was_written(
    small_disk: Path, tiny_model: Path, tiny_labels: Path, sample_video: Path
) -> None:
    runs = small_disk / "runs"
    result = run_cli("--source", sample_video, "--model", tiny_model, "--labels", tiny_labels,
                     "--output", runs, "--video-format", "avi",
                     "--coco", "--csv", "--mot")  # fmt: skip
    result.assert_failed(1, "No space left on device")
    assert "run error" in result.out
    folder = only_run_folder(runs)
    out = RunOutputs.read(folder)  # run.json and every JSON line parse
    assert out.run["status"] == "error" and "No space left on device" in out.run["error"]
    assert 0 < len(out.lines) == out.run["stats"]["frames_processed"] < 795
    assert out.video_frames is not None and out.video_frames > 0  # AVI keeps its frames
    # no export ends with a cut record: each is cut back to its last whole one
    json.loads((folder / "coco_results.json").read_text())
    json.loads((folder / "coco_images.json").read_text())
    text = (folder / "detections.csv").read_text()
    assert text.endswith("\n") and all(len(r.split(",")) == 12 for r in text.splitlines())
    mot = (folder / "mot.txt").read_text()
    assert not mot or (mot.endswith("\n") and all(len(r.split(",")) == 10 for r in mot.split()))


def test_writer_failure_names_the_file_and_lists_only_real_files(
    tmp_path: Path, tiny: list[str], runs: Path
) -> None:
    clip = write_video(
        tmp_path / "noise.avi", noise_frames(20, (640, 480)), 10.0
    )  # ~100 KiB a frame

    def small_files() -> None:  # every file this process writes stops at 64 KiB (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    result = run_cli("--source", clip, *tiny, "--images", "--no-video", preexec_fn=small_files)
    result.assert_failed(1, "cannot write image", str(runs))
    folder = only_run_folder(runs)
    listed = result.out.split("outputs in", 1)[1]
    for name in ("detections.jsonl", "run.json"):
        assert name in listed and (folder / name).is_file()
    assert "annotated" not in listed  # no video was asked for: none is claimed
    assert RunOutputs.read(folder).run["status"] == "error"


def test_existing_run_folder_is_never_written_into(
    tmp_path: Path, tiny: list[str], runs: Path
) -> None:
    clip = tiny_video(tmp_path / "clip.avi")
    for _ in range(2):
        run_cli("--source", clip, *tiny, "--name", "same").assert_ok()
    assert sorted(p.name for p in runs.iterdir()) == ["same", "same2"]
    for folder in runs.iterdir():
        assert RunOutputs.read(folder).run["status"] == "ok"


def test_hostile_run_names(tmp_path: Path, tiny: list[str], runs: Path) -> None:
    clip = tiny_video(tmp_path / "clip.avi")
    escape = run_cli("--source", clip, *tiny, "--name", "../escape")
    escape.assert_failed(2, "output.name", "'../escape'")
    assert not (tmp_path / "escape").exists() and not runs.exists()
    odd = "a b:c*?<>|'\"é"
    run_cli("--source", clip, *tiny, "--name", odd).assert_ok()
    # Bytes that are not UTF-8 crashed OpenCV's writers (SIGSEGV): refused up front instead.
    raw = run_cli("--source", clip, *tiny, "--name", b"caf\xe9-raw")
    raw.assert_failed(2, "output.name", "UTF-8")
    raw_dir = run_cli("--source", clip, *tiny, "--output", os.fsencode(runs) + b"/\xff")
    raw_dir.assert_failed(1, "not a valid UTF-8 path", "\\xff")
    assert [p.name for p in runs.iterdir()] == [odd]
    for folder in runs.iterdir():
        assert RunOutputs.read(folder).run["status"] == "ok"


# -- signals ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_slow_frozen(tmp_path_factory.mktemp("slow") / "slow.pb")


@pytest.fixture
def slow_run(tmp_path: Path, slow_model: Path, tiny_labels: Path, runs: Path):
    """Start a run long enough to be stopped mid-way (a slow model on a 60-frame clip)."""
    clip = tiny_video(tmp_path / "clip.avi", frames=60, fps=10)

    def start(*extra: str) -> RunningCli:
        run = RunningCli("--source", clip, "--model", slow_model, "--labels", tiny_labels,
                         "--output", runs, "--workers", "1", *extra)  # fmt: skip
        run.wait_for(lambda: _lines(runs) >= 3, what="3 frames written")
        return run

    return start


def _lines(runs: Path) -> int:
    found = list(runs.glob("*/detections.jsonl")) if runs.exists() else []
    return found[0].read_bytes().count(b"\n") if found else 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_signal_finalizes_everything(slow_run, runs: Path, signum: int) -> None:
    run = slow_run()
    run.signal(signum)
    result = run.finish()
    assert result.code == 130, result.text
    assert "Traceback" not in result.text
    out = RunOutputs.read(only_run_folder(runs))
    assert out.run["status"] == "interrupted"
    assert 3 <= len(out.lines) == out.run["stats"]["frames_processed"] < 60
    assert out.video_frames == len(out.lines)  # the video was finalized: every frame plays


def test_sigkill_leaves_a_running_record_and_whole_files(slow_run, runs: Path) -> None:
    run = slow_run("--coco", "--csv", "--mot")
    run.kill()
    result = run.finish()
    assert result.code == -signal.SIGKILL
    folder = only_run_folder(runs)
    out = RunOutputs.read(folder)  # every line parses: none half-written
    assert out.run["status"] == "running"  # visible as a run that never finished
    assert out.run["source"]["frame_count"] == 60
    assert len(out.lines) >= 3
    assert [line["frame"] for line in out.lines] == list(range(len(out.lines)))
    # the exports were never closed, yet each is whole: COCO is valid JSON at every moment
    images = json.loads((folder / "coco_images.json").read_text())["images"]
    results = json.loads((folder / "coco_results.json").read_text())
    assert len(images) >= len(out.lines) - 1 and isinstance(results, list)
    csv_rows = (folder / "detections.csv").read_text().splitlines()
    assert all(len(row.split(",")) == 12 for row in csv_rows)
    assert (folder / "mot.txt").read_text().endswith("\n") or not (
        folder / "mot.txt"
    ).stat().st_size


def test_sigkill_leaves_a_decodable_video(slow_run, runs: Path) -> None:
    run = slow_run()
    run.wait_for(lambda: _lines(runs) >= 25, what="25 frames written")
    run.kill()
    run.finish()
    folder = only_run_folder(runs)
    frames, _ = decode_video(next(folder.glob("annotated.*")))
    assert frames >= 10  # at most the last fragment (about a second) is lost


@pytest.mark.parametrize("display", [None, ":987"], ids=["no-DISPLAY", "dead-display"])
def test_show_without_a_display_runs_disk_only(
    tmp_path: Path, tiny: list[str], runs: Path, display: str | None
) -> None:
    clip = tiny_video(tmp_path / "clip.avi")
    env = cli_env(**({"DISPLAY": display} if display else {}))
    result = run_cli("--source", clip, *tiny, "--show", env=env)
    result.assert_ok()  # never exit 1 (nor an abort) because a window cannot open
    assert "cannot show a window" in result.err and "disk-only" in result.err
    out = RunOutputs.read(only_run_folder(runs))
    assert len(out.lines) == 12 and out.video_frames == 12
    assert out.run["outputs"]["window"] is False


@pytest.mark.skipif(not shutil.which("Xvfb"), reason="needs Xvfb")
def test_the_x_server_dying_under_show_never_fails_the_run(
    slow_model: Path, tiny_labels: Path, tmp_path: Path, runs: Path
) -> None:
    with Xvfb() as xvfb:
        clip = tiny_video(tmp_path / "clip.avi", frames=40, fps=10)
        run = RunningCli("--source", clip, "--model", slow_model, "--labels", tiny_labels,
                         "--output", runs, "--workers", "1", "--show",
                         env=cli_env(DISPLAY=xvfb.display))  # fmt: skip
        run.wait_for(lambda: _lines(runs) >= 3, what="3 frames written")
        xvfb.kill()  # the X server goes away mid-run
        result = run.finish()
    result.assert_ok()  # the window went, the run did not
    assert "window failed" in result.err and "disk-only" in result.err
    out = RunOutputs.read(only_run_folder(runs))
    assert out.run["status"] == "ok" and len(out.lines) == 40 and out.video_frames == 40


@pytest.mark.parametrize("after_s", [0.5, 1.5, 3.0, 5.0])
def test_sigterm_during_start_up_stops_the_run(
    tmp_path: Path, tiny: list[str], runs: Path, after_s: float
) -> None:
    # long enough that the last signal still lands before the run ends: about 400 of these
    # frames a second here, so 300 were done within 5 s once start-up got faster; 6000 take
    # about 15 s
    clip = tiny_video(tmp_path / "clip.avi", frames=6000, fps=10)
    run = RunningCli("--source", clip, *tiny)
    time.sleep(after_s)  # somewhere in start-up: imports, TensorFlow, the model, the first frames
    run.signal(signal.SIGTERM)
    result = run.finish()
    # never ignored ("run ok"), never taken for a broken install
    assert result.code in (130, -signal.SIGTERM), result.text
    assert "cannot import TensorFlow" not in result.text and "Traceback" not in result.text
    for folder in runs.glob("*") if runs.exists() else []:
        record = RunOutputs.read(folder).run
        assert record["status"] == "interrupted"


# a real SIGTERM during start-up whose KeyboardInterrupt a library catches (an extension
# module's import turns it into "ImportError: initialization failed")
_SWALLOWED = """
import os, runpy, signal, sys
import detector.pipeline.local as local
load = local.load_model
def load_after_a_swallowed_stop(*args, **kwargs):
    try:
        os.kill(os.getpid(), signal.SIGTERM)
    except (KeyboardInterrupt, ImportError):
        pass
    return load(*args, **kwargs)
local.load_model = load_after_a_swallowed_stop
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("sources", [1, 2])
def test_a_stop_a_library_swallowed_in_start_up_still_stops_the_run(
    tmp_path: Path, tiny: list[str], runs: Path, sources: int
) -> None:
    clips = [tiny_video(tmp_path / f"clip{i}.avi", frames=2000, fps=10) for i in range(sources)]
    flags = [f for clip in clips for f in ("--source", str(clip))]
    argv = [sys.executable, "-c", _SWALLOWED, str(MAIN), *flags, *tiny]
    proc = subprocess.run(argv, capture_output=True, text=True, env=cli_env(), timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 130, text
    assert "SIGTERM received: stopping" in text
    top = RunOutputs.read(only_run_folder(runs))
    assert top.run["status"] == "interrupted", text
    assert top.run["stats"]["interrupted"] and top.run["stats"]["frames_processed"] < 100
