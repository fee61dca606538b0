"""The ``zones:``, ``lines:``, ``events:`` and detection-filter config values, parsed and checked.

Pure parsing (no NumPy, no OpenCV) so :mod:`detector.config` can use it. Coordinates are pixels,
or fractions of the frame when every value of one shape lies within ``[0, 1]``; ``pixels()``
turns a shape into pixels for a frame size. Errors are ``ConfigError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from detector.errors import ConfigError

ANCHORS = ("bottom_center", "center", "top_center", "center_left", "center_right")
"""Which point of a box decides where an object is (bottom centre: where it stands)."""

Point = tuple[float, float]

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def bad_value(where: str, key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{where}: {key}: expected {expected}, got {value!r}")


def number_value(where: str, key: str, value: Any, *, lo: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad_value(where, key, "a number", value)
    if value < lo:
        raise bad_value(where, key, f"a number >= {lo:g}", value)
    return float(value)


def int_value(where: str, key: str, value: Any, *, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise bad_value(where, key, f"an integer >= {lo}", value)
    return int(value)


def _points(where: str, key: str, value: Any, count: int | None = None) -> tuple[Point, ...]:
    """A list of ``[x, y]`` pairs (``count`` of them, or at least 3 for a polygon)."""
    want = f"{count} points [x, y]" if count else "a list of at least 3 points [[x, y], ...]"
    if not isinstance(value, (list, tuple)):
        raise bad_value(where, key, want, value)
    points: list[Point] = []
    for p in value:
        ok = isinstance(p, (list, tuple)) and len(p) == 2
        if not ok or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
            for v in p
        ):
            raise bad_value(where, key, want, value)
        if min(p) < 0:
            raise bad_value(where, key, "coordinates >= 0 (pixels, or fractions in [0, 1])", value)
        points.append((float(p[0]), float(p[1])))
    if (count is not None and len(points) != count) or (count is None and len(points) < 3):
        raise bad_value(where, key, want, value)
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
        raise bad_value(where, key, "a list of class names or ids, e.g. [person, car]", value)
    return tuple(v.strip() if isinstance(v, str) else v for v in value)


def _source(where: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise bad_value(where, key, "a source's name or index", value)
    return str(value).strip()


def _name(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise bad_value(where, key, "a name of letters, digits, '-', '_' or '.'", value)
    return value


def _anchor(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or value.strip().lower() not in ANCHORS:
        raise bad_value(where, key, " or ".join(ANCHORS), value)
    return value.strip().lower()


def mapping_value(where: str, key: str, value: Any, allowed: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise bad_value(where, key, f"a mapping with keys {', '.join(allowed)}", value)
    for k in value:
        if k not in allowed:
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


def _from_text(where: str, key: str, text: str, want: str, field: str) -> dict[str, Any]:
    """``NAME:X,Y X,Y ...`` (a command-line zone or line) → ``{name, <field>: points}``."""
    name, sep, rest = text.partition(":")
    try:
        points = [[float(v) for v in p.split(",")] for p in rest.split()]
    except ValueError:
        points = []
    if not sep or not points:
        raise bad_value(where, key, want, text)
    return {"name": name.strip(), field: points}


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
        raise bad_value(
            where, "zones", "a list of zones (- name: ..., polygon: [[x, y], ...])", value
        )
    zones = []
    for i, raw in enumerate(value):
        key = f"zones[{i}]"
        if isinstance(raw, str):  # --zone NAME:X,Y X,Y X,Y
            raw = _from_text(where, key, raw, "NAME:X,Y X,Y X,Y ...", "polygon")
        m = mapping_value(where, key, raw, _ZONE_KEYS)
        if "name" not in m or "polygon" not in m:
            raise ConfigError(f"{where}: {key}: a zone needs 'name' and 'polygon'")
        loiter = m.get("loiter_s")
        zones.append(
            ZoneSpec(
                name=_name(where, f"{key}.name", m["name"]),
                polygon=_points(where, f"{key}.polygon", m["polygon"]),
                classes=_classes(where, f"{key}.classes", m.get("classes")),
                source=_source(where, f"{key}.source", m.get("source")),
                inertia=int_value(where, f"{key}.inertia", m.get("inertia", 3), lo=1),
                loiter_s=None if loiter is None else number_value(where, f"{key}.loiter_s", loiter),
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
        raise bad_value(where, "lines", want, value)
    lines = []
    for i, raw in enumerate(value):
        key = f"lines[{i}]"
        if isinstance(raw, str):  # --line NAME:X1,Y1 X2,Y2
            text = _from_text(where, key, raw, "NAME:X1,Y1 X2,Y2", "points")
            raw = {"name": text["name"], "start": text["points"][0], "end": text["points"][-1]}
            if len(text["points"]) != 2:
                raise bad_value(where, key, "NAME:X1,Y1 X2,Y2", raw)
        m = mapping_value(where, key, raw, _LINE_KEYS)
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
                inertia=int_value(where, f"{key}.inertia", m.get("inertia", 2), lo=1),
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
        raise bad_value(where, key, "a list of polygons [[x, y], ...] or {polygon: ...}", value)
    masks = []
    for i, raw in enumerate(value):
        k = f"{key}[{i}]"
        if isinstance(raw, Mapping):
            m = mapping_value(where, k, raw, _MASK_KEYS)
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
                raise bad_value(where, key, want, value)
            try:
                pairs[name.strip()] = float(score)
            except ValueError:
                raise bad_value(where, key, want, value) from None
        value = pairs
    if isinstance(value, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 for p in value
    ):
        value = dict(value)
    if not isinstance(value, Mapping):
        raise bad_value(where, key, "a mapping of class to score, e.g. {person: 0.6}", value)
    out = []
    for cls, score in value.items():
        if isinstance(cls, bool) or not isinstance(cls, (str, int)) or str(cls).strip() == "":
            raise bad_value(where, key, "class names or ids as keys", cls)
        s = number_value(where, f"{key}.{cls}", score)
        if s > 1.0:
            raise bad_value(where, f"{key}.{cls}", "a score in [0, 1]", score)
        out.append((cls.strip() if isinstance(cls, str) else cls, s))
    return tuple(out)


def parse_area(key: str, value: Any, where: str) -> float | None:
    """``detect.min_area`` / ``max_area``: pixels, or a fraction of the frame (<= 1)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            want = "a number (pixels, or <= 1: a fraction of the frame)"
            raise bad_value(where, key, want, value) from None
    return number_value(where, key, value)


def applies_to(source: str | None, name: str, index: int, uri: str = "") -> bool:
    """True when a shape restricted to ``source`` (None: every source) runs on this one: the
    source's run name, its position in the run (``0``, ``1``...) or its URI as shown."""
    return source is None or source in (name, str(index), uri)


def plain(v: Any) -> Any:
    """A config value as plain JSON / YAML data (dataclasses as mappings, tuples as lists,
    paths as strings)."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {k: plain(x) for k, x in dataclasses.asdict(v).items()}
    if isinstance(v, (tuple, list)):
        return [plain(x) for x in v]
    return str(v) if isinstance(v, PurePath) else v


LIST_PARSERS: dict[str, Any] = {"zones": parse_zones, "lines": parse_lines}
"""Top-level config lists -> ``(value, where) -> shapes``."""
