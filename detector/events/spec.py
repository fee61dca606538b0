"""The ``zones:``, ``lines:``, ``events:`` and detection-filter config values, parsed and checked.

Pure parsing (no NumPy, no OpenCV) so :mod:`detector.config` can use it. Coordinates are pixels,
or fractions of the frame when every value of one shape lies within ``[0, 1]``; ``pixels()``
turns a shape into pixels for a frame size. Errors are ``ConfigError`` naming the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detector.errors import ConfigError

ANCHORS = ("bottom_center", "center", "top_center", "center_left", "center_right")
"""Which point of a box decides where an object is (bottom centre: where it stands)."""

Point = tuple[float, float]

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def _bad(where: str, key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{where}: {key}: expected {expected}, got {value!r}")


def _number(where: str, key: str, value: Any, *, lo: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(where, key, "a number", value)
    if value < lo:
        raise _bad(where, key, f"a number >= {lo:g}", value)
    return float(value)


def _int(where: str, key: str, value: Any, *, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise _bad(where, key, f"an integer >= {lo}", value)
    return int(value)


def _points(where: str, key: str, value: Any, count: int | None = None) -> tuple[Point, ...]:
    """A list of ``[x, y]`` pairs (``count`` of them, or at least 3 for a polygon)."""
    want = f"{count} points [x, y]" if count else "a list of at least 3 points [[x, y], ...]"
    if not isinstance(value, (list, tuple)):
        raise _bad(where, key, want, value)
    points: list[Point] = []
    for p in value:
        ok = isinstance(p, (list, tuple)) and len(p) == 2
        if not ok or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
            for v in p
        ):
            raise _bad(where, key, want, value)
        if min(p) < 0:
            raise _bad(where, key, "coordinates >= 0 (pixels, or fractions in [0, 1])", value)
        points.append((float(p[0]), float(p[1])))
    if (count is not None and len(points) != count) or (count is None and len(points) < 3):
        raise _bad(where, key, want, value)
    return tuple(points)


def pixels(points: Sequence[Point], width: int, height: int) -> tuple[tuple[int, int], ...]:
    """``points`` in pixels of a ``width`` x ``height`` frame: fractions (every value of the
    shape within ``[0, 1]``) are scaled; pixel values are rounded."""
    normalized = all(0.0 <= v <= 1.0 for p in points for v in p)
    sx, sy = (width, height) if normalized else (1, 1)
    return tuple((round(x * sx), round(y * sy)) for x, y in points)


def _classes(where: str, key: str, value: Any) -> tuple[str | int, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or any(
        isinstance(v, bool) or not isinstance(v, (str, int)) or v == "" for v in value
    ):
        raise _bad(where, key, "a list of class names or ids, e.g. [person, car]", value)
    return tuple(v.strip() if isinstance(v, str) else v for v in value)


def _source(where: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise _bad(where, key, "a source's name or index", value)
    return str(value).strip()


def _name(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise _bad(where, key, "a name of letters, digits, '-', '_' or '.'", value)
    return value


def _anchor(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or value.strip().lower() not in ANCHORS:
        raise _bad(where, key, " or ".join(ANCHORS), value)
    return value.strip().lower()


def _mapping(where: str, key: str, value: Any, allowed: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(where, key, f"a mapping with keys {', '.join(allowed)}", value)
    for k in value:
        if k not in allowed:
            import difflib

            close = difflib.get_close_matches(str(k), list(allowed), n=1)
            raise ConfigError(
                f"{where}: {key}: unknown key '{k}'",
                hint=f"did you mean '{close[0]}'?" if close else f"keys: {', '.join(allowed)}",
            )
    return value


@dataclass(frozen=True)
class ZoneSpec:
    """A polygon zone: presence after ``inertia`` frames inside, loitering after ``loiter_s``."""

    name: str
    polygon: tuple[Point, ...]
    classes: tuple[str | int, ...] = ()
    source: str | None = None
    inertia: int = 3
    loiter_s: float | None = None
    anchor: str = "bottom_center"


@dataclass(frozen=True)
class LineSpec:
    """A counting line from ``start`` to ``end``; ``inertia`` frames on the new side count."""

    name: str
    start: Point
    end: Point
    classes: tuple[str | int, ...] = ()
    source: str | None = None
    inertia: int = 2
    anchor: str = "bottom_center"


@dataclass(frozen=True)
class MaskSpec:
    """An ignore mask: detections whose anchor falls inside are dropped before anything else."""

    polygon: tuple[Point, ...]
    classes: tuple[str | int, ...] = ()
    source: str | None = None


_ZONE_KEYS = ("name", "polygon", "classes", "source", "inertia", "loiter_s", "anchor")
_LINE_KEYS = ("name", "start", "end", "classes", "source", "inertia", "anchor")
_MASK_KEYS = ("polygon", "classes", "source")


def _unique(where: str, key: str, names: list[str]) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{where}: {key}: the name '{dup[0]}' is used twice")


def parse_zones(value: Any, where: str) -> tuple[ZoneSpec, ...]:
    """``zones:``: a list of ``{name, polygon}`` with optional ``classes``, ``source``,
    ``inertia``, ``loiter_s`` and ``anchor``."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise _bad(where, "zones", "a list of zones (- name: ..., polygon: [[x, y], ...])", value)
    zones = []
    for i, raw in enumerate(value):
        key = f"zones[{i}]"
        m = _mapping(where, key, raw, _ZONE_KEYS)
        if "name" not in m or "polygon" not in m:
            raise ConfigError(f"{where}: {key}: a zone needs 'name' and 'polygon'")
        loiter = m.get("loiter_s")
        zones.append(
            ZoneSpec(
                name=_name(where, f"{key}.name", m["name"]),
                polygon=_points(where, f"{key}.polygon", m["polygon"]),
                classes=_classes(where, f"{key}.classes", m.get("classes")),
                source=_source(where, f"{key}.source", m.get("source")),
                inertia=_int(where, f"{key}.inertia", m.get("inertia", 3), lo=1),
                loiter_s=None if loiter is None else _number(where, f"{key}.loiter_s", loiter),
                anchor=_anchor(where, f"{key}.anchor", m.get("anchor", "bottom_center")),
            )
        )
    _unique(where, "zones", [z.name for z in zones])
    return tuple(zones)


def parse_lines(value: Any, where: str) -> tuple[LineSpec, ...]:
    """``lines:``: a list of ``{name, start, end, classes?, source?, inertia?, anchor?}``."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        want = "a list of lines (- name: ..., start: [x, y], end: [x, y])"
        raise _bad(where, "lines", want, value)
    lines = []
    for i, raw in enumerate(value):
        key = f"lines[{i}]"
        m = _mapping(where, key, raw, _LINE_KEYS)
        if not {"name", "start", "end"} <= set(m):
            raise ConfigError(f"{where}: {key}: a line needs 'name', 'start' and 'end'")
        ends = _points(where, f"{key}.start/end", [m["start"], m["end"]], count=2)
        if ends[0] == ends[1]:
            raise ConfigError(f"{where}: {key}: start and end are the same point {ends[0]}")
        lines.append(
            LineSpec(
                name=_name(where, f"{key}.name", m["name"]),
                start=ends[0],
                end=ends[1],
                classes=_classes(where, f"{key}.classes", m.get("classes")),
                source=_source(where, f"{key}.source", m.get("source")),
                inertia=_int(where, f"{key}.inertia", m.get("inertia", 2), lo=1),
                anchor=_anchor(where, f"{key}.anchor", m.get("anchor", "bottom_center")),
            )
        )
    _unique(where, "lines", [ln.name for ln in lines])
    return tuple(lines)


def parse_masks(key: str, value: Any, where: str) -> tuple[MaskSpec, ...]:
    """``detect.ignore``: polygons (or ``{polygon, classes?, source?}``) where detections drop."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise _bad(where, key, "a list of polygons [[x, y], ...] or {polygon: ...}", value)
    masks = []
    for i, raw in enumerate(value):
        k = f"{key}[{i}]"
        if isinstance(raw, Mapping):
            m = _mapping(where, k, raw, _MASK_KEYS)
            if "polygon" not in m:
                raise ConfigError(f"{where}: {k}: a mask needs 'polygon'")
            masks.append(
                MaskSpec(
                    _points(where, f"{k}.polygon", m["polygon"]),
                    _classes(where, f"{k}.classes", m.get("classes")),
                    _source(where, f"{k}.source", m.get("source")),
                )
            )
        else:
            masks.append(MaskSpec(_points(where, k, raw)))
    return tuple(masks)


def parse_thresholds(key: str, value: Any, where: str) -> tuple[tuple[str | int, float], ...]:
    """``detect.thresholds``: ``{class name or id: score}``; on the command line
    ``person=0.6,car=0.4``."""
    if value is None:
        return ()
    want = "class=score pairs, e.g. person=0.6,car=0.4"
    if isinstance(value, str):
        pairs: dict[Any, Any] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, score = part.partition("=")
            if not sep:
                raise _bad(where, key, want, value)
            try:
                pairs[name.strip()] = float(score)
            except ValueError:
                raise _bad(where, key, want, value) from None
        value = pairs
    if isinstance(value, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 for p in value
    ):
        value = dict(value)
    if not isinstance(value, Mapping):
        raise _bad(where, key, "a mapping of class to score, e.g. {person: 0.6}", value)
    out = []
    for cls, score in value.items():
        if isinstance(cls, bool) or not isinstance(cls, (str, int)) or str(cls).strip() == "":
            raise _bad(where, key, "class names or ids as keys", cls)
        s = _number(where, f"{key}.{cls}", score)
        if s > 1.0:
            raise _bad(where, f"{key}.{cls}", "a score in [0, 1]", score)
        out.append((cls.strip() if isinstance(cls, str) else cls, s))
    return tuple(out)


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
        raise _bad(where, key, "a non-empty string", value)
    return value.strip()


def _types(where: str, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or any(v not in EVENT_TYPES for v in value):
        raise _bad(where, key, f"a list of event types from {', '.join(EVENT_TYPES)}", value)
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
            raise _bad(where, key, "HOST[:PORT] or a mapping {host, port, ...}", value)
        value = {"host": host.strip("[]"), "port": int(port_text)}
    allowed = tuple(MqttSpec.__dataclass_fields__)
    m = _mapping(where, key, value, allowed)
    port = _int(where, f"{key}.port", m.get("port", 1883), lo=1)
    if port > 65535:
        raise _bad(where, f"{key}.port", "a port in 1-65535", port)
    qos = _int(where, f"{key}.qos", m.get("qos", 1))
    if qos > 2:
        raise _bad(where, f"{key}.qos", "0, 1 or 2", qos)
    prefix = _opt_str(where, f"{key}.topic_prefix", m.get("topic_prefix", "detector"))
    if prefix is None or any(c in prefix for c in "+#") or prefix.endswith("/"):
        raise _bad(where, f"{key}.topic_prefix", "a topic without +, # or a trailing /", prefix)
    return MqttSpec(
        host=_opt_str(where, f"{key}.host", m.get("host", "127.0.0.1")) or "127.0.0.1",
        port=port,
        topic_prefix=prefix,
        qos=qos,
        client_id=_opt_str(where, f"{key}.client_id", m.get("client_id")),
        username=_opt_str(where, f"{key}.username", m.get("username")),
        password_env=_opt_str(where, f"{key}.password_env", m.get("password_env")),
        keepalive_s=_int(where, f"{key}.keepalive_s", m.get("keepalive_s", 30), lo=5),
    )


def parse_webhook(key: str, value: Any, where: str) -> WebhookSpec | None:
    """``events.webhook``: a mapping with ``url``, or the URL alone (``--webhook URL``)."""
    if value is None or value is False:
        return None
    if isinstance(value, str):
        value = {"url": value}
    m = _mapping(where, key, value, tuple(WebhookSpec.__dataclass_fields__))
    url = _opt_str(where, f"{key}.url", m.get("url"))
    if url is None or not re.match(r"^https?://[^/\s]+", url):
        raise _bad(where, f"{key}.url", "an http:// or https:// URL", m.get("url"))
    header = _opt_str(where, f"{key}.secret_header", m.get("secret_header", "X-Detector-Secret"))
    return WebhookSpec(
        url=url,
        secret_env=_opt_str(where, f"{key}.secret_env", m.get("secret_env")),
        secret_header=header or "X-Detector-Secret",
        timeout_s=_number(where, f"{key}.timeout_s", m.get("timeout_s", 5.0), lo=0.1),
        retries=_int(where, f"{key}.retries", m.get("retries", 5)),
        backoff_s=_number(where, f"{key}.backoff_s", m.get("backoff_s", 0.5)),
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
    m = _mapping(where, key, value, tuple(ClipSpec.__dataclass_fields__))

    def opt(name: str) -> float | None:
        v = m.get(name)
        return None if v is None else _number(where, f"{key}.{name}", v)

    on = _types(where, f"{key}.on", m.get("on", ["enter", "cross", "loiter"]))
    spec = ClipSpec(
        pre_s=_number(where, f"{key}.pre_s", m.get("pre_s", 3.0)),
        post_s=_number(where, f"{key}.post_s", m.get("post_s", 5.0)),
        max_s=_number(where, f"{key}.max_s", m.get("max_s", 60.0), lo=1.0),
        on=on,
        max_age_h=opt("max_age_h"),
        max_size_mb=opt("max_size_mb"),
    )
    if spec.pre_s > 60:
        raise _bad(where, f"{key}.pre_s", "at most 60 seconds (held in memory)", spec.pre_s)
    return spec


def parse_area(key: str, value: Any, where: str) -> float | None:
    """``detect.min_area`` / ``max_area``: pixels, or a fraction of the frame (<= 1)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            want = "a number (pixels, or <= 1: a fraction of the frame)"
            raise _bad(where, key, want, value) from None
    return _number(where, key, value)


def applies_to(source: str | None, name: str, index: int, uri: str = "") -> bool:
    """True when a shape restricted to ``source`` (None: every source) runs on this one: the
    source's run name, its position in the run (``0``, ``1``...) or its URI as shown."""
    return source is None or source in (name, str(index), uri)


LIST_PARSERS = {"zones": parse_zones, "lines": parse_lines}
"""Top-level config lists -> ``(value, where) -> shapes``."""

VALUE_PARSERS = {
    "thresholds": parse_thresholds,
    "area": parse_area,
    "masks": parse_masks,
    "mqtt": parse_mqtt,
    "webhook": parse_webhook,
    "clips": parse_clips,
}
"""Config value kinds -> ``(dotted key, value, where) -> value``."""
