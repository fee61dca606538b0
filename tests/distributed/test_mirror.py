"""A folder copied while it is written: appended bytes, replaced files, a cut-off copy, bounds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.cli_run import decode_video
from helpers.media import make_video

from detector.distributed.mirror import FolderTail, Piece, apply
from detector.outputs.rundir import write_json


def _sync(tail: FolderTail, dest: Path, budget: int = 1 << 20) -> int:
    """Pull and apply until nothing is new; the number of pulls."""
    pulls = 0
    while pieces := tail.pull(budget):
        apply(dest, pieces)
        pulls += 1
    return pulls


def test_appended_lines_arrive_in_place_and_stay_readable(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    tail = FolderTail(src)
    with (src / "detections.jsonl").open("w") as f:
        for i in range(50):
            f.write(json.dumps({"frame": i}) + "\n")
            f.flush()
            if i % 7 == 0:  # mid-stream copies: every line there parses
                _sync(tail, dest)
                got = (dest / "detections.jsonl").read_text().splitlines()
                assert [json.loads(x)["frame"] for x in got] == list(range(i + 1))
    _sync(tail, dest)
    assert (dest / "detections.jsonl").read_bytes() == (src / "detections.jsonl").read_bytes()
    assert tail.pull() == []  # nothing new: nothing sent


def test_a_replaced_file_swaps_in_whole_and_temp_files_are_not_sent(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    tail = FolderTail(src)
    write_json(src / "run.json", {"status": "running", "pad": "x" * 5000})
    (src / ".run.json.tmp").write_text("half")
    _sync(tail, dest)
    write_json(src / "run.json", {"status": "ok"})  # a new inode, shorter
    pieces = tail.pull(budget=4)  # the new copy comes in pieces: the old one stays until done
    assert pieces and pieces[0].swap and not pieces[0].done
    apply(dest, pieces)
    assert json.loads((dest / "run.json").read_text())["status"] == "running"
    _sync(tail, dest, budget=4)
    assert json.loads((dest / "run.json").read_text()) == {"status": "ok"}
    assert sorted(p.name for p in dest.iterdir()) == ["run.json"]


def test_empty_and_nested_files_arrive(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "snapshots").mkdir(parents=True)
    (src / "events.jsonl").touch()
    (src / "snapshots" / "a.jpg").write_bytes(b"\xff\xd8jpeg")
    _sync(FolderTail(src), dest)
    assert (dest / "events.jsonl").read_bytes() == b""
    assert (dest / "snapshots" / "a.jpg").read_bytes() == b"\xff\xd8jpeg"


def test_a_video_copied_in_pieces_is_the_same_file(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    video = make_video(src / "clip.avi", n=20, size=(160, 120))
    tail = FolderTail(src)
    size = video.stat().st_size
    apply(dest, tail.pull(budget=size // 3))  # a third, as after a lost worker
    assert (dest / "clip.avi").stat().st_size == size // 3
    assert _sync(tail, dest, budget=size // 3) >= 2
    assert (dest / "clip.avi").read_bytes() == video.read_bytes()
    assert decode_video(dest / "clip.avi")[0] == 20


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../x", "."])
def test_a_piece_cannot_leave_the_folder(tmp_path: Path, path: str) -> None:
    with pytest.raises(ValueError, match="leaves the run folder"):
        apply(tmp_path / "dest", [Piece(path, 0, b"x")])
    assert not (tmp_path / "x").exists()


def test_a_file_gone_between_listing_and_reading_is_skipped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    tail = FolderTail(src)
    files = tail._files()
    os.unlink(src / "a.txt")
    assert [tail._piece(p, 100) for p in files] == [None]
