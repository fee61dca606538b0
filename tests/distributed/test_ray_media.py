"""Actor-side reading: image files by bytes with reasons, video ranges with exact seeks."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.distributed.media import (
    SEEK_FAST,
    SEEK_SEQUENTIAL,
    RangeReader,
    frame_digest,
    read_image,
)


def _noise_video(path: Path, n: int = 40) -> list[np.ndarray]:
    """An mp4v video of distinct noisy frames (inter-coded: a seek must decode from a key
    frame); returns the frames as a sequential read decodes them."""
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (64, 48))
    assert writer.isOpened()
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    for i in range(n):
        frame = base.copy()
        cv2.rectangle(frame, (i, 10), (i + 12, 30), (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    assert len(frames) == n
    return frames


def test_read_image_decodes_by_bytes_even_with_a_non_utf8_name(tmp_path: Path) -> None:
    image = np.full((20, 30, 3), 77, np.uint8)
    ok, data = cv2.imencode(".png", image)
    assert ok
    name = os.fsdecode(b"caf\xe9.png")  # not valid UTF-8: a surrogate escape
    (tmp_path / name).write_bytes(data.tobytes())
    got, reason = read_image(tmp_path / name)
    assert reason is None and got is not None
    assert np.array_equal(got, image)


def test_read_image_says_why_a_file_cannot_be_used(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not a picture")
    (tmp_path / "dir.jpg").mkdir()
    assert read_image(tmp_path / "missing.jpg") == (None, "file does not exist")
    assert read_image(tmp_path / "empty.jpg") == (None, "empty file (0 bytes)")
    image, reason = read_image(tmp_path / "text.jpg")
    assert image is None and reason is not None and "not an image OpenCV can decode" in reason
    image, reason = read_image(tmp_path / "dir.jpg")
    assert image is None and reason is not None and "folder" in reason


@pytest.mark.parametrize("mode", [SEEK_FAST, SEEK_SEQUENTIAL])
def test_a_range_reads_exactly_its_frames_and_probes_the_one_before(
    tmp_path: Path, mode: str
) -> None:
    frames = _noise_video(tmp_path / "noise.mp4")
    reader = RangeReader(tmp_path / "noise.mp4", 17, 29, mode)
    got = list(reader.frames())
    assert reader.error is None
    assert [i for i, _ in got] == list(range(17, 29))
    assert all(np.array_equal(img, frames[i]) for i, img in got)
    assert reader.probe_digest == frame_digest(frames[16])


def test_the_last_range_runs_to_the_end_and_a_range_past_the_end_says_so(
    tmp_path: Path,
) -> None:
    _noise_video(tmp_path / "noise.mp4", n=20)
    tail = RangeReader(tmp_path / "noise.mp4", 12, None, SEEK_FAST)
    assert [i for i, _ in tail.frames()] == list(range(12, 20))
    past = RangeReader(tmp_path / "noise.mp4", 30, None, SEEK_SEQUENTIAL)
    assert list(past.frames()) == []
    assert past.error is not None and "ends at frame 20" in past.error
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    reader = RangeReader(broken, 0, None, SEEK_FAST)
    assert list(reader.frames()) == [] and reader.error == "cannot open the video"
