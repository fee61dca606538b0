"""Fault rows for video files: cut short, and headers announcing 0, tiny or absurd frame rates.

The rates are written into a real AVI's stream header (``strh`` scale/rate), the way a
damaged or hand-made file carries them; OpenCV then reports exactly that rate.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
from helpers.cli_run import RunOutputs, only_run_folder, run_cli
from helpers.tiny_models import tiny_video

from detector.sources.capture import usable_fps


def _with_rate(src: Path, dst: Path, scale: int, rate: int) -> Path:
    """A copy of AVI ``src`` whose video stream header says ``rate / scale`` fps."""
    data = bytearray(src.read_bytes())
    strh = data.find(b"strh")
    assert strh > 0 and data[strh + 8 : strh + 12] == b"vids"
    struct.pack_into("<II", data, strh + 8 + 20, scale, rate)  # dwScale, dwRate
    dst.write_bytes(data)
    return dst


def test_video_cut_short_says_where_it_ended(tmp_path: Path, tiny: list[str], runs: Path) -> None:
    whole = tiny_video(tmp_path / "whole.avi", frames=60, fps=10)
    data = whole.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])  # the header still announces 60 frames
    result = run_cli("--source", cut, *tiny)
    result.assert_ok()  # what is there is processed...
    out = RunOutputs.read(only_run_folder(runs))
    k = len(out.lines)
    assert 0 < k < 60
    note = f"ended at frame {k} of announced 60"
    assert note in result.err and note in result.out  # ...and the early end is said
    assert out.run["source_end"] == note
    assert out.video_frames == k


@pytest.mark.parametrize(
    ("scale", "rate", "written_fps"),
    [(1000, 1, 30.0), (1, 100000, 30.0), (1, 0, None)],
    ids=["0.001fps", "100000fps", "0fps"],
)
def test_unusable_header_fps_falls_back_with_a_warning(
    tmp_path: Path, tiny: list[str], runs: Path, scale: int, rate: int, written_fps: float | None
) -> None:
    clip = _with_rate(tiny_video(tmp_path / "ok.avi", frames=12, fps=10), tmp_path / "bad.avi",
                      scale, rate)  # fmt: skip
    result = run_cli("--source", clip, *tiny)
    result.assert_ok()
    out = RunOutputs.read(only_run_folder(runs))
    assert len(out.lines) == 12 and out.video_frames == 12
    video = out.run["outputs"]["video"]
    if written_fps is not None:
        assert video["fps"] == written_fps
        assert "not a usable frame rate" in result.err
    else:  # FFmpeg itself guesses a rate for a 0 header: a usable one, used as is
        assert 1 <= video["fps"] <= 1000


def test_usable_fps_refuses_nan_inf_zero_and_absurd() -> None:
    # NaN / inf cannot be written into a container OpenCV reads back; the rule is checked here.
    for raw in (math.nan, math.inf, -5.0, 0.0, 0.001, 1e5, None):
        assert usable_fps(raw) is None
    assert usable_fps(29.97) == pytest.approx(29.97)
    assert usable_fps(0.5) == 0.5
