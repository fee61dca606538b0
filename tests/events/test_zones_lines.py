"""Zones and lines on tracked moving squares: exact counts per class and direction, exact
enter / leave / loiter frames, no count from a box flickering on a zone edge, none from
unconfirmed tracks."""

from __future__ import annotations

import numpy as np
from helpers.event_scenes import FPS, LABELS, SIZE, Wobble, run_scene
from helpers.moving_squares import Square

from detector.events.spec import LineSpec, ZoneSpec
from detector.events.stage import EventStage
from detector.types import Detections, Frame, FrameResult, SourceInfo, SourceKind

RED, ORANGE, GREEN, BLUE = (0, 0, 255), (0, 140, 255), (0, 220, 0), (255, 0, 0)
CAR, PERSON = 3, 1


def road() -> list[Square]:
    """Two cars cross x=160 (one each way), a person crosses left to right, one stays."""
    return [
        Square(RED, CAR, (22, 10), (5, 0)),  # centre 42 + 5i: right of 160 from frame 24
        Square(ORANGE, CAR, (268, 70), (-5, 0)),  # centre 288 - 5i: left of 160 from frame 26
        Square(GREEN, PERSON, (32, 130), (5, 0)),  # centre 52 + 5i: right from frame 22
        Square(BLUE, PERSON, (20, 185), (0, 0)),  # stays left
    ]


def test_line_counts_in_and_out_per_class(tmp_path):
    mid = LineSpec("mid", (160, 0), (160, 239))  # top to bottom: left → right is "in"
    cars = LineSpec("cars", (160, 0), (160, 239), classes=("car",))
    scene = run_scene(tmp_path, road(), 50, lines=[mid, cars])
    counts = scene.stage.summary()["lines"]
    assert counts["mid"] == {"in": {"person": 1, "car": 1}, "out": {"car": 1}}
    assert counts["cars"] == {"in": {"car": 1}, "out": {"car": 1}}
    crosses = scene.sink.of("cross")
    assert len(crosses) == 5
    by_line = {(e["line"], e["class"], e["direction"]): e for e in crosses}
    # counted on the second frame on the new side (inertia 2)
    assert by_line[("mid", "car", "in")]["frame"] == 25
    assert by_line[("mid", "car", "out")]["frame"] == 27
    assert by_line[("mid", "person", "in")]["frame"] == 23
    for e in crosses:
        assert e["track_id"] >= 1 and e["source"] == "scene"
        assert e["video_time_s"] == round(e["frame"] / FPS, 3)
        assert e["time"].endswith("Z")
    # the retained counts the sinks were given are the final ones
    assert scene.sink.topics["lines/mid"] == counts["mid"]
    # one life per square: new ... end
    assert len(scene.sink.of("new")) == 4 and len(scene.sink.of("end")) == 4


def test_zone_enter_leave_loiter_frames(tmp_path):
    squares = [
        Square(RED, CAR, (22, 10), (5, 0)),  # centre 42 + 5i: inside [120, 200] frames 16-31
        Square(GREEN, PERSON, (140, 130), (0, 0)),  # stands inside: loiters
    ]
    zone = ZoneSpec("middle", ((120, 0), (200, 0), (200, 239), (120, 239)), loiter_s=2.0)
    scene = run_scene(tmp_path, squares, 45, zones=[zone])
    ev = [(e["type"], e["class"], e["frame"]) for e in scene.sink.events if "zone" in e]
    # the standing person is confirmed on frame 1 (the tracker's second detection): inside
    # on frames 1, 2, 3 -> entered on 3 (inertia 3), loiters 2 s later (frame 23)
    assert ("enter", "person", 3) in ev
    assert ("loiter", "person", 23) in ev
    # the car is inside from frame 16 (entered on 18) and outside from 32 (left on 34)
    assert ("enter", "car", 18) in ev
    assert ("leave", "car", 34) in ev
    # the person was still inside when the run ended: its end says so with a leave
    assert [t for t, c, _ in ev if c == "person"] == ["enter", "loiter", "leave"]
    assert len(ev) == 5
    counts = scene.stage.summary()["zones"]["middle"]
    assert counts["entered"] == {"person": 1, "car": 1}
    assert counts["left"] == {"person": 1, "car": 1}
    assert counts["loitered"] == {"person": 1}
    assert counts["occupancy"] == {}
    enter = next(e for e in scene.sink.events if e["type"] == "enter" and e["class"] == "car")
    assert enter["zones"] == ["middle"] and enter["zone"] == "middle"


def test_a_box_flickering_on_a_zone_edge_never_enters(tmp_path):
    # the anchor jumps between x = 114 and 126 every frame, across the edge at 120
    squares = [Wobble(BLUE, PERSON, (100, 100), (0, 0), amplitude_px=6.0)]
    held = ZoneSpec("held", ((120, 0), (240, 0), (240, 239), (120, 239)), inertia=3)
    raw = ZoneSpec("raw", ((120, 0), (240, 0), (240, 239), (120, 239)), inertia=1)
    scene = run_scene(tmp_path, squares, 40, zones=[held, raw])
    enters = [e["zone"] for e in scene.sink.of("enter")]
    assert "held" not in enters
    assert enters.count("raw") >= 15  # without inertia it flickers in and out
    assert len({e["track_id"] for e in scene.sink.events}) == 1  # one object all along


def _tracked(index: int, boxes, ids, classes) -> FrameResult:
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    d = Detections(np.array(boxes, np.float32), np.full(len(boxes), 0.9), classes, ids)
    return FrameResult(Frame(index, index / FPS, image), d, True, index)


def test_unconfirmed_tracks_never_count():
    info = SourceInfo("x", SourceKind.VIDEO, False, *SIZE, FPS, 40)
    line = LineSpec("mid", (160, 0), (160, 239), inertia=1)
    zone = ZoneSpec("right", ((200, 0), (319, 0), (319, 239), (200, 239)), inertia=1)

    def run(ids: list[int]):
        from helpers.event_scenes import MemorySink

        sink = MemorySink()
        stage = EventStage("x", info, LABELS, [(zone, None)], [(line, None)], [sink])
        for i in range(40):  # five objects sweep right, 8 px a frame
            boxes = [[8 * i, 40 * k, 8 * i + 30, 40 * k + 30] for k in range(5)]
            stage(_tracked(i, boxes, ids, [CAR] * 5))
        stage.finish()
        return sink, stage.summary()

    sink, summary = run([-1] * 5)  # a tracker that never confirmed them: one shared id -1
    assert sink.events == []
    assert summary["lines"]["mid"] == {"in": {}, "out": {}}
    assert summary["zones"]["right"]["entered"] == {}
    sink, summary = run([1, 2, 3, 4, 5])  # the same rows, confirmed: five of each
    assert summary["lines"]["mid"] == {"in": {"car": 5}, "out": {}}
    assert summary["zones"]["right"]["entered"] == {"car": 5}
    assert len(sink.of("new")) == len(sink.of("end")) == 5
