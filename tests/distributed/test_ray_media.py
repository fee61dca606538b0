"""Actor-side reading: video ranges with exact seeks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.media import noise_frames, write_video
from helpers.tiny_models import read_video

from detector.distributed.media import (
    SEEK_FAST,
    SEEK_SEQUENTIAL,
    RangeReader,
    frame_digest,
)


def _noise_video(path: Path, n: int = 40) -> list[np.ndarray]:
    """An mp4v video of distinct noisy frames (inter-coded: a seek must decode from a key
    frame); returns the frames as a sequential read decodes them."""
    base = noise_frames(1, (64, 48))[0]

    def frame(i: int) -> np.ndarray:
        img = base.copy()
        cv2.rectangle(img, (i, 10), (i + 12, 30), (255, 255, 255), -1)
        return img

    write_video(path, (frame(i) for i in range(n)), 25.0, "mp4v")
    frames = read_video(path)[1]
    assert len(frames) == n
    return frames


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
