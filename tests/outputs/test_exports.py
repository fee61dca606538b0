"""COCO / CSV / MOT exports: read back with the tools their users use (pycocotools, csv,
numpy), they hold exactly the detections of the JSON lines, and stay valid after a stop."""

from __future__ import annotations

import csv
import json
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from detector.labels import LabelMap
from detector.outputs.exports import (
    CSV_COLUMNS,
    CocoSink,
    CsvSink,
    MotSink,
    coco_image_id,
)
from detector.outputs.jsonl import JsonlSink
from detector.types import Detections, Frame, FrameResult

LABELS = LabelMap({1: "person", 3: "car", 18: "dog"})


def _results(n: int, names: bool = False) -> list[FrameResult]:
    """Frames with 0-3 detections each (frame 2 has none), some carried, some unknown ids."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        k = 0 if i == 2 else 1 + i % 3
        x1y1 = rng.uniform(0, 300, (k, 2))
        wh = rng.uniform(5, 100, (k, 2))
        d = Detections(
            np.hstack([x1y1, x1y1 + wh]),
            rng.uniform(0.3, 1.0, k),
            rng.choice([1, 3, 18, 44], k),  # 44: not in the label map
        )
        image = np.zeros((480, 640, 3), np.uint8)
        name = f"img {i:02d}.jpg" if names else None
        fresh = i % 2 == 0
        out.append(FrameResult(Frame(i, 100.0 + i / 10, image, name), d, fresh, i - (not fresh)))
    return out


def _jsonl_rows(path: Path) -> list[tuple[int, int, float, list[float]]]:
    """(frame, class_id, score, box_xyxy) per detection, from the JSON lines."""
    rows = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        for det in rec["detections"]:
            rows.append((rec["frame"], det["class_id"], det["score"], det["box_xyxy"]))
    return rows


def _run(tmp_path: Path, results: list[FrameResult], stop_after: int | None = None) -> None:
    """Write every export and the JSON lines; raise KeyboardInterrupt after ``stop_after``."""
    with ExitStack() as stack:
        sinks = [
            stack.enter_context(JsonlSink(tmp_path / "detections.jsonl", LABELS, "clip.mp4")),
            stack.enter_context(
                CocoSink(tmp_path / "coco_results.json", LABELS, "clip.mp4", video_stem="clip")
            ),
            stack.enter_context(CsvSink(tmp_path / "detections.csv", LABELS, "clip.mp4")),
            stack.enter_context(MotSink(tmp_path / "mot.txt", labels=LABELS)),
        ]
        for n, r in enumerate(results):
            if stop_after is not None and n == stop_after:
                raise KeyboardInterrupt
            for s in sinks:
                s.write(r, r.frame.image)


def test_coco_results_load_in_pycocotools_and_match_the_json_lines(tmp_path: Path) -> None:
    results = _results(12)
    _run(tmp_path, results)
    expected = _jsonl_rows(tmp_path / "detections.jsonl")
    gt = COCO(str(tmp_path / "coco_images.json"))
    assert gt.getImgIds() == [coco_image_id(i) for i in range(12)]
    assert gt.loadImgs(3)[0] | {} == {
        "id": 3, "file_name": "clip_000002", "width": 640, "height": 480, "frame": 2,
    }  # fmt: skip
    assert {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())} == dict(LABELS.names)
    dt = gt.loadRes(str(tmp_path / "coco_results.json"))
    anns = [dt.anns[i] for i in sorted(dt.anns)]
    assert len(anns) == len(expected) > 10
    for ann, (frame, cid, score, (x1, y1, x2, y2)) in zip(anns, expected, strict=True):
        assert ann["image_id"] == frame + 1 and ann["category_id"] == cid
        assert ann["score"] == score
        assert ann["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.051)


def test_image_folders_keep_their_file_names(tmp_path: Path) -> None:
    _run(tmp_path, _results(3, names=True))
    images = json.loads((tmp_path / "coco_images.json").read_text())["images"]
    assert [(i["id"], i["file_name"]) for i in images] == [
        (1, "img 00.jpg"), (2, "img 01.jpg"), (3, "img 02.jpg"),
    ]  # fmt: skip


def test_csv_rows_match_the_json_lines(tmp_path: Path) -> None:
    _run(tmp_path, _results(9, names=True))
    with (tmp_path / "detections.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        rows = list(reader)
    expected = _jsonl_rows(tmp_path / "detections.jsonl")
    assert len(rows) == len(expected)
    lines = {json.loads(x)["frame"]: json.loads(x) for x in (tmp_path / "detections.jsonl").open()}
    for row, (frame, cid, score, box) in zip(rows, expected, strict=True):
        assert (int(row["frame"]), int(row["class_id"]), float(row["score"])) == (frame, cid, score)
        assert [float(row[k]) for k in ("x1", "y1", "x2", "y2")] == box
        assert row["label"] == LABELS.name(cid)
        assert row["image_name"] == lines[frame]["name"]
        assert float(row["timestamp_s"]) == lines[frame]["timestamp_s"]
        assert row["source"] == "clip.mp4" and row["track_id"] == ""


def test_mot_lines_match_the_json_lines(tmp_path: Path) -> None:
    _run(tmp_path, _results(9))
    mot = np.loadtxt(tmp_path / "mot.txt", delimiter=",", ndmin=2)
    expected = _jsonl_rows(tmp_path / "detections.jsonl")
    assert mot.shape == (len(expected), 10)
    for line, (frame, _, score, (x1, y1, x2, y2)) in zip(mot, expected, strict=True):
        assert line[0] == frame + 1 and line[1] == -1  # 1-based frames; no tracker: id -1
        assert line[2:6] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.051)
        assert line[6] == pytest.approx(score)
        assert list(line[7:]) == [-1, -1, -1]
    for cid in {c for _, c, _, _ in expected}:  # one file a class, as TrackEval reads them
        name = LABELS.name(cid).replace(" ", "_")  # "class 44" -> class_44.txt
        mine = np.loadtxt(tmp_path / "mot" / f"{name}.txt", delimiter=",", ndmin=2)
        assert len(mine) == sum(1 for _, c, _, _ in expected if c == cid)


def _tracked(ids: list[int], scores: list[float]) -> FrameResult:
    n = len(ids)
    xyxy = np.array([[10 + 20 * i, 10, 30 + 20 * i, 40] for i in range(n)], np.float32)
    d = Detections(xyxy, np.array(scores, np.float32), np.ones(n, np.int32), np.array(ids))
    return FrameResult(Frame(0, 0.0, np.zeros((64, 128, 3), np.uint8)), d, True, 0)


def test_track_ids_reach_csv_and_mot(tmp_path: Path) -> None:
    r = _tracked([7, -1], [0.9, 0.8])  # -1: the tracker has not confirmed that track yet
    with CsvSink(tmp_path / "d.csv", LABELS, "x") as c, MotSink(tmp_path / "m.txt") as m:
        c.write(r)
        m.write(r)
    rows = [row["track_id"] for row in csv.DictReader((tmp_path / "d.csv").open())]
    assert rows == ["7", "-1"]  # unconfirmed: -1, as in MOT (the JSON lines say null)
    # MOT: one row per confirmed track (TrackEval refuses several -1 rows in one frame)
    assert np.loadtxt(tmp_path / "m.txt", delimiter=",", ndmin=2)[:, 1].tolist() == [7]


def test_mot_keeps_the_users_threshold_unless_all_rows(tmp_path: Path) -> None:
    # ByteTrack shows low-score matches that extend a track: not detections at the threshold
    r = _tracked([3, 4, -1, -1], [0.9, 0.3, 0.8, 0.7])
    with (
        MotSink(tmp_path / "m.txt", min_score=0.5) as m,
        MotSink(tmp_path / "all.txt", min_score=0.5, all_rows=True) as everything,
    ):
        m.write(r)
        everything.write(r)
    assert np.loadtxt(tmp_path / "m.txt", delimiter=",", ndmin=2)[:, 1].tolist() == [3]
    assert m.describe()["rows_left_out"] == 3
    assert np.loadtxt(tmp_path / "all.txt", delimiter=",", ndmin=2)[:, 1].tolist() == [3, 4, -1, -1]


def test_a_stop_mid_run_leaves_valid_files_with_the_frames_written(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, _results(12), stop_after=5)
    expected = _jsonl_rows(tmp_path / "detections.jsonl")
    assert {f for f, *_ in expected} <= set(range(5))
    gt = COCO(str(tmp_path / "coco_images.json"))
    assert gt.getImgIds() == [1, 2, 3, 4, 5]
    assert len(gt.loadRes(str(tmp_path / "coco_results.json")).anns) == len(expected)
    assert len(list(csv.DictReader((tmp_path / "detections.csv").open()))) == len(expected)
    assert len(np.loadtxt(tmp_path / "mot.txt", delimiter=",", ndmin=2)) == len(expected)


def test_no_detections_at_all_is_still_valid(tmp_path: Path) -> None:
    r = FrameResult(Frame(0, 0.0, np.zeros((4, 4, 3), np.uint8)), Detections.empty(), True, 0)
    with CocoSink(tmp_path / "c.json", LABELS, "x") as c:
        c.write(r)
    assert json.loads((tmp_path / "c.json").read_text()) == []
    assert c.describe() == {
        "path": "c.json", "frames": 1, "detections": 0, "images_file": "coco_images.json",
        "images": 1, "image_ids": "frame index + 1",
    }  # fmt: skip
