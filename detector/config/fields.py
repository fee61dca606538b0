"""Config field metadata: the field helper, CLI flag descriptions, shared defaults and names."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from detector.config.placement import parse_placement
from detector.events import options as events_options
from detector.events import spec as events_spec

DEFAULT_SERVE_HOST = "127.0.0.1"  # output.serve without a host: this machine only

log = logging.getLogger(__name__)


#: The score a detection needs to be kept, drawn and written unless configured.
DEFAULT_THRESHOLD = 0.5
#: The TF Object Detection API's tensor names: what the default model exposes, and the
#: names every model is read with unless ``model.*_tensor`` says otherwise.
OD_INPUT = "image_tensor:0"
OD_OUTPUTS = ("detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0")
#: The same outputs as graph nodes (no ``:0``).
OD_OUTPUT_NODES = tuple(name.partition(":")[0] for name in OD_OUTPUTS)

# The groups of the ``run`` command's flags, in the order ``--help`` shows them.
SOURCE_AND_MODEL = "source and model"
DETECTION = "detection"
ENGINE = "engine (image folders, globs, videos)"
OUTPUTS = "outputs"
EVENTS = "zones, lines and events (tracking switches on with them)"
FLAG_GROUPS = (SOURCE_AND_MODEL, DETECTION, ENGINE, OUTPUTS, EVENTS)


@dataclass(frozen=True)
class Flag:
    """How a key is set from the ``run`` command line (``--help`` is built from these).

    Attributes:
        help: What the flag does.
        group: Which of ``FLAG_GROUPS`` lists it.
        name: The flag without its dashes; ``""``: the key's name with ``-`` for ``_``.
        metavar: What ``--help`` calls its value (enums list their choices instead).
        const: The value of the flag given bare (``--track`` means ``bytetrack``).
        repeat: The flag may be given several times (the key takes the list).
        switch: ``--name`` / ``--no-name`` (``None``: when the key is true/false).
    """

    help: str
    group: str
    name: str = ""
    metavar: str | None = None
    const: str | None = None
    repeat: bool = False
    switch: bool | None = None


def _f(
    default: Any,
    kind: str,
    *,
    null: bool = False,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    choices: tuple[str, ...] = (),
    flag: Flag | None = None,
) -> Any:
    """A dataclass field carrying its validation rule (and its ``run`` flag) in ``metadata``."""
    meta = {
        "kind": kind,
        "null": null,
        "lo": lo,
        "hi": hi,
        "lo_open": lo_open,
        "choices": choices,
        "flag": flag,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def _switch(default: bool, help: str, group: str) -> Any:
    """A true/false key with its ``--name`` / ``--no-name`` flag."""
    return _f(default, "bool", flag=Flag(help, group))


def _enum(
    choices: tuple[str, ...], help: str | None = None, group: str = "", const: str | None = None
) -> Any:
    """A key taking one of ``choices``, the first its default; with ``help``, its ``run``
    flag in ``group`` (``--help`` lists the choices; ``const``: the value of the bare flag)."""
    flag = Flag(help, group, const=const) if help is not None else None
    return _f(choices[0], "enum", choices=choices, flag=flag)


LISTS = events_spec.LIST_PARSERS  # lists
_PARSERS = {**events_options.VALUE_PARSERS, "placement": parse_placement}  # value kinds


#: The flags of keys whose fields live elsewhere: the ``events:`` section, the zone and line lists.
OTHER_FLAGS: dict[str, Flag] = {
    "zones": Flag(
        "a zone: its polygon in pixels or fractions of the frame (repeatable)",
        EVENTS,
        "zone",
        "NAME:X,Y X,Y X,Y...",
        repeat=True,
    ),
    "lines": Flag(
        "a counting line from start to end; 'in' crosses from its right to its left",
        EVENTS,
        "line",
        "NAME:X1,Y1 X2,Y2",
        repeat=True,
    ),
    "events.mqtt": Flag("events and counts to an MQTT broker", EVENTS, metavar="HOST[:PORT]"),
    "events.webhook": Flag("each event as a JSON POST to this URL", EVENTS, metavar="URL"),
    "events.snapshots": Flag("keep each object's best snapshot (frame and crop)", EVENTS),
    "events.clips": Flag(
        "an H.264 clip around each zone entry, crossing and loitering", EVENTS, switch=True
    ),
}


# Keys of configs written for the original app -> today's name (they load, with a warning).
RENAMED: dict[str, str] = {
    "detect.det_interval": "detect.report_every",
    "detect.det_th": "detect.report_threshold",
    "run.fps_interval": "run.fps_interval_s",
}
# Short names of keys whose field name alone would not say what they are.
ALIASES: dict[str, str] = {"source": "source.uri", "model": "model.path", "output": "output.dir"}


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
_NAME_RE = re.compile(r"^[^/\\\x00]+$")


_HOME_RE = re.compile(r"^\$\{([^}]*)\}")
