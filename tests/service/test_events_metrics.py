"""``detector_events_published_total`` counts every event a source published, per sink: the
page's server-sent frame records, events.jsonl, a real MQTT broker and a real webhook receiver,
each checked against what its independent reader got."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from helpers.broker import Subscriber
from helpers.receiver import Receiver, receiving
from helpers.service_clients import metric, settle

from detector.config import load_config
from detector.service import Service

pytestmark = [pytest.mark.e2e, pytest.mark.tf]

FRAMES = 120


class _Listener:
    """An /api/events client (what the page opens), counting one source's frame records."""

    def __init__(self, url: str) -> None:
        self.records: list[dict] = []
        self.client = httpx.Client(timeout=None)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self.thread.start()

    def _read(self, url: str) -> None:
        with contextlib.suppress(httpx.HTTPError), self.client.stream("GET", url) as answer:
            self.ready.set()
            for line in answer.iter_lines():
                if line.startswith("data: "):
                    self.records.append(json.loads(line[6:]))

    def close(self) -> None:
        self.client.close()
        self.thread.join(10)


def test_every_sink_counts_what_it_published(
    default_graph, default_labels, sample_video, broker, tmp_path
):
    prefix = f"m{uuid.uuid4().hex[:8]}"
    receiver = Receiver(fail_first=0)
    sub = Subscriber(broker, f"{prefix}/#", tmp_path)
    with receiving(receiver) as hook:
        config = load_config(
            None,
            {
                "model.path": str(default_graph),
                "model.labels": str(default_labels),
                "output.dir": str(tmp_path / "runs"),
                "output.progress": "off",
                "lines": [{"name": "middle", "start": [0.5, 0], "end": [0.5, 1]}],
                "events.mqtt": {"host": "127.0.0.1", "port": broker.port, "topic_prefix": prefix},
                "events.webhook": {"url": hook},
            },
        )
        with Service(config, "127.0.0.1", 0) as svc, httpx.Client(base_url=svc.url) as http:
            page = _Listener(f"{svc.url}api/events")
            assert page.ready.wait(30)
            assert settle(lambda: svc.hub.event_listeners == 1)
            options = {"run.max_frames": FRAMES, "output.video": False}
            src = http.post("api/sources", json={"uri": str(sample_video), "options": options})
            assert src.status_code == 201, src.text
            key = src.json()["id"]
            done = lambda: http.get(f"api/sources/{key}", timeout=60).json()  # noqa: E731
            assert settle(lambda: done()["state"] == "ended", 300)
            text = http.get("metrics", timeout=60).text
            page.close()
            final = done()

    def published(sink: str) -> float | None:
        return metric(text, "detector_events_published_total", id=key, sink=sink)

    folder = Path(final["run_dir"])
    events = (folder / "events.jsonl").read_text().splitlines()
    assert len(events) > 10
    assert published("jsonl") == len(events)
    assert published("webhook") == len(receiver.accepted) == len(events)
    got = sub.wait_for(lambda m: sum(t.endswith("/events") for t, _ in m) >= len(events))
    sub.stop()
    assert published("mqtt") == sum(t.endswith("/events") for t, _ in got) == len(events)
    mine = [r for r in page.records if r.get("feed") == key]
    assert published("page") == len(mine) == FRAMES  # every frame's record reached the page
