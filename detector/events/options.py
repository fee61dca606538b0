"""The ``events:`` section's values — MQTT, webhook, clips — parsed and checked, and the section.

Pure parsing, as :mod:`detector.events.spec` (which holds the shapes: zones, lines, masks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from detector.events.spec import (
    bad_value,
    int_value,
    mapping_value,
    number_value,
    parse_area,
    parse_masks,
    parse_thresholds,
)


@dataclass(frozen=True)
class MqttSpec:
    """``events.mqtt``: the broker, the topic prefix, QoS and an optional login."""

    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = "detector"
    qos: int = 1
    client_id: str | None = None
    username: str | None = None
    password_env: str | None = None
    keepalive_s: int = 30


@dataclass(frozen=True)
class WebhookSpec:
    """``events.webhook``: JSON POSTs of every event, retried with backoff."""

    url: str
    secret_env: str | None = None
    secret_header: str = "X-Detector-Secret"
    timeout_s: float = 5.0
    retries: int = 5
    backoff_s: float = 0.5
    types: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClipSpec:
    """``events.clips``: an H.264 clip around each alert, and how long clips are kept."""

    pre_s: float = 3.0
    post_s: float = 5.0
    max_s: float = 60.0
    on: tuple[str, ...] = ("enter", "cross", "loiter")
    max_age_h: float | None = None
    max_size_mb: float | None = None


EVENT_TYPES = (
    "new",
    "enter",
    "leave",
    "loiter",
    "cross",
    "stationary",
    "moving",
    "snapshot",
    "end",
)
"""What an event says: an object's life is ``new``, then updates, then ``end``."""


def _opt_str(where: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad_value(where, key, "a non-empty string", value)
    return value.strip()


def _types(where: str, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or any(v not in EVENT_TYPES for v in value):
        raise bad_value(where, key, f"a list of event types from {', '.join(EVENT_TYPES)}", value)
    return tuple(value)


def parse_mqtt(key: str, value: Any, where: str) -> MqttSpec | None:
    """``events.mqtt``: a mapping, or ``HOST[:PORT]`` (the command line's ``--mqtt``)."""
    if value is None or value is False:
        return None
    if isinstance(value, str):
        host, _, port_text = value.strip().rpartition(":")
        if not host:
            host, port_text = port_text, "1883"
        if not port_text.isdigit() or not host:
            raise bad_value(where, key, "HOST[:PORT] or a mapping {host, port, ...}", value)
        value = {"host": host.strip("[]"), "port": int(port_text)}
    allowed = tuple(MqttSpec.__dataclass_fields__)
    m = mapping_value(where, key, value, allowed)
    port = int_value(where, f"{key}.port", m.get("port", 1883), lo=1)
    if port > 65535:
        raise bad_value(where, f"{key}.port", "a port in 1-65535", port)
    qos = int_value(where, f"{key}.qos", m.get("qos", 1))
    if qos > 2:
        raise bad_value(where, f"{key}.qos", "0, 1 or 2", qos)
    prefix = _opt_str(where, f"{key}.topic_prefix", m.get("topic_prefix", "detector"))
    if prefix is None or any(c in prefix for c in "+#") or prefix.endswith("/"):
        raise bad_value(
            where, f"{key}.topic_prefix", "a topic without +, # or a trailing /", prefix
        )
    return MqttSpec(
        host=_opt_str(where, f"{key}.host", m.get("host", "127.0.0.1")) or "127.0.0.1",
        port=port,
        topic_prefix=prefix,
        qos=qos,
        client_id=_opt_str(where, f"{key}.client_id", m.get("client_id")),
        username=_opt_str(where, f"{key}.username", m.get("username")),
        password_env=_opt_str(where, f"{key}.password_env", m.get("password_env")),
        keepalive_s=int_value(where, f"{key}.keepalive_s", m.get("keepalive_s", 30), lo=5),
    )


def parse_webhook(key: str, value: Any, where: str) -> WebhookSpec | None:
    """``events.webhook``: a mapping with ``url``, or the URL alone (``--webhook URL``)."""
    if value is None or value is False:
        return None
    if isinstance(value, str):
        value = {"url": value}
    m = mapping_value(where, key, value, tuple(WebhookSpec.__dataclass_fields__))
    url = _opt_str(where, f"{key}.url", m.get("url"))
    if url is None or not re.match(r"^https?://[^/\s]+", url):
        raise bad_value(where, f"{key}.url", "an http:// or https:// URL", m.get("url"))
    header = _opt_str(where, f"{key}.secret_header", m.get("secret_header", "X-Detector-Secret"))
    return WebhookSpec(
        url=url,
        secret_env=_opt_str(where, f"{key}.secret_env", m.get("secret_env")),
        secret_header=header or "X-Detector-Secret",
        timeout_s=number_value(where, f"{key}.timeout_s", m.get("timeout_s", 5.0), lo=0.1),
        retries=int_value(where, f"{key}.retries", m.get("retries", 5)),
        backoff_s=number_value(where, f"{key}.backoff_s", m.get("backoff_s", 0.5)),
        types=_types(where, f"{key}.types", m.get("types")),
    )


def parse_clips(key: str, value: Any, where: str) -> ClipSpec | None:
    """``events.clips``: ``true`` (defaults), ``false``/null (off) or a mapping."""
    if value is None or value is False:
        return None
    if value is True:
        return ClipSpec()
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return ClipSpec()
        if low in ("false", "no", "off", "0"):
            return None
    m = mapping_value(where, key, value, tuple(ClipSpec.__dataclass_fields__))

    def opt(name: str) -> float | None:
        v = m.get(name)
        return None if v is None else number_value(where, f"{key}.{name}", v)

    on = _types(where, f"{key}.on", m.get("on", ["enter", "cross", "loiter"]))
    spec = ClipSpec(
        pre_s=number_value(where, f"{key}.pre_s", m.get("pre_s", 3.0)),
        post_s=number_value(where, f"{key}.post_s", m.get("post_s", 5.0)),
        max_s=number_value(where, f"{key}.max_s", m.get("max_s", 60.0), lo=1.0),
        on=on,
        max_age_h=opt("max_age_h"),
        max_size_mb=opt("max_size_mb"),
    )
    if spec.pre_s > 60:
        raise bad_value(where, f"{key}.pre_s", "at most 60 seconds (held in memory)", spec.pre_s)
    return spec


def _key(default: Any, kind: str, *, null: bool = False, lo: float | None = None) -> Any:
    """A config field with its validation rule in ``metadata`` (as ``detector.config`` reads)."""
    meta = {"kind": kind, "null": null, "lo": lo, "hi": None, "lo_open": False, "choices": ()}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class EventsConfig:
    """``events:`` — events.jsonl, MQTT, webhooks, snapshots, clips (``configs/default.yml``)."""

    jsonl: bool | None = _key(None, "bool", null=True)  # None: on whenever events are
    mqtt: MqttSpec | None = _key(None, "mqtt", null=True)
    webhook: WebhookSpec | None = _key(None, "webhook", null=True)
    snapshots: bool = _key(False, "bool")
    clips: ClipSpec | None = _key(None, "clips", null=True)
    stationary_s: float = _key(10.0, "float", lo=0.0)
    queue_size: int = _key(1000, "int", lo=1)


VALUE_PARSERS: dict[str, Any] = {
    "thresholds": parse_thresholds,
    "area": parse_area,
    "masks": parse_masks,
    "mqtt": parse_mqtt,
    "webhook": parse_webhook,
    "clips": parse_clips,
}
"""Config value kinds -> ``(dotted key, value, where) -> value``."""
