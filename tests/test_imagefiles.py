"""The one image reader and writer: any file name, each reason a file is unusable, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.errors import ConfigError
from detector.imagefiles import load_image, load_images, read_image, write_image
from detector.paths import display_path

IMAGE = np.dstack([np.full((20, 30), v, np.uint8) for v in (10, 120, 250)])


def test_write_then_read_a_non_utf8_name_as_str_and_as_bytes(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.png")  # not valid UTF-8: a surrogate escape
    write_image(tmp_path / name, IMAGE)
    got, reason = read_image(tmp_path / name)
    assert reason is None and got is not None and np.array_equal(got, IMAGE)
    got, reason = read_image(os.fsencode(tmp_path / name))
    assert reason is None and np.array_equal(got, IMAGE)
    assert display_path(name) == "caf\\xe9.png"
    assert load_image(tmp_path / name, rgb=True)[0, 0].tolist() == [250, 120, 10]


def test_read_image_says_why_a_file_cannot_be_used(tmp_path: Path) -> None:
    ok, jpeg = cv2.imencode(".jpg", IMAGE)
    assert ok
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not a picture")
    (tmp_path / "cut.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    (tmp_path / "dir.jpg").mkdir()
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it would block: never opened
    assert read_image(tmp_path / "missing.jpg") == (None, "missing")
    assert read_image(tmp_path / "empty.jpg") == (None, "empty")
    assert read_image(tmp_path / "text.jpg") == (None, "decode failed")
    assert read_image(tmp_path / "cut.jpg") == (None, "truncated")
    assert read_image(tmp_path / "dir.jpg") == (None, "not a regular file")
    assert read_image(tmp_path / "pipe.jpg") == (None, "not a regular file")
    with pytest.raises(ConfigError, match=r"cut\.jpg': truncated"):
        load_image(tmp_path / "cut.jpg")
    (tmp_path / "ok.jpg").write_bytes(jpeg.tobytes())
    names = ["missing.jpg", "ok.jpg", "text.jpg"]
    assert len(load_images(tmp_path / n for n in names)) == 1


def test_write_replaces_a_file_whole_with_the_usual_permissions(tmp_path: Path) -> None:
    path = tmp_path / "out.jpg"
    path.write_bytes(b"old")
    write_image(path, IMAGE)
    got, reason = read_image(path)
    assert reason is None and got.shape == IMAGE.shape
    assert [p.name for p in tmp_path.iterdir()] == ["out.jpg"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    fresh = tmp_path / "fresh.png"
    write_image(fresh, IMAGE)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_write_errors_say_what_failed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot encode"):
        write_image(tmp_path / "x.nope", IMAGE)
    with pytest.raises(FileNotFoundError):
        write_image(tmp_path / "gone" / "x.png", IMAGE)
    assert list(tmp_path.iterdir()) == []
