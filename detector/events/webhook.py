"""Events → JSON POSTs to a webhook (httpx): a timeout, retries with backoff, a secret header.

Each event is one POST of its JSON (``Content-Type: application/json``), in order, from a
:class:`~detector.events.worker.QueueWorker` thread, so a slow or dead endpoint never holds up
the pipeline (a full queue drops events, counted). A connection error, a timeout, 408, 425, 429
or a 5xx is retried ``retries`` times, waiting ``backoff_s`` doubled each time (at most 30 s,
with jitter); any other status is final. The event's ``id`` lets a receiver drop a repeat (a
POST whose answer was lost is sent again). The secret, read from the environment variable
``secret_env`` at start, goes in the ``secret_header`` header and is never logged.
"""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any

from detector.errors import redact
from detector.events.extras import env_secret, require
from detector.events.options import WebhookSpec
from detector.events.worker import QueueWorker

log = logging.getLogger(__name__)

HTTPX_PIN = "httpx==0.28.1"
RETRY_STATUS = frozenset({408, 425, 429})
MAX_BACKOFF_S = 30.0


def _httpx() -> Any:
    return require("httpx", "events.webhook", HTTPX_PIN)


class WebhookSink:
    """POSTs one source's events to ``spec.url``.

    Args:
        spec: URL, secret, timeout, retries, backoff, event types.
        queue_size: Events waiting at most.
        drain_s: How long ``close`` lets queued events (and their retries) go on.
    """

    name = "webhook"

    def __init__(self, spec: WebhookSpec, queue_size: int = 1000, drain_s: float = 10.0) -> None:
        httpx = _httpx()
        self.spec = spec
        self.shown = redact(spec.url)
        headers = {"Content-Type": "application/json", "User-Agent": "detector-events"}
        if spec.secret_env:
            headers[spec.secret_header] = env_secret("events.webhook.secret_env", spec.secret_env)
        self._client = httpx.Client(timeout=spec.timeout_s, headers=headers)
        self.delivered = 0
        self.retried = 0
        self.rejected = 0  # a final non-2xx status, or retries exhausted
        self._types = frozenset(spec.types)
        self._down = False
        self._worker = QueueWorker("webhook", self._post, queue_size, drain_s)
        log.info("events → webhook %s", self.shown)

    @property
    def events_published(self) -> int:
        return self.delivered

    def send(self, event: dict[str, Any]) -> None:
        if not self._types or event["type"] in self._types:
            self._worker.put(event)

    def counts(self, topic: str, payload: dict[str, Any]) -> None:
        """Counts travel in run.json and MQTT; the webhook gets events only."""

    def _post(self, event: dict[str, Any]) -> None:
        httpx = _httpx()
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        delay = self.spec.backoff_s
        for attempt in range(self.spec.retries + 1):
            try:
                r = self._client.post(self.spec.url, content=body)
                status, why = r.status_code, f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                status, why = None, f"{type(exc).__name__}: {redact(str(exc))}"
            if status is not None and 200 <= status < 300:
                self.delivered += 1
                if self._down:
                    self._down = False
                    log.info("webhook %s answers again", self.shown)
                return
            retry = status is None or status in RETRY_STATUS or status >= 500
            if not retry or attempt == self.spec.retries or self._worker.abandoned:
                break
            if not self._down:
                self._down = True
                log.warning("webhook %s: %s: retrying with backoff", self.shown, why)
            self.retried += 1
            time.sleep(min(MAX_BACKOFF_S, delay) * random.uniform(0.8, 1.2))
            delay *= 2
        self.rejected += 1
        log.warning("webhook %s: event %s not delivered (%s)", self.shown, event.get("id"), why)

    def close(self) -> None:
        self._worker.close()
        self._client.close()

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.shown,
            "delivered": self.delivered,
            "retries": self.retried,
            "failed": self.rejected + self._worker.failed,
            "dropped": self._worker.dropped,
        }
