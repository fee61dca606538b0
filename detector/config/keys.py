"""Dotted config keys: their fields, choices, CLI flags and keyword overrides."""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from detector.config.fields import ALIASES, LISTS, OTHER_FLAGS, RENAMED, Flag
from detector.config.sections import KEYS, SECTIONS
from detector.errors import ConfigError

log = logging.getLogger(__name__)


def key_field(key: str) -> dataclasses.Field[Any]:
    """The dataclass field of a dotted key (``"model.backend"``), its rule in ``metadata``."""
    section, _, name = key.partition(".")
    for f in dataclasses.fields(SECTIONS[section]):
        if f.name == name:
            return f
    raise KeyError(key)


def choices(key: str) -> tuple[str, ...]:
    """The values an enum key accepts (``choices("model.backend")``): its one definition."""
    return tuple(key_field(key).metadata["choices"])


@dataclass(frozen=True)
class FlaggedKey:
    """A key the ``run`` command line can set: its flag, its kind and its choices."""

    key: str
    name: str  # the field's name (the flag's name unless ``flag.name`` says otherwise)
    flag: Flag
    switch: bool
    choices: tuple[str, ...] = ()


def flagged_keys() -> list[FlaggedKey]:
    """Every key the ``run`` command line can set, sections first, in their fields' order."""
    out: list[FlaggedKey] = []
    for s, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            key = f"{s}.{f.name}"
            flag = f.metadata.get("flag") or OTHER_FLAGS.get(key)
            if flag is not None:
                switch = flag.switch if flag.switch is not None else f.metadata["kind"] == "bool"
                out.append(FlaggedKey(key, f.name, flag, switch, tuple(f.metadata["choices"])))
    for key in LISTS:
        if key in OTHER_FLAGS:
            out.append(FlaggedKey(key, key, OTHER_FLAGS[key], False))
    return out


def key_for(name: str) -> str:
    """The dotted key a keyword names: a dotted key, a key's field name (every field name is
    unique: ``threshold`` is ``detect.threshold``), or ``source``, ``model``, ``output``.

    Raises:
        ConfigError: No such key (with the closest name as a hint).
    """
    name = RENAMED.get(name, name)
    if name in KEYS or name in LISTS:  # LISTS: zones, lines
        return name
    if name in ALIASES:
        return ALIASES[name]
    by_field = {k.rsplit(".", 1)[1]: k for k in KEYS}
    if name in by_field:
        return by_field[name]
    close = difflib.get_close_matches(name, [*ALIASES, *by_field, *KEYS], n=1, cutoff=0.6)
    raise ConfigError(
        f"unknown setting '{name}'",
        hint=f"did you mean '{close[0]}'?"
        if close
        else "every key is listed in detector/default.yml",
    )


def keyword_overrides(values: Mapping[str, object]) -> dict[str, object]:
    """Keyword arguments (``source="clip.mp4", coco=True``) as :func:`load_config` overrides.

    Paths may be ``os.PathLike``; ``None`` leaves a key at its configured value.
    """
    out: dict[str, object] = {}
    for name, value in values.items():
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        elif isinstance(value, (list, tuple)):
            value = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
        out[key_for(name)] = value
    return out
