"""The folder walk ends whatever the tree holds and says what it left out; run folders are
never read back as input."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.sources import open_source
from detector.sources.walk import walk_files


def _jpg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes())
    return path


@pytest.fixture
def hostile_tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    _jpg(root / "a.jpg")
    _jpg(root / "sub" / "b.jpg")
    (root / "sub" / "loop").symlink_to(root)  # a link back up the tree
    (root / "twice").symlink_to(root / "sub")  # the same folder by a second name
    os.mkfifo(root / "fifo.jpg")  # opening it would block forever
    (root / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    locked = root / "locked"
    _jpg(locked / "c.jpg")
    locked.chmod(0)
    run = root / "runs" / "photos"  # an earlier run's output folder
    _jpg(run / "images" / "a.jpg")
    (run / "run.json").write_text("{}")
    yield root
    locked.chmod(0o755)


def test_the_walk_ends_and_names_each_entry_it_left_out(hostile_tree: Path) -> None:
    walk = walk_files(hostile_tree, (".jpg",))
    names = sorted(p.relative_to(hostile_tree).as_posix() for p in walk.files)
    reasons = {p.relative_to(hostile_tree).as_posix(): r for p, r in walk.skipped}
    # the reader skips the FIFO and the dangling link with their reasons, never opening them
    listed = ["a.jpg", "dangling.jpg", "fifo.jpg", "sub/b.jpg"]
    if os.geteuid() == 0:  # root reads a mode-0 folder anyway
        assert names == sorted([*listed, "locked/c.jpg"])
    else:
        assert names == listed
        assert "cannot read folder" in reasons["locked"]
    assert "run folder" in reasons["runs/photos"]
    assert any("already walked" in r for r in reasons.values())


def test_a_folder_source_skips_its_own_outputs_and_lists_why(hostile_tree: Path) -> None:
    with open_source(str(hostile_tree)) as source:
        frames = 0
        while source.read() is not None:
            frames += 1
        reasons = [reason for _, reason in source.skips]
    assert frames == (3 if os.geteuid() == 0 else 2)
    assert any("run folder" in r for r in reasons)
    assert "not a regular file" in reasons and "missing" in reasons


def test_the_walk_stops_at_a_file_limit(tmp_path: Path) -> None:
    for i in range(5):
        _jpg(tmp_path / f"{i}.jpg")
    walk = walk_files(tmp_path, (".jpg",), max_files=3)
    assert len(walk.files) == 3 and "more than 3 files" in walk.skipped[-1][1]
