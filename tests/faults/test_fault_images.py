"""Fault rows for image folders: missing, empty, non-image, truncated, unreadable, non-UTF-8.

Every bad file is made for real in the test. Root reads a ``chmod 000`` file anyway (its
``CAP_DAC_OVERRIDE`` / ``CAP_DAC_READ_SEARCH`` capabilities), so as root the run is started
with those two capabilities dropped from its bounding set: file permissions then apply to it
as to anyone. As any other user ``chmod 000`` is enough.
"""

from __future__ import annotations

import csv
import ctypes
import os
import stat
from pathlib import Path

import cv2
import numpy as np
from helpers.cli_run import RunOutputs, only_run_folder, run_cli
from helpers.media import image_folder

PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


def _image(red: int) -> np.ndarray:
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :, 2] = red
    image[::7] = 255  # some texture, so the JPEG is long enough to cut
    return image


def _jpeg(red: int) -> bytes:
    ok, data = cv2.imencode(".jpg", _image(red))
    assert ok
    return data.tobytes()


def _obey_permissions() -> None:
    """In the child, before exec: root loses the capabilities that bypass file permissions."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_folder_of_bad_files_skips_each_with_its_reason(
    tmp_path: Path, tiny: list[str], runs: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    good = _jpeg(200)
    (photos / "01_good.jpg").write_bytes(good)
    (photos / "02_empty.jpg").write_bytes(b"")
    (photos / "03_text.jpg").write_bytes(b"this is not a picture\n" * 10)
    (photos / "04_cut.jpg").write_bytes(good[: len(good) * 2 // 3])
    locked = photos / "05_locked.jpg"
    locked.write_bytes(good)
    locked.chmod(0)
    os.mkfifo(photos / "06_pipe.jpg")  # reading it would block forever
    (photos / "07_gone.jpg").symlink_to(photos / "deleted.jpg")  # listed, but missing
    # A name that is not valid UTF-8, sorting last (it used to crash the run with SIGSEGV).
    with open(os.path.join(os.fsencode(photos), b"z\xff\xfe.jpg"), "wb") as f:
        f.write(_jpeg(100))
    result = run_cli(
        "--source", photos, *tiny, preexec_fn=_obey_permissions if os.geteuid() == 0 else None
    )
    result.assert_ok()
    folder = only_run_folder(runs)
    outputs = RunOutputs.read(folder)
    assert [line["name"] for line in outputs.lines] == ["01_good.jpg", "z\\xff\\xfe.jpg"]
    with open(folder / "skipped.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "reason"]
    reasons = {Path(path).name: reason for path, reason in rows[1:]}
    assert reasons == {
        "02_empty.jpg": "empty",
        "03_text.jpg": "decode failed",
        "04_cut.jpg": "truncated",
        "05_locked.jpg": "permission denied",
        "06_pipe.jpg": "not a regular file",
        "07_gone.jpg": "missing",
    }
    assert outputs.run["stats"]["frames_skipped"] == 6
    assert outputs.run["outputs"]["skipped"] == {"path": "skipped.csv", "count": 6}
    assert "6 skipped" in result.out and "skipped.csv" in result.out
    for name, reason in reasons.items():
        assert f"{name}: {reason}" in result.err  # each one logged once, with its reason


def test_only_a_non_utf8_name_in_the_folder(tmp_path: Path, tiny: list[str], runs: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    with open(os.path.join(os.fsencode(photos), b"caf\xe9.jpg"), "wb") as f:
        f.write(_jpeg(220))
    result = run_cli("--source", photos, *tiny, "--images")
    result.assert_ok()
    folder = only_run_folder(runs)
    outputs = RunOutputs.read(folder)
    assert [line["name"] for line in outputs.lines] == ["caf\\xe9.jpg"]
    assert outputs.lines[0]["detections"][0]["label"] == "red"
    written = list((folder / "images").iterdir())
    assert len(written) == 1 and cv2.imread(str(written[0])) is not None
    assert outputs.run["status"] == "ok"


def test_folder_with_only_bad_files_ends_with_nothing_processed(
    tmp_path: Path, tiny: list[str], runs: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"")
    (photos / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = run_cli("--source", photos, *tiny)
    result.assert_ok()
    outputs = RunOutputs.read(only_run_folder(runs))
    assert outputs.lines == [] and outputs.run["stats"]["frames_skipped"] == 2
    assert "2 skipped" in result.out


def test_missing_and_empty_sources(tmp_path: Path, tiny: list[str]) -> None:
    missing = run_cli("--source", tmp_path / "nowhere.mp4", *tiny)
    missing.assert_failed(1, f"'{tmp_path / 'nowhere.mp4'}'", "does not exist")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    empty = run_cli("--source", empty_dir, *tiny)
    empty.assert_failed(1, "empty folder")
    empty_video = tmp_path / "empty.mp4"
    empty_video.write_bytes(b"")
    video = run_cli("--source", empty_video, *tiny)
    video.assert_failed(1, f"'{empty_video}'")
    assert stat.S_ISREG(empty_video.stat().st_mode)


def test_an_output_folder_inside_the_source_is_not_read_back(
    tmp_path: Path, tiny_model: Path, tiny_labels: Path
) -> None:
    photos = image_folder(tmp_path / "photos", [_image(200)] * 3, ".jpg")
    flags = ["--source", photos, "--model", tiny_model, "--labels", tiny_labels]
    for _ in range(2):  # the first run's annotated copies sit under photos/runs/ now
        result = run_cli(*flags, "--output", photos / "runs", "--images")
        result.assert_ok()
    second = RunOutputs.read(photos / "runs" / "photos2")
    assert [line["name"] for line in second.lines] == ["000.jpg", "001.jpg", "002.jpg"]
    assert "a run folder" in result.err  # said, not silent
