"""The web view's sink: each annotated frame goes to its source's feed, its record to the events.

Writing costs the pipeline a reference, a few counters and (only while someone follows
``/api/events``) the frame's JSON-lines record; JPEG encoding happens on viewer threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from detector.outputs.web.hub import Feed
from detector.types import FrameResult

Record = Callable[[FrameResult], dict[str, Any]]


class WebSink:
    """Publish annotated frames to ``feed``; a context manager like every sink.

    Args:
        feed: The source's slot in the web view's hub.
        label: Class id → name (for the per-class counts on the page).
        record: Frame result → its JSON-lines record (the same dict ``detections.jsonl``
            holds), sent as a server-sent event while someone listens.
    """

    def __init__(self, feed: Feed, label: Callable[[int], str], record: Record) -> None:
        self.feed = feed
        self.label = label
        self.record = record
        self.frames_written = 0
        self.closed = False

    def write(self, result: FrameResult, annotated: np.ndarray) -> None:
        self.feed.publish(result, annotated, self.label)
        hub = self.feed.hub
        if hub.event_listeners:
            hub.publish_event({"feed": self.feed.key, **self.record(result)})
            self.feed.events_published += 1
        self.frames_written += 1

    def close(self) -> None:
        """The source is done: its streams end; the page keeps showing the last frame."""
        if not self.closed:
            self.closed = True
            self.feed.end()

    def __enter__(self) -> WebSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
