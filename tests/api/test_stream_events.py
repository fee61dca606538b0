"""``Detector.stream(..., zones=, lines=).events()``: the events of the tracked objects, and
the counts in the stream's stats."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def test_stream_events_and_counts(model, sample_video: Path) -> None:
    zone = {"name": "left", "polygon": [[0, 0.3], [0.4, 0.3], [0.4, 1], [0, 1]]}
    with model.stream(
        sample_video, max_frames=80, zones=[zone], lines=["middle:0.5,0 0.5,1"]
    ) as stream:
        events = list(stream.events())
    kinds = Counter(e["type"] for e in events)
    assert kinds["new"] == kinds["end"] > 0  # every life ends, the last ones with the stream
    counts = stream.stats.counts if stream.stats is not None else None
    assert counts is not None
    line = counts["lines"]["middle"]
    assert kinds["cross"] == sum(line["in"].values()) + sum(line["out"].values())
    zone_counts = counts["zones"]["left"]
    assert kinds["enter"] == sum(zone_counts["entered"].values())
    assert kinds["leave"] == sum(zone_counts["left"].values()) == kinds["enter"]
    frames = [e["frame"] for e in events]
    assert frames == sorted(frames) and max(frames) <= 79
    assert all(e["source"] == "video" and e["track_id"] >= 1 for e in events)
