"""Events → ``events.jsonl`` in the run folder: one JSON object per line, off the main thread."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detector.events.worker import QueueWorker
from detector.outputs.textfile import RecordFile

EVENTS_JSONL = "events.jsonl"


class EventJsonl:
    """Appends each event as a line of ``path`` (whole lines only, see ``RecordFile``)."""

    name = "jsonl"

    def __init__(self, path: Path, queue_size: int = 10000) -> None:
        self.path = Path(path)
        self._file = RecordFile(self.path, "events file")
        self.lines_written = 0
        self._worker = QueueWorker("events.jsonl", self._write, queue_size)

    def _write(self, event: dict[str, Any]) -> None:
        self._file.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.lines_written += 1

    @property
    def events_published(self) -> int:
        return self.lines_written

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
            "lines": self.lines_written,
            "dropped": self._worker.dropped,
            "failed": self._worker.failed,
        }
