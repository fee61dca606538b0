"""The tracker stage on moving squares: stable ids through a gap and a crossing, moving
carried boxes, capture-time prediction for live sources, ids in the JSON lines."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers.moving_squares import (
    ColourDetector,
    Square,
    crossing_squares,
    draw_squares,
    write_squares_video,
)

from detector.boxes import iou_matrix
from detector.labels import LabelMap
from detector.outputs.exports import CsvSink, MotSink
from detector.outputs.jsonl import JsonlSink
from detector.pipeline.stages import PipelineOptions, run_pipeline
from detector.sources import open_source
from detector.track import TrackSettings, TrackStage
from detector.types import Detections, Frame, FrameResult, SourceInfo, SourceKind

FRAMES = 40
GAP = (8, 9, 10)  # the detector misses every square on these frames
SIZE = (320, 240)
TIMEOUT_S = 60.0


def run_tracked(
    video,
    squares,
    kind: str,
    every: int = 1,
    missing=(),
    jsonl=None,
    motion: str = "flow",
    sinks=(),
):
    """The pipeline on ``video`` with the stage in front of ``consume``: results, stage."""
    results: list[FrameResult] = []
    with open_source(str(video)) as source:
        stage = TrackStage(TrackSettings(kind, motion=motion), source.info, detect_every=every)

        def consume(result: FrameResult) -> bool:
            results.append(result)
            if jsonl is not None:
                jsonl.write(result)
            for sink in sinks:
                sink.write(result, None)
            return True

        out: dict[str, object] = {}

        def target() -> None:
            try:
                out["stats"] = run_pipeline(
                    source,
                    ColourDetector(squares, missing),
                    stage.wrap(consume),
                    PipelineOptions(detect_every=every, workers=2),
                )
            except BaseException as exc:  # re-raised below, on the test's thread
                out["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(TIMEOUT_S)
        assert not thread.is_alive(), "pipeline did not finish"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return results, stage


def owner(squares: list[Square], index: int, box: np.ndarray) -> int:
    """Which square a box is on (best IoU with the true boxes of frame ``index``)."""
    truth = np.stack([sq.box(index) for sq in squares])
    return int(np.argmax(iou_matrix(box[None], truth)[0]))


def ids_per_square(squares, results) -> dict[int, set[int]]:
    seen: dict[int, set[int]] = {i: set() for i in range(len(squares))}
    for r in results:
        d = r.detections
        assert d.track_ids is not None
        for box, tid in zip(d.xyxy, d.track_ids, strict=True):
            if tid >= 0:
                seen[owner(squares, r.frame.index, box)].add(int(tid))
    return seen


@pytest.mark.parametrize("kind", ["bytetrack", "sort"])
def test_ids_stable_through_a_gap_and_a_crossing(tmp_path, kind):
    squares = crossing_squares()
    video = write_squares_video(tmp_path / "squares.avi", squares, FRAMES, size=SIZE)
    results, _ = run_tracked(video, squares, kind, missing=GAP)
    assert [r.frame.index for r in results] == list(range(FRAMES))
    # the gap is real: nothing shown on the missed frames
    assert all(len(results[i].detections) == 0 for i in GAP)
    # the two class-1 squares really cross: their true boxes overlap in the middle
    a, b = squares[0], squares[1]
    assert max(iou_matrix(a.box(i)[None], b.box(i)[None])[0, 0] for i in range(FRAMES)) > 0.3
    seen = ids_per_square(squares, results)
    assert all(len(ids) == 1 for ids in seen.values()), seen
    assert len(set().union(*seen.values())) == len(squares), seen
    # every square has its id on every frame it was detected, from its second detection on
    for r in results[2:]:
        if r.frame.index not in GAP:
            assert (r.detections.track_ids >= 1).all(), (r.frame.index, r.detections)


@pytest.mark.parametrize("motion", ["flow", "kalman"])
def test_carried_boxes_move_with_the_objects(tmp_path, motion):
    squares = crossing_squares()
    video = write_squares_video(tmp_path / "squares.avi", squares, FRAMES, size=SIZE)
    every = 4
    results, stage = run_tracked(video, squares, "bytetrack", every=every, motion=motion)
    summary = stage.summary()
    if motion == "flow":  # the pixels moved the boxes (textured squares)
        assert summary["carried_boxes_moved_by_flow"] > 0.9 * 3 * (FRAMES - FRAMES // every)
    else:
        assert summary["carried_boxes_moved_by_flow"] == 0
    reference = ColourDetector(squares)  # what the detector would have found on every frame
    tracked_ious: list[float] = []
    static_ious: list[float] = []
    for r in results:
        i = r.frame.index
        assert r.fresh == (i % every == 0)
        if r.fresh or i < 2 * every:  # velocity is known from the second model run on
            continue
        assert r.detected_index == i - i % every
        d = r.detections
        static = results[r.detected_index].detections
        assert np.array_equal(d.track_ids, static.track_ids)  # same rows, moved
        ref = reference(Frame(i, 0.0, draw_squares(squares, i, SIZE)))[0]
        sim = iou_matrix(ref.xyxy, d.xyxy) * (ref.class_ids[:, None] == d.class_ids[None, :])
        for k in range(len(ref)):
            j = int(np.argmax(sim[k]))
            tracked_ious.append(float(sim[k, j]))
            static_ious.append(float(iou_matrix(ref.xyxy[k][None], static.xyxy[j][None])[0, 0]))
    assert len(tracked_ious) > 40
    # apart from the few frames where one square hides part of the other (its visible box
    # changes shape), every carried box sits on its square
    good = np.mean(np.array(tracked_ious) >= 0.9)
    assert good >= 0.85, sorted(tracked_ious)
    assert np.mean(tracked_ious) > np.mean(static_ious) + 0.2, (
        np.mean(tracked_ious),
        np.mean(static_ious),
    )


def test_live_source_predicts_at_capture_time_across_dropped_frames():
    """A live source's dropped frames leave a gap in capture time, not in the index."""
    sq = Square((0, 0, 255), 1, (20, 100), (6, 0))  # 6 px a frame at 10 fps: 60 px/s
    info = SourceInfo("0", SourceKind.CAMERA, True, 320, 240, 10.0)
    stage = TrackStage(TrackSettings("bytetrack"), info)
    detect = ColourDetector([sq])
    t0 = 1000.0  # monotonic clocks do not start at 0
    for i in range(6):  # fresh: the velocity is learned
        frame = Frame(i, t0 + i / 10, draw_squares([sq], i, (320, 240)))
        stage(FrameResult(frame, detect(frame)[0], True, i))
    # capture dropped three frames: the next frame the pipeline delivers is index 6 but
    # was captured 0.4 s after frame 5, where the square really is at position 9
    late = Frame(6, t0 + 0.9, draw_squares([sq], 9, (320, 240)))
    out = stage(FrameResult(late, Detections.empty(), False, 5)).detections
    assert len(out) == 1
    centre = (out.xyxy[0, 0] + out.xyxy[0, 2]) / 2
    true_centre = (sq.box(9)[0] + sq.box(9)[2]) / 2
    assert abs(centre - true_centre) < 4.0, (centre, true_centre)


def test_file_source_uses_media_time_not_read_time():
    """Frames of a file read in a burst still move by index / fps."""
    sq = Square((0, 0, 255), 1, (20, 100), (6, 0))
    info = SourceInfo("a.avi", SourceKind.VIDEO, False, 320, 240, 10.0, 40)
    stage = TrackStage(TrackSettings("bytetrack"), info)
    detect = ColourDetector([sq])
    for i in range(6):
        frame = Frame(i, 5.0, draw_squares([sq], i, (320, 240)))  # all read at once
        stage(FrameResult(frame, detect(frame)[0], True, i))
    out = stage(
        FrameResult(Frame(8, 5.0, draw_squares([sq], 8, (320, 240))), Detections.empty(), False, 5)
    ).detections
    centre = (out.xyxy[0, 0] + out.xyxy[0, 2]) / 2
    assert abs(centre - (sq.box(8)[0] + sq.box(8)[2]) / 2) < 4.0


def test_track_ids_in_json_lines(tmp_path):
    squares = crossing_squares()
    video = write_squares_video(tmp_path / "squares.avi", squares, FRAMES, size=SIZE)
    path = tmp_path / "detections.jsonl"
    with JsonlSink(path, None, str(video)) as sink:
        results, _ = run_tracked(video, squares, "bytetrack", every=2, missing=GAP, jsonl=sink)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [rec["frame"] for rec in lines] == list(range(FRAMES))
    for rec, r in zip(lines, results, strict=True):
        assert rec["fresh"] == r.fresh
        got = [d["track_id"] for d in rec["detections"]]
        want = [int(t) if t >= 0 else None for t in r.detections.track_ids]
        assert got == want
    ids = {d["track_id"] for rec in lines for d in rec["detections"]} - {None}
    assert ids == {1, 2, 3}
    # read back, each id keeps its class
    classes = {}
    for rec in lines:
        for d in rec["detections"]:
            if d["track_id"] is not None:
                assert classes.setdefault(d["track_id"], d["class_id"]) == d["class_id"]


def test_mot_and_csv_exports_read_back_with_the_ids(tmp_path):
    squares = crossing_squares()
    video = write_squares_video(tmp_path / "squares.avi", squares, FRAMES, size=SIZE)
    with (
        MotSink(tmp_path / "mot.txt") as mot,
        CsvSink(tmp_path / "d.csv", LabelMap({}), "sq") as table,
    ):
        results, _ = run_tracked(
            video, squares, "bytetrack", every=2, missing=GAP, sinks=(mot, table)
        )
    rows = np.loadtxt(tmp_path / "mot.txt", delimiter=",", ndmin=2)
    assert rows.shape[1] == 10
    expected = []
    for r in results:
        d = r.detections
        for box, score, tid in zip(d.xyxy, d.scores, d.track_ids, strict=True):
            if tid < 0:  # unconfirmed: not in a MOT file (one row per track and frame)
                continue
            x1, y1, x2, y2 = (round(float(v), 1) for v in box)
            expected.append([r.frame.index + 1, tid, x1, y1, x2 - x1, y2 - y1, score])
    assert np.allclose(rows[:, :7], np.array(expected), atol=0.11)
    assert (rows[:, 7:] == -1).all()
    frame_ids = [(int(f), int(t)) for f, t in rows[:, :2]]
    assert len(frame_ids) == len(set(frame_ids))  # each id once a frame: what TrackEval checks
    # each MOT id is one square for the whole video, through the gap and the crossing
    for tid in set(rows[:, 1].astype(int)) - {-1}:
        mine = rows[rows[:, 1] == tid]
        owners = {
            owner(squares, int(f) - 1, np.array([x, y, x + w, y + h], np.float32))
            for f, _, x, y, w, h in mine[:, :6]
        }
        assert len(owners) == 1, (tid, owners)
    assert set(rows[:, 1].astype(int)) == {1, 2, 3}
    import csv

    with open(tmp_path / "d.csv", newline="", encoding="utf-8") as f:
        table_rows = list(csv.DictReader(f))
    confirmed = [int(r["track_id"]) for r in table_rows if int(r["track_id"]) >= 0]
    assert confirmed == [int(t) for t in rows[:, 1]]


MOT_VENV = Path(__file__).resolve().parents[2] / ".venv-mot" / "bin" / "python"
MOTMETRICS = """
import sys, motmetrics as mm
gt = mm.io.loadtxt(sys.argv[1], fmt="mot15-2D", min_confidence=1)
ts = mm.io.loadtxt(sys.argv[2], fmt="mot15-2D")
acc = mm.utils.compare_to_groundtruth(gt, ts, "iou", distth=0.5)
summary = mm.metrics.create().compute(acc, metrics=["idf1", "mota", "num_switches"])
print(*(float(summary[k].iloc[0]) for k in ("idf1", "mota", "num_switches")))
"""


def _ground_truth(squares: list[Square], frames: int, path: Path, class_id: int = 0) -> Path:
    """MOT ground truth: ``frame, id, x, y, w, h, 1, 1, 1`` per square (of ``class_id``, or
    every class) and frame."""
    rows = []
    for i in range(frames):
        for k, sq in enumerate(squares):
            if class_id and sq.class_id != class_id:
                continue
            x1, y1, x2, y2 = (float(v) for v in sq.box(i))
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, SIZE[0]), min(y2, SIZE[1])
            if x2 > x1 and y2 > y1:
                rows.append(f"{i + 1},{k + 1},{x1},{y1},{x2 - x1},{y2 - y1},1,1,1\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(rows))
    return path


def test_the_mot_tools_accept_the_mot_file(tmp_path: Path) -> None:
    """TrackEval (which refuses an id twice in one frame) and py-motmetrics (its own venv:
    numpy < 2) read the file and score it; IDF1 stays a fraction (unconfirmed -1 rows made
    py-motmetrics report 1.0015)."""
    trackeval = pytest.importorskip("trackeval")
    squares = crossing_squares()
    video = write_squares_video(tmp_path / "squares.avi", squares, FRAMES, size=SIZE)
    ours = tmp_path / "run" / "mot.txt"
    with MotSink(ours, min_score=0.5, labels=LabelMap({1: "red", 3: "green"})) as mot:
        run_tracked(video, squares, "bytetrack", every=2, missing=GAP, sinks=(mot,))
    # TrackEval scores one class (pedestrians) a file: the class-1 squares' own file
    tracker = tmp_path / "trackers" / "detector" / "data" / "squares.txt"
    tracker.parent.mkdir(parents=True)
    tracker.write_bytes((tmp_path / "run" / "mot" / "red.txt").read_bytes())
    _ground_truth(squares, FRAMES, tmp_path / "gt" / "squares" / "gt" / "gt.txt", class_id=1)
    gt = _ground_truth(squares, FRAMES, tmp_path / "gt_all.txt")
    dataset = trackeval.datasets.MotChallenge2DBox({
        "GT_FOLDER": str(tmp_path / "gt"), "TRACKERS_FOLDER": str(tmp_path / "trackers"),
        "TRACKERS_TO_EVAL": ["detector"], "BENCHMARK": "MOT15", "SKIP_SPLIT_FOL": True,
        "SEQ_INFO": {"squares": FRAMES}, "PRINT_CONFIG": False,
    })  # fmt: skip
    evaluator = trackeval.Evaluator({
        "USE_PARALLEL": False, "BREAK_ON_ERROR": True, "PRINT_RESULTS": False,
        "PRINT_CONFIG": False, "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False,
        "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "OUTPUT_EMPTY_CLASSES": False,
    })  # fmt: skip
    results, _ = evaluator.evaluate([dataset], [trackeval.metrics.Identity()])
    idf1 = results["MotChallenge2DBox"]["detector"]["COMBINED_SEQ"]["pedestrian"]["Identity"]
    assert 0.8 < float(idf1["IDF1"]) <= 1.0
    if not MOT_VENV.exists():
        pytest.skip("py-motmetrics' venv (.venv-mot, made by .ci/setup) is missing")
    out = subprocess.run(
        [str(MOT_VENV), "-c", MOTMETRICS, str(gt), str(ours)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    mm_idf1, mota, switches = (float(v) for v in out.stdout.split())
    assert 0.8 < mm_idf1 <= 1.0 and 0.8 < mota <= 1.0 and switches <= 2
