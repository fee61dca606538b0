"""Frame ranges and the driver's in-order assembly: pure Python, no Ray, no model."""

from __future__ import annotations

from typing import Any

from detector.distributed.assemble import ImageOrder, VideoOrder
from detector.distributed.ranges import FrameRange, split_ranges


def test_split_ranges_cover_the_video_and_the_last_runs_to_the_end() -> None:
    ranges = split_ranges(0, 100, 3)
    assert [(r.start, r.stop) for r in ranges] == [(0, 33), (33, 66), (66, None)]
    assert [r.index for r in ranges] == [0, 1, 2]


def test_split_ranges_start_on_multiples_of_detect_every() -> None:
    ranges = split_ranges(0, 100, 3, detect_every=5)
    assert [r.start for r in ranges] == [0, 30, 65]
    assert all(r.start % 5 == 0 for r in ranges)


def test_split_ranges_limit_unknown_count_and_tiny_videos() -> None:
    assert [(r.start, r.stop) for r in split_ranges(0, 795, 3, limit=60)] == [
        (0, 20),
        (20, 40),
        (40, 60),
    ]
    assert split_ranges(1, None, 4) == [FrameRange(1, 0, 0, None)]
    assert split_ranges(0, 0, 4, limit=10) == [FrameRange(0, 0, 0, 10)]
    assert len(split_ranges(0, 20, 8, min_frames=8)) == 2  # no range shorter than 8 frames


def test_image_order_yields_in_position_order_whatever_the_arrival() -> None:
    order = ImageOrder(4)
    out: list[int] = []
    for p in (2, 0, 3, 1):
        order.add({"position": p})
        out += [r["position"] for r in order.ready()]
    assert out == [0, 1, 2, 3]
    assert order.done and order.missing == []


def _frame(rng: int, pos: int, attempt: int = 0) -> dict[str, Any]:
    return {"range": rng, "attempt": attempt, "kind": "frame", "position": pos}


def _probe(rng: int, digest: str, attempt: int = 0) -> dict[str, Any]:
    return {"range": rng, "attempt": attempt, "kind": "probe", "digest": digest}


def _end(rng: int, last: int, digest: str, attempt: int = 0, error: str = "") -> dict[str, Any]:
    return {
        "range": rng,
        "attempt": attempt,
        "kind": "end",
        "position": last,
        "digest": digest,
        "ok": not error,
        "error": error,
    }


RANGES = [FrameRange(0, 0, 0, 3), FrameRange(0, 1, 3, 6), FrameRange(0, 2, 6, None)]


def _feed(order: VideoOrder, rows: list[dict[str, Any]]) -> list[int]:
    out: list[int] = []
    for row in rows:
        order.add(row)
        out += [r["position"] for r in order.ready()]
    return out


def test_video_order_writes_a_range_only_after_its_join_is_proven() -> None:
    order = VideoOrder(RANGES)
    # Range 1 arrives first: nothing can be written before range 0's frames.
    out = _feed(order, [_probe(1, "d2"), _frame(1, 3), _frame(1, 4), _frame(1, 5)])
    assert out == []
    out = _feed(order, [_frame(0, 0), _frame(0, 1)])
    assert out == [0, 1]
    # Range 0 ends on frame 2 whose digest equals range 1's probe: range 1 is proven.
    out = _feed(order, [_frame(0, 2), _end(0, 2, "d2"), _end(1, 5, "d5")])
    assert out == [2, 3, 4, 5]
    out = _feed(order, [_probe(2, "d5"), _frame(2, 6), _end(2, 6, "d6")])
    assert out == [6]
    assert order.done and order.finish() is None


def test_video_order_reruns_a_range_whose_seek_missed_and_ignores_the_stale_rows() -> None:
    order = VideoOrder(RANGES[:2])
    _feed(order, [_frame(0, 0), _frame(0, 1), _frame(0, 2), _end(0, 2, "d2")])
    out = _feed(order, [_probe(1, "WRONG"), _frame(1, 3)])
    assert out == []
    retries = order.take_retries()
    assert [(r.index, attempt) for r, attempt in retries] == [(1, 1)]
    # Rows of the first attempt still streaming in are ignored.
    assert _feed(order, [_frame(1, 4), _end(1, 5, "x")]) == []
    out = _feed(order, [_probe(1, "d2", 1), _frame(1, 3, 1), _frame(1, 4, 1), _end(1, 4, "d4", 1)])
    assert out == [3, 4]
    assert order.finish() is None


def test_video_order_fails_when_the_second_attempt_misses_too() -> None:
    order = VideoOrder(RANGES[:2])
    _feed(order, [_frame(0, 0), _frame(0, 1), _frame(0, 2), _end(0, 2, "d2")])
    _feed(order, [_probe(1, "WRONG"), _end(1, 5, "d5")])
    order.take_retries()
    _feed(order, [_probe(1, "STILL WRONG", 1), _end(1, 5, "d5", 1)])
    assert order.take_retries() == []
    reason = order.finish()
    assert reason is not None and "frames 3+" in reason and "did not land" in reason


def test_video_order_accepts_a_video_shorter_than_its_header() -> None:
    order = VideoOrder(RANGES)
    out = _feed(order, [_frame(0, 0), _frame(0, 1), _end(0, 1, "d1")])
    out += _feed(order, [_end(1, 2, "", error="cannot read frame 2")])
    assert out == [0, 1]
    assert order.done and order.truncated_at == 2
    assert order.finish() is None


def test_video_order_reports_a_video_that_cannot_be_opened() -> None:
    order = VideoOrder(RANGES[:1])
    assert _feed(order, [_end(0, -1, "", error="cannot open the video")]) == []
    assert order.finish() == "frames 0+ could not be read: cannot open the video"
