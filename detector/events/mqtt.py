"""Events → an MQTT broker (paho-mqtt): every event, retained counts, an online / offline will.

Topics under ``<prefix>/<source>/``: ``events`` (each event as JSON, not retained), ``zones/<zone>``
and ``lines/<line>`` (the counts, retained, so a new subscriber reads them at once) and ``status``
(``online``, retained; ``offline`` at a clean end, and as the last will the broker publishes when
the run dies). The client connects in the background and reconnects by itself: a broker that is
down at start or goes away mid-run is a warning, never a failure. Messages of QoS 1 / 2 sent while
it is away wait in paho's queue (bounded by ``events.queue_size``) and go out on reconnect; the
retained counts are re-sent then too. Nothing here blocks the pipeline: publishing runs on a
:class:`~detector.events.worker.QueueWorker` thread, paho's network loop on its own.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from typing import Any

from detector.events.extras import env_secret, require
from detector.events.options import MqttSpec
from detector.events.worker import QueueWorker

log = logging.getLogger(__name__)

PAHO_PIN = "paho-mqtt==2.2.0"


def topic_part(name: str) -> str:
    """``name`` safe as one MQTT topic level (no ``/``, ``+``, ``#`` or spaces)."""
    return re.sub(r"[/+#\s]+", "_", name) or "_"


def _paho() -> Any:
    return require("paho.mqtt.client", "events.mqtt", PAHO_PIN)


class MqttSink:
    """Publishes one source's events and counts.

    Args:
        spec: Broker, prefix, QoS, login.
        source: The source's name (one topic level).
        queue_size: Events waiting to be published at most (and paho's offline queue).
        drain_s: How long ``close`` waits for what is queued to be acknowledged.
    """

    name = "mqtt"

    def __init__(
        self, spec: MqttSpec, source: str, queue_size: int = 1000, drain_s: float = 5.0
    ) -> None:
        mqtt = _paho()
        self.spec = spec
        self.base = f"{spec.topic_prefix}/{topic_part(source)}"
        self.drain_s = drain_s
        self.published = 0  # handed to paho
        self.events_published = 0  # of those, events (the rest: retained counts, status)
        self.acknowledged = 0  # confirmed by the broker (QoS 0: written to the socket)
        self.refused = 0  # paho's offline queue was full, or QoS 0 with no connection
        self.connects = 0
        self._lock = threading.Lock()
        self._retained: dict[str, bytes] = {}
        self._pending: set[int] = set()  # mids of our messages not acknowledged yet
        self._early: set[int] = set()  # acknowledged before publish() returned
        self._warned = False
        self._closing = False
        self._down_since: float | None = time.monotonic()
        password = None
        if spec.password_env:
            password = env_secret("events.mqtt.password_env", spec.password_env)
        client_id = spec.client_id or f"detector-{topic_part(source)}-{os.getpid()}"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if spec.username:
            client.username_pw_set(spec.username, password)
        client.will_set(f"{self.base}/status", "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.max_queued_messages_set(queue_size)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        self.client = client
        self.where = f"mqtt://{spec.host}:{spec.port}"
        client.connect_async(spec.host, spec.port, keepalive=spec.keepalive_s)
        client.loop_start()
        self._worker = QueueWorker("mqtt", self._publish, queue_size, drain_s)
        log.info("events → %s, topics %s/...", self.where, self.base)

    # -- paho's thread --------------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("mqtt: %s refused the connection: %s", self.where, reason)
            return
        self.connects += 1
        away = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        log.info(
            "mqtt: connected to %s%s",
            self.where,
            f" again after {away:.1f} s" * (self.connects > 1),
        )
        self._down_since = None
        client.publish(f"{self.base}/status", "online", qos=1, retain=True)
        with self._lock:
            retained = list(self._retained.items())
        for topic, payload in retained:  # the latest counts, in case the broker lost them
            client.publish(topic, payload, qos=self.spec.qos, retain=True)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, p: Any) -> None:
        if not self._closing:
            self._down_since = time.monotonic()
            log.warning("mqtt: lost %s (%s): reconnecting by itself", self.where, reason)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        if self.connects == 0 and not self._warned:
            self._warned = True
            log.warning(
                "mqtt: cannot reach %s: events wait (up to the queue size) and the client "
                "retries by itself",
                self.where,
            )

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            if mid in self._pending:
                self._pending.discard(mid)
                self.acknowledged += 1
            else:
                self._early.add(mid)

    # -- the worker's thread --------------------------------------------------------------

    def _publish(self, item: tuple[str, bytes, bool]) -> None:
        topic, payload, retain = item
        mqtt = _paho()
        # never hold self._lock here: paho calls on_publish holding its own locks
        info = self.client.publish(topic, payload, qos=self.spec.qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE or (
            self.spec.qos == 0 and info.rc == mqtt.MQTT_ERR_NO_CONN
        ):
            self.refused += 1
            if self.refused == 1 or self.refused % 100 == 0:
                log.warning("mqtt: %s is away: %d message(s) dropped", self.where, self.refused)
            return
        with self._lock:
            self.published += 1
            self.events_published += int(not retain)
            if info.mid in self._early:
                self._early.discard(info.mid)
                self.acknowledged += 1
            else:
                self._pending.add(info.mid)

    # -- the pipeline's thread ------------------------------------------------------------

    def send(self, event: dict[str, Any]) -> None:
        payload = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        self._worker.put((f"{self.base}/events", payload, False))

    def counts(self, topic: str, payload: dict[str, Any]) -> None:
        full = f"{self.base}/{topic}"
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        with self._lock:
            self._retained[full] = data
        self._worker.put((full, data, True))

    def close(self) -> None:
        """Publish what is queued, say ``offline``, wait for the acknowledgements (at most
        ``drain_s``), disconnect."""
        self._worker.close()
        deadline = time.monotonic() + self.drain_s
        if self.client.is_connected():
            self.client.publish(f"{self.base}/status", "offline", qos=1, retain=True)
        while self._pending and time.monotonic() < deadline and self.client.is_connected():
            time.sleep(0.02)
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()
        if self._pending:
            log.warning(
                "mqtt: %d message(s) not acknowledged by %s at the end",
                len(self._pending),
                self.where,
            )

    def describe(self) -> dict[str, Any]:
        return {
            "broker": self.where,
            "topics": f"{self.base}/#",
            "qos": self.spec.qos,
            "published": self.published,
            "acknowledged": self.acknowledged,
            "unacknowledged": len(self._pending),
            "dropped": self._worker.dropped + self.refused,
            "failed": self._worker.failed,
            "connects": self.connects,
        }
