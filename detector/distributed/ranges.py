"""Videos cut into frame ranges: one range is one task for an actor.

``split_ranges`` cuts ``[0, frame_count)`` into contiguous ranges starting on multiples of
``detect_every`` (so carried boxes never cross a range); the last range runs to the end of
the file, since a container's frame count may be wrong. Pure Python: no Ray, no OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameRange:
    """Frames ``start .. stop - 1`` of one video (``stop`` ``None``: to the end of the file)."""

    video: int
    index: int
    start: int
    stop: int | None


def split_ranges(
    video: int,
    frame_count: int | None,
    parts: int,
    *,
    detect_every: int = 1,
    min_frames: int = 1,
    limit: int | None = None,
) -> list[FrameRange]:
    """Cut a video into at most ``parts`` ranges of at least ``min_frames`` frames.

    Args:
        video: The video's number in the run.
        frame_count: Frames the container reports (``None`` or 0: unknown, one range).
        parts: Ranges wanted (typically one per actor, or more for balance).
        detect_every: Range starts are multiples of it.
        min_frames: Smallest range worth a seek.
        limit: Stop after this many frames (``run.max_frames``); the last range then ends
            there instead of at the end of the file.
    """
    count = frame_count or 0
    if limit is not None:
        count = min(count, limit) if count else 0
    every = max(1, detect_every)
    if count <= 0 or parts <= 1:
        return [FrameRange(video, 0, 0, limit)]
    parts = max(1, min(parts, count // max(1, min_frames)))
    starts = sorted({(count * k // parts) // every * every for k in range(parts)})
    ranges = []
    for k, start in enumerate(starts):
        last = k == len(starts) - 1
        stop = limit if last else starts[k + 1]
        ranges.append(FrameRange(video, k, start, stop))
    return ranges
