"""The H.264 writer on PyAV: timestamps, frame-rate fallback, sizes, the ``+faststart`` remux,
the codec choice and its fallback, a SIGKILL mid-write, and playback in a real browser."""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
from helpers.browser import probe_video

from detector.errors import SinkError
from detector.outputs import video as av_video
from detector.outputs.video import AvVideoSink, open_video_sink, sane_fps
from detector.types import Detections, Frame, FrameResult

REPO = Path(__file__).resolve().parents[2]


def _result(index: int, t_s: float, w: int = 64, h: int = 48) -> FrameResult:
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : (index * 3) % w] = 200  # a moving edge: frames differ
    image[..., 2] = index % 256
    return FrameResult(Frame(index, t_s, image), Detections.empty(), True, index)


def _write(sink: AvVideoSink, results: list[FrameResult]) -> None:
    with sink:
        for r in results:
            sink.write(r, r.frame.image)


def _decoded(path: Path) -> tuple[str, str, list[float], float]:
    """codec name, pixel format, each frame's time (s) and the container's duration (s)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        times = [float(f.time) for f in c.decode(stream)]
        return stream.codec_context.name, stream.codec_context.format.name, times, c.duration / 1e6


def test_file_frames_are_stamped_index_over_fps_and_moov_comes_first(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    sink = AvVideoSink(path, 10.0)
    _write(sink, [_result(i + 5, 1000.0 + 7 * i) for i in range(30)])  # capture times ignored
    codec, pix_fmt, times, duration = _decoded(path)
    assert (codec, pix_fmt) == ("h264", "yuv420p")
    assert times == pytest.approx([i / 10 for i in range(30)])
    assert duration == pytest.approx(3.0)
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: the index first
    assert sink.describe() | {"duration_s": 3.0} == {
        "path": "a.mp4", "frames": 30, "fps": 10.0, "codec": "h264", "size": [64, 48],
        "layout": "faststart", "duration_s": 3.0, "timestamps": "index / fps",
    }  # fmt: skip


def test_live_frames_keep_their_capture_times_across_drops(tmp_path: Path) -> None:
    # 10 s of a 20 fps stream of which only every third frame, and a 2 s gap, reached us.
    t0 = 5000.0
    kept = [i for i in range(200) if i % 3 == 0 and not 80 <= i < 120]
    path = tmp_path / "live.mp4"
    sink = AvVideoSink(path, 20.0, live=True)
    _write(sink, [_result(i, t0 + i / 20) for i in kept])
    _, _, times, duration = _decoded(path)
    assert times == pytest.approx([i / 20 for i in kept], abs=1e-3)
    assert duration == pytest.approx(kept[-1] / 20 + 1 / 20, abs=1e-3)  # ~10 s, not 67 / 20
    assert sink.describe()["timestamps"] == "capture time"


@pytest.mark.parametrize("fps", [None, 0.0, -5.0, math.nan, math.inf, 0.001, 1e6])
def test_absurd_frame_rates_fall_back_to_30_with_a_warning(
    fps: float | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert sane_fps(fps, "x.mp4") == 30.0
    assert "no usable frame rate" in caplog.text and "x.mp4" in caplog.text


def test_a_time_lapse_keeps_its_rate(tmp_path: Path) -> None:
    path = tmp_path / "lapse.mp4"  # a frame every 2 s: written at 30 fps it played 60x fast
    _write(AvVideoSink(path, 0.5), [_result(i, 0.0) for i in range(4)])
    _, _, times, duration = _decoded(path)
    assert times == pytest.approx([0.0, 2.0, 4.0, 6.0], abs=1e-3)
    assert duration == pytest.approx(8.0, abs=1e-3)


def test_a_zero_fps_source_still_gets_a_video(tmp_path: Path) -> None:
    path = tmp_path / "z.mp4"
    _write(AvVideoSink(path, 0.001), [_result(i, 0.0) for i in range(6)])
    assert _decoded(path)[2] == pytest.approx([i / 30 for i in range(6)])


def test_odd_sizes_are_cropped_and_other_sizes_resized(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "odd.mp4"
    sink = AvVideoSink(path, 10.0)
    with caplog.at_level(logging.WARNING):
        _write(sink, [_result(0, 0, 65, 49), _result(1, 0, 65, 49), _result(2, 0, 100, 80)])
    assert sink.size == (64, 48) and sink.frames_resized == 1
    assert "even sizes" in caplog.text and "resizing" in caplog.text
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert [f.shape for f in frames] == [(48, 64, 3)] * 3


def test_no_frames_no_file_and_close_is_idempotent(tmp_path: Path) -> None:
    sink = AvVideoSink(tmp_path / "none.mp4", 25.0)
    sink.close()
    sink.close()
    assert not (tmp_path / "none.mp4").exists()
    with pytest.raises(SinkError, match="closed"):
        sink.write(None, np.zeros((4, 4, 3), np.uint8))


def test_a_failed_remux_keeps_the_fragmented_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(path: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(av_video, "remux_faststart", fail)
    path = tmp_path / "frag.mp4"
    sink = AvVideoSink(path, 10.0)
    with caplog.at_level(logging.WARNING):
        _write(sink, [_result(i, 0) for i in range(25)])
    assert sink.layout == "fragmented" and "kept fragmented" in caplog.text
    assert "No space left on device" in caplog.text
    data = path.read_bytes()
    assert b"moof" in data
    assert _decoded(path)[2] == pytest.approx([i / 10 for i in range(25)])
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_avi_is_h264_in_avi(tmp_path: Path) -> None:
    path = tmp_path / "a.avi"
    sink = AvVideoSink(path, 10.0)
    _write(sink, [_result(i, 0) for i in range(12)])
    assert sink.layout == "avi"
    assert _decoded(path)[0] == "h264" and len(_decoded(path)[2]) == 12


def test_codec_choice(tmp_path: Path) -> None:
    assert isinstance(open_video_sink(tmp_path / "a.mp4", 25.0, "h264"), AvVideoSink)
    mp4v = open_video_sink(tmp_path / "b.mp4", 25.0, "mp4v")
    mjpg = open_video_sink(tmp_path / "c.avi", 25.0, "MJPG")
    assert (type(mp4v).__name__, mp4v.codec, mjpg.codec) == ("VideoSink", "mp4v", "MJPG")
    with pytest.raises(SinkError, match="unknown video codec 'vp9'") as e:
        open_video_sink(tmp_path / "d.mp4", 25.0, "vp9")
    assert "h264, mp4v, mjpg" in (e.value.hint or "")
    with pytest.raises(SinkError, match="unknown suffix"):
        open_video_sink(tmp_path / "d.mkv", 25.0, "h264")


def test_without_libx264_opencv_writes_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(av_video, "h264_problem", lambda: "this PyAV build has no libx264")
    monkeypatch.setattr(av_video, "_warned_fallback", type(av_video._warned_fallback)())
    with caplog.at_level(logging.WARNING):
        a = open_video_sink(tmp_path / "a.mp4", 25.0, "h264")
        b = open_video_sink(tmp_path / "b.avi", 25.0, "h264")
    assert (a.codec, b.codec) == ("mp4v", "MJPG")
    assert caplog.text.count("cannot write H.264") == 1
    r = _result(0, 0)
    with a:
        a.write(r, r.frame.image)
    assert _decoded(tmp_path / "a.mp4")[0] == "mpeg4"


_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from detector.outputs.video import AvVideoSink
    from detector.types import Detections, Frame, FrameResult
    sink = AvVideoSink(sys.argv[1], 20.0)
    for i in range(100000):
        image = np.zeros((120, 160, 3), np.uint8)
        image[:, : (i * 3) % 160] = 200
        sink.write(FrameResult(Frame(i, i / 20, image), Detections.empty(), True, i), image)
        print(i + 1, flush=True)
        time.sleep(0.005)
    """
)


def _write_then_sigkill(path: Path, frames: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if int(line) >= frames:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_sigkill_mid_write_leaves_all_but_the_last_second(tmp_path: Path) -> None:
    path = tmp_path / "killed.mp4"
    _write_then_sigkill(path, 90)
    codec, _, times, _ = _decoded(path)
    assert codec == "h264"
    assert 90 - 21 <= len(times) <= 90 + 5  # a fragment a second (20 frames) at most is lost
    assert times == pytest.approx([i / 20 for i in range(len(times))])


def test_chromium_plays_the_faststart_fragmented_and_killed_files(
    tmp_path: Path, page: object
) -> None:
    for name, faststart in (("fast.mp4", True), ("frag.mp4", False)):
        sink = AvVideoSink(tmp_path / name, 25.0, faststart=faststart)
        _write(sink, [_result(i, 0, 320, 240) for i in range(100)])
        assert sink.layout == ("faststart" if faststart else "fragmented")
    _write_then_sigkill(tmp_path / "killed.mp4", 70)
    killed_frames = len(_decoded(tmp_path / "killed.mp4")[2])
    for name, duration_s in (
        ("fast.mp4", 4.0),
        ("frag.mp4", 4.0),
        ("killed.mp4", killed_frames / 20),
    ):
        seen = probe_video(page, tmp_path, name)
        assert seen["error"] is None, (name, seen)
        assert seen["readyState"] >= 2, (name, seen)
        assert seen["duration"] == pytest.approx(duration_s, abs=0.06), (name, seen)
        assert (seen["width"], seen["height"]) == (
            (320, 240) if name != "killed.mp4" else (160, 120)
        )
