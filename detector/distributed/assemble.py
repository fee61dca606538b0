"""Results back in order: image files by position, video frames by index with proven joins.

Actors finish in any order; the driver feeds every result row here and takes back the rows
that can be written now, in order. Rows are plain dicts (the actors' columns). Pure Python:
no Ray, no OpenCV, so the ordering and the join check are tested on their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from detector.distributed.ranges import FrameRange

Row = dict[str, Any]


class ImageOrder:
    """Rows of files ``0 .. count - 1`` in position order (failed files included)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.next = 0
        self._pending: dict[int, Row] = {}

    def add(self, row: Row) -> None:
        self._pending[int(row["position"])] = row

    def ready(self) -> Iterator[Row]:
        while self.next in self._pending:
            yield self._pending.pop(self.next)
            self.next += 1

    @property
    def done(self) -> bool:
        return self.next >= self.count

    @property
    def missing(self) -> list[int]:
        """Positions no result came back for (after the last row; should be none)."""
        return [p for p in range(self.next, self.count) if p not in self._pending]


@dataclass
class _RangeState:
    attempt: int = 0
    frames: dict[int, Row] = field(default_factory=dict)
    probe: str | None = None
    end: Row | None = None
    proven: bool = False


class VideoOrder:
    """One video's frame rows in frame order, each range written only once its join is proven.

    Range ``k`` decoded frame ``start_k - 1`` after its seek (its *probe* digest); range
    ``k - 1`` decoded that same frame last, reading forward from a proven start. Equal digests
    prove the seek landed exactly; by induction from range 0 (frame 0, no seek) every range
    is. A range whose join fails is given back by :meth:`take_retries` to run again decoding
    from frame 0 (``sequential``), once; failing again fails the video.

    Args:
        ranges: The video's ranges, in order.
    """

    def __init__(self, ranges: list[FrameRange]) -> None:
        self.ranges = ranges
        self.state = [_RangeState() for _ in ranges]
        self.k = 0  # the range being written
        self.next = 0  # the next frame index to write
        self.failure: str | None = None
        self.truncated_at: int | None = None  # the video ended before its header said
        self._retry: list[FrameRange] = []

    def add(self, row: Row) -> None:
        st = self.state[int(row["range"])]
        if int(row["attempt"]) != st.attempt:
            return  # a superseded attempt still streaming in
        kind = row["kind"]
        if kind == "frame":
            st.frames[int(row["position"])] = row
        elif kind == "probe":
            st.probe = str(row["digest"])
        elif kind == "end":
            st.end = row

    def ready(self) -> Iterator[Row]:
        """Frame rows that can be written now, in order."""
        while self.k < len(self.ranges) and self.failure is None and self.truncated_at is None:
            st = self.state[self.k]
            if not st.proven:
                verdict = self._verdict(self.k)
                if verdict == "wait":
                    return
                if verdict == "truncated":
                    self.truncated_at = self.next
                    return
                if verdict != "ok":
                    self._reject(self.k, verdict)
                    return
                st.proven = True
            while self.next in st.frames:
                yield st.frames.pop(self.next)
                self.next += 1
            if st.end is None or self.next <= int(st.end["position"]):
                return
            if not st.end["ok"]:  # range 0 that could not open the video
                self._reject(self.k, str(st.end["error"]))
                return
            self.k += 1

    def _verdict(self, k: int) -> str:
        """``ok``, ``wait``, ``truncated`` or the reason range ``k``'s start is not proven."""
        if k == 0:
            return "ok"
        st, prev = self.state[k], self.state[k - 1]
        start = self.ranges[k].start
        if prev.end is None:
            return "wait"
        prev_last = int(prev.end["position"])
        if prev_last < start - 1:  # the previous range ran out of frames early
            if st.end is None:
                return "wait"
            if st.frames or st.probe is not None:
                return (
                    f"range {k - 1} ended at frame {prev_last} but range {k} read frame "
                    f"{start - 1}: frames are missing in between"
                )
            return "truncated"
        if st.probe is not None:
            if st.probe == str(prev.end["digest"]):
                return "ok"
            return f"seeking to frame {start - 1} did not land on it (its pixels differ)"
        if st.end is not None:
            return str(st.end["error"]) or f"range {k} did not read frame {start - 1}"
        return "wait"

    def _reject(self, k: int, reason: str) -> None:
        st = self.state[k]
        if st.attempt == 0 and k > 0:
            self.state[k] = _RangeState(attempt=1)
            self._retry.append(self.ranges[k])
        else:
            self.failure = f"frames {self.ranges[k].start}+ could not be read: {reason}"

    def take_retries(self) -> list[tuple[FrameRange, int]]:
        """Ranges to run again (decoding from frame 0), with their attempt number."""
        out = [(r, self.state[r.index].attempt) for r in self._retry]
        self._retry = []
        return out

    @property
    def done(self) -> bool:
        return (
            self.failure is not None or self.truncated_at is not None or self.k >= len(self.ranges)
        )

    def finish(self) -> str | None:
        """After the last row: ``None`` when every frame was written, else what went wrong."""
        if self.failure is not None:
            return self.failure
        if self.truncated_at is not None:
            late = [
                r.index
                for r, s in zip(self.ranges, self.state, strict=True)
                if r.index > self.k and s.frames
            ]
            if late:
                return (
                    f"the video ended at frame {self.truncated_at} but later ranges "
                    f"{late} read frames"
                )
            return None
        if self.k < len(self.ranges):
            return f"no result for frames from {self.next} on"
        return None
