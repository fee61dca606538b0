"""``Detector.stream``: ordered results from the app's pipeline, and no thread left behind."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from helpers.media import grey_index, make_video

import detector
from detector.errors import ConfigError, SourceError


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_sample_video_in_order_with_names(model, sample_video: Path) -> None:
    with model.stream(sample_video, max_frames=25) as results:
        assert str(results.info.kind) == "video" and not results.info.live
        got = list(results)
    assert [r.frame.index for r in got] == list(range(25))
    assert all(isinstance(r, detector.FrameResult) and r.fresh for r in got)
    assert all(r.detections.labels is not None for r in got)
    people = sum(list(r.detections.labels).count("person") for r in got)
    assert people >= 25  # vtest.avi: several people walking in every frame
    assert results.stats is not None and results.stats.frames_processed == 25


def test_frames_in_flight_keep_their_order(model, tmp_path: Path) -> None:
    video = make_video(tmp_path / "grey.avi", n=30)  # frame i has grey level 8 i
    results = list(model.stream(video, workers=2, buffer=2))
    assert [r.frame.index for r in results] == list(range(30))
    assert [grey_index(r.frame.image) for r in results] == list(range(30))


def test_break_leaves_no_thread(model, sample_video: Path) -> None:
    before = _threads()
    seen = 0
    for result in model.stream(sample_video):
        seen += 1
        assert any(t.name.startswith("detector-") for t in _threads() - before)
        if result.frame.index == 5:
            break
    assert seen == 6
    assert _threads() - before == set()


def test_close_and_errors_leave_no_thread(model, sample_video: Path) -> None:
    before = _threads()
    stream = model.stream(sample_video, detect_every=3)
    first = [next(stream) for _ in range(6)]
    stream.close()
    assert _threads() - before == set()
    assert [r.fresh for r in first] == [True, False, False, True, False, False]
    assert [r.detected_index for r in first] == [0, 0, 0, 3, 3, 3]
    with pytest.raises(RuntimeError, match="boom"):
        for _ in model.stream(sample_video):
            raise RuntimeError("boom")
    assert _threads() - before == set()


def test_tracking_gives_ids(model, sample_video: Path) -> None:
    pytest.importorskip("trackers")
    results = list(model.stream(sample_video, track="bytetrack", detect_every=2, max_frames=20))
    assert len(results) == 20
    ids = [r.detections.track_ids for r in results]
    assert all(i is not None for i in ids)
    assert any((i > 0).any() for i in ids if i is not None and len(i))


def test_bad_stream_settings(model, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.backend"):
        model.stream(tmp_path, backend="openvino")
    with pytest.raises(SourceError, match="does not exist"):
        model.stream(tmp_path / "missing.mp4")
    with pytest.raises(ConfigError, match="track"):
        model.stream(tmp_path / "missing.mp4", track="kalman")
