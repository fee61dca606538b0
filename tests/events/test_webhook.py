"""Events as JSON POSTs to a real HTTP receiver that fails the first tries: each event is
delivered once, with the secret header; a receiver that never answers is a warning."""

from __future__ import annotations

import logging

from helpers.broker import free_port
from helpers.receiver import Receiver, receiving

from detector.events.options import WebhookSpec
from detector.events.webhook import WebhookSink


def _events(n: int) -> list[dict]:
    return [{"id": f"e{i}", "type": "cross", "track_id": i, "line": "road"} for i in range(n)]


def test_every_event_delivered_once_through_failures(monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    receiver = Receiver(fail_first=2)
    with receiving(receiver) as url:
        spec = WebhookSpec(url, secret_env="HOOK_SECRET", retries=4, backoff_s=0.02)
        sink = WebhookSink(spec)
        for event in _events(12):
            sink.send(event)
        sink.close()
    assert [e["id"] for e in receiver.accepted] == [f"e{i}" for i in range(12)]  # once, in order
    assert all(n == 3 for n in receiver.tries.values())  # two failures, then delivered
    assert all(h["X-Detector-Secret"] == "s3cret" for h in receiver.headers)
    d = sink.describe()
    assert (d["delivered"], d["retries"], d["failed"], d["dropped"]) == (12, 24, 0, 0)


def test_a_final_status_is_not_retried_and_types_filter():
    receiver = Receiver(fail_first=1, status=400)
    with receiving(receiver) as url:
        sink = WebhookSink(WebhookSpec(url, types=("cross",), backoff_s=0.01))
        sink.send({"id": "a", "type": "new"})  # not a type it wants
        sink.send({"id": "b", "type": "cross"})
        sink.close()
    assert receiver.tries == {"b": 1} and receiver.accepted == []
    assert sink.describe()["failed"] == 1


def test_an_endpoint_that_is_down_is_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="detector.events")
    url = f"http://user:pw@127.0.0.1:{free_port()}/hook"  # nothing listens
    sink = WebhookSink(WebhookSpec(url, retries=2, backoff_s=0.01, timeout_s=1.0))
    for event in _events(3):
        sink.send(event)
    sink.close()
    d = sink.describe()
    assert d["delivered"] == 0 and d["failed"] == 3
    assert "retrying with backoff" in caplog.text
    assert "pw" not in caplog.text and d["url"] == sink.shown and "pw" not in d["url"]
