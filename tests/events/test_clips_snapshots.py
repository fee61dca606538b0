"""Clips around events (H.264 from a bounded buffer of encoded frames) decode with PyAV, last
pre_s + post_s within one GOP and play in Chromium; snapshots keep each object's best frame."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
from helpers.browser import probe_video
from helpers.event_scenes import FPS, LABELS, run_scene
from helpers.moving_squares import Square

from detector.events.clips import ClipRecorder
from detector.events.options import ClipSpec
from detector.events.snapshots import SnapshotKeeper
from detector.events.spec import LineSpec
from detector.outputs.video import GOP_S
from detector.types import SourceInfo, SourceKind

RED, ORANGE = (0, 0, 255), (0, 140, 255)
LINE = LineSpec("mid", (160, 0), (160, 239))


def _clip_scene(tmp_path: Path, spec: ClipSpec):
    # two cars cross x = 160: one on frame ~25 (2.5 s), one on frame ~96 (9.6 s)
    squares = [Square(RED, 3, (22, 10), (5, 0)), Square(ORANGE, 3, (-330, 110), (5, 0))]
    info = SourceInfo("scene", SourceKind.VIDEO, False, 320, 240, FPS, 130)
    clips = ClipRecorder(tmp_path / "clips", "scene", spec, info.fps, live=False)
    scene = run_scene(tmp_path, squares, 130, lines=[LINE], clips=clips, frame_sinks=[clips])
    clips.close()
    return scene, clips


def _decode(path: Path) -> tuple[int, float]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return len(frames), float(frames[-1].time - frames[0].time) + 1 / FPS


def test_a_clip_per_event_with_the_promised_length(tmp_path, page):
    spec = ClipSpec(pre_s=2.0, post_s=3.0)
    scene, clips = _clip_scene(tmp_path, spec)
    crosses = scene.sink.of("cross")
    assert [e["frame"] for e in crosses] == [25, 96]
    names = [e["clip"] for e in crosses]
    assert len(set(names)) == 2 and names == sorted(names)  # file names sort by time
    files = sorted((tmp_path / "clips").glob("*.mp4"))
    assert [f"clips/{f.name}" for f in files] == names
    for f in files:
        frames, seconds = _decode(f)
        # from the keyframe at or before pre_s earlier to post_s after: within one GOP
        assert spec.pre_s + spec.post_s <= seconds + 1 / FPS
        assert seconds <= spec.pre_s + spec.post_s + GOP_S + 1 / FPS, seconds
        assert frames == round(seconds * FPS)
    # what the clip shows is the scene around the event: the crossing car at its frame
    with av.open(str(files[0])) as c:
        first = next(c.decode(video=0)).to_ndarray(format="bgr24")
    assert first.shape == (240, 320, 3)
    d = clips.describe()
    assert d["clips"] == 2 and d["frames_dropped"] == 0 and d["failed"] == 0
    # the buffer holds about pre_s + one GOP of encoded frames, not the run
    assert 0 < d["buffer_peak_bytes"] < sum(f.stat().st_size for f in files)
    probe = probe_video(page, tmp_path / "clips", files[0].name)
    assert probe["error"] is None and probe["readyState"] >= 2, probe
    assert abs(probe["duration"] - _decode(files[0])[1]) < 0.25, probe


def test_events_close_together_share_a_clip_and_retention_applies(tmp_path):
    spec = ClipSpec(pre_s=1.0, post_s=2.0, max_size_mb=0.000001)  # keeps only the newest
    scene, clips = _clip_scene(tmp_path, spec)
    assert len({e["clip"] for e in scene.sink.of("cross")}) == 2
    assert clips.describe()["deleted_by_retention"] >= 1
    left = list((tmp_path / "clips").glob("*.mp4"))
    assert len(left) <= 1
    spec = ClipSpec(pre_s=1.0, post_s=8.0, max_s=60.0)
    (tmp_path / "b").mkdir()
    scene, clips = _clip_scene(tmp_path / "b", spec)
    # 7 s apart, post_s 8: the second crossing extends the first clip
    assert len({e["clip"] for e in scene.sink.of("cross")}) == 1


def test_best_snapshot_per_object(tmp_path):
    squares = [Square(RED, 3, (22, 10), (5, 0)), Square(ORANGE, 1, (60, 150), (0, 0))]
    keeper = SnapshotKeeper(tmp_path / "snapshots", "scene", LABELS)
    scene = run_scene(tmp_path, squares, 30, snapshots=keeper)
    keeper.close()
    shots = scene.sink.of("snapshot")
    assert {e["track_id"] for e in shots} == {e["track_id"] for e in scene.sink.of("new")}
    files = sorted(p.name for p in (tmp_path / "snapshots").glob("*.jpg"))
    assert len(files) == 4  # a frame and a crop per object
    for e in shots:
        assert e["snapshot"].startswith("snapshots/") and e["box"][0] >= 2
    standing = next(f for f in files if f.endswith("-person-crop.jpg"))
    crop = cv2.imread(str(tmp_path / "snapshots" / standing))
    assert abs(crop.shape[0] - 40) <= 2 and abs(crop.shape[1] - 40) <= 2
    # the crop is the orange square (its light or dark blocks)
    assert np.abs(crop.reshape(-1, 3).mean(0) - np.array(ORANGE) + 15).max() < 40
    assert keeper.describe()["objects"] == 2
