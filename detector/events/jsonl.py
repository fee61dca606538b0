"""Events → ``events.jsonl`` in the run folder: one JSON object per line, off the main thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detector.events.worker import QueueWorker
from detector.outputs.jsonl import JsonlSink

EVENTS_JSONL = "events.jsonl"


class EventJsonl:
    """Appends each event as a line of ``path`` (whole lines only, see ``JsonlSink``)."""

    name = "jsonl"

    def __init__(self, path: Path, queue_size: int = 10000) -> None:
        self.path = Path(path)
        self._file = JsonlSink(self.path, None, "")
        self._worker = QueueWorker("events.jsonl", self._file.write_record, queue_size)

    def send(self, event: dict[str, Any]) -> None:
        self._worker.put(event)

    def counts(self, topic: str, payload: dict[str, Any]) -> None:
        """Counts are in run.json and every event; nothing to write here."""

    def close(self) -> None:
        self._worker.close()
        self._file.close()

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path.name,
            "lines": self._file.lines_written,
            "dropped": self._worker.dropped,
            "failed": self._worker.failed,
        }
