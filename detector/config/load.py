"""Reading a config: YAML, renamed keys, overrides, validation and path resolution."""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from detector.config.fields import (
    _FALSE,
    _HOME_RE,
    _NAME_RE,
    _PARSERS,
    _TRUE,
    DEFAULT_SERVE_HOST,
    LISTS,
    RENAMED,
)
from detector.config.sections import KEYS, SECTIONS, Config
from detector.errors import ConfigError
from detector.paths import CONFIGS_DIR, DEFAULT_CONFIG, homes

log = logging.getLogger(__name__)


def load_config(
    path: str | os.PathLike[str] | None, overrides: Mapping[str, object] | None = None
) -> Config:
    """Load, merge and validate a config.

    Args:
        path: A YAML file; ``None`` loads the package's ``default.yml``. Keys it does not
            give take the defaults documented there.
        overrides: Dotted keys → values, e.g. ``{"detect.threshold": 0.4, "output.show": True}``,
            typed or strings as given on a command line (``"0.4"``, ``"true"``, ``"null"``,
            ``"person,car"`` for ``detect.classes``). ``None`` values are skipped (a flag
            not given). Relative paths resolve against the current directory.

    Raises:
        ConfigError: Missing or unreadable file, bad YAML, unknown key (with the closest
            key as a hint), wrong type or out-of-range value; the message names the file
            and the dotted key.
    """
    file = Path(path).expanduser().resolve() if path is not None else DEFAULT_CONFIG
    raw = _read_yaml(file)
    origin = f"config '{path if path is not None else file}'"
    lists = {name: parse(raw.pop(name, None), origin) for name, parse in LISTS.items()}
    merged = _defaults()
    for key, value in _flatten(raw, origin).items():
        merged[key] = (value, file.parent, origin, False)
    _override(merged, lists, overrides or {})
    sections: dict[str, Any] = {}
    for sec, cls in SECTIONS.items():
        values = {}
        for f in dataclasses.fields(cls):
            key = f"{sec}.{f.name}"
            value, base, where, from_cli = merged[key]
            values[f.name] = _check(key, value, f.metadata, base, where, from_cli)
        sections[sec] = cls(**values)
    config = Config(**sections, **lists, path=file)
    _warn_report_threshold(config)
    return config


#: A dotted key's value, the folder its relative paths resolve against, where it came from,
#: and whether it came from a command line (a string to parse).
_Given = tuple[Any, Path, str, bool]


def _defaults() -> dict[str, _Given]:
    """Every dotted key at its default."""
    merged: dict[str, _Given] = {}
    for sec, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            merged[f"{sec}.{f.name}"] = (default, DEFAULT_CONFIG.parent, "defaults", False)
    return merged


def _override(
    merged: dict[str, _Given], lists: dict[str, Any], overrides: Mapping[str, object]
) -> None:
    """Apply the command line's ``overrides`` (``None``: not given) over the file's values."""
    cwd = Path.cwd()
    for key, value in overrides.items():
        if value is None:
            continue
        key = RENAMED.get(str(key), str(key))
        if key in LISTS:  # zones / lines from the command line replace the file's
            lists[key] = LISTS[key](value, "command-line override")
            continue
        if key not in merged:
            raise ConfigError(
                f"command-line override: unknown key '{key}'", hint=_did_you_mean(key)
            )
        merged[key] = (value, cwd, "command-line override", True)


def _warn_report_threshold(config: Config) -> None:
    """Say when the periodic report's threshold is below the one that keeps detections."""
    detect = config.detect
    if detect.report_every and detect.report_threshold < detect.threshold:
        log.warning(
            "detect.report_threshold %g is below detect.threshold %g: the periodic "
            "report lists only kept detections, so it shows scores >= %g",
            detect.report_threshold,
            detect.threshold,
            detect.threshold,
        )


def with_overrides(config: Config, overrides: Mapping[str, object], where: str) -> Config:
    """``config`` with some keys changed, each checked as a config file's value would be.

    Args:
        config: A loaded config.
        overrides: Dotted keys → values (JSON-typed, or command-line strings).
        where: Names the origin in errors (e.g. ``"POST /api/sources"``).

    Raises:
        ConfigError: An unknown key (with a did-you-mean) or a bad value.
    """
    sections = {s: getattr(config, s) for s in SECTIONS}
    for key, value in overrides.items():
        key = RENAMED.get(str(key), str(key))
        if key not in KEYS:
            raise ConfigError(f"{where}: unknown key '{key}'", hint=_did_you_mean(key))
        sec, name = key.split(".", 1)
        meta = next(f.metadata for f in dataclasses.fields(SECTIONS[sec]) if f.name == name)
        checked = _check(key, value, meta, Path.cwd(), where, isinstance(value, str))
        sections[sec] = dataclasses.replace(sections[sec], **{name: checked})
    return Config(**sections, path=config.path)


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = f"ready configs are in '{CONFIGS_DIR}'" if CONFIGS_DIR.is_dir() else None
        raise ConfigError(f"config file '{file}' does not exist", hint=hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file '{file}': {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"config '{file}'{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config '{file}': expected a mapping of sections "
            f"({', '.join(SECTIONS)}), got {type(data).__name__}"
        )
    return data


def _flatten(raw: dict[str, Any], origin: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sec, body in raw.items():
        if sec not in SECTIONS:
            raise ConfigError(f"{origin}: unknown section '{sec}'", hint=_did_you_mean(str(sec)))
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError(
                f"{origin}: {sec}: expected a mapping of keys, got {type(body).__name__} {body!r}"
            )
        for key, value in body.items():
            dotted = f"{sec}.{key}"
            if dotted in RENAMED:
                new = RENAMED[dotted]
                log.warning("%s: '%s' is deprecated, use '%s'", origin, dotted, new)
                if new in body or new.split(".", 1)[1] in body:
                    raise ConfigError(
                        f"{origin}: both '{dotted}' and '{new}' are set", hint=f"keep only '{new}'"
                    )
                dotted = new
            if dotted not in KEYS:
                raise ConfigError(f"{origin}: unknown key '{dotted}'", hint=_did_you_mean(dotted))
            out[dotted] = value
    return out


def _did_you_mean(key: str) -> str:
    """The closest valid key: by spelling, else the same key name in another section."""
    close = difflib.get_close_matches(key, KEYS + tuple(SECTIONS) + tuple(LISTS), n=1, cutoff=0.6)
    if not close:
        leaf = key.rsplit(".", 1)[-1]
        leaves = {k.rsplit(".", 1)[-1]: k for k in KEYS}
        close = [leaves[m] for m in difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.75)]
    if close:
        return f"did you mean '{close[0]}'?"
    return (
        "valid sections: " + ", ".join(SECTIONS) + " (every key is listed in detector/default.yml)"
    )


def _check(
    key: str, value: Any, meta: Mapping[str, Any], base: Path, where: str, from_cli: bool
) -> Any:
    """Validate (and for command-line strings, parse) one value; resolve relative paths."""
    kind = meta["kind"]

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: expected {expected}, got {value!r}")

    if from_cli and isinstance(value, str) and value.strip().lower() in ("null", "none", "~"):
        value = None
    if value is None:
        if meta["null"]:
            return None
        raise bad("a value (this key cannot be null)")
    if kind in _PARSERS:
        return _PARSERS[kind](key, value, where)
    if from_cli and isinstance(value, str):
        value = _parse_cli(kind, value.strip())
    if kind == "attempts":  # a count, or forever (null)
        if isinstance(value, str) and value.strip().lower() == "forever":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a number of attempts >= 0, or forever")
        return value
    if kind in ("int", "float"):
        return _check_number(value, meta, bad)
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "classes":
        if not isinstance(value, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, (str, int)) or v == "" for v in value
        ):
            raise bad("a list of class names or ids, e.g. [person, car] ([] = all)")
        return tuple(v.strip() if isinstance(v, str) else v for v in value)
    if kind == "uri" and isinstance(value, (list, tuple)):
        if not value:
            raise bad("a source, or a non-empty list of sources")
        uris = tuple(_check(key, v, meta, base, where, from_cli) for v in value)
        return uris[0] if len(uris) == 1 else uris
    if kind == "serve":
        host, port = parse_address(value if isinstance(value, (str, int)) else repr(value))
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if kind == "uri" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # camera index
    if not isinstance(value, str) or not value.strip():
        raise bad("a non-empty string")
    return _check_text(value.strip(), meta, base, bad)


def _check_number(value: Any, meta: Mapping[str, Any], bad: Callable[[str], ConfigError]) -> Any:
    """An ``int`` or ``float`` key's value within its bounds."""
    kind = meta["kind"]
    ok = isinstance(value, int) or (kind == "float" and isinstance(value, float))
    if isinstance(value, bool) or not ok or (kind == "float" and not math.isfinite(value)):
        raise bad("an integer" if kind == "int" else "a number")
    lo, hi = meta["lo"], meta["hi"]
    if (lo is not None and (value <= lo if meta["lo_open"] else value < lo)) or (
        hi is not None and value > hi
    ):
        what = "an integer" if kind == "int" else "a number"
        op = ">" if meta["lo_open"] else ">="
        rng = f"in [{lo}, {hi}]" if hi is not None else f"{op} {lo}"
        raise bad(f"{what} {rng}")
    return float(value) if kind == "float" else int(value)


def _check_text(
    value: str, meta: Mapping[str, Any], base: Path, bad: Callable[[str], ConfigError]
) -> Any:
    """A string key's value: an enum choice, a run name, a path or source made absolute."""
    kind = meta["kind"]
    if kind == "enum":
        if value.lower() not in meta["choices"]:
            raise bad(" or ".join(meta["choices"]))
        return value.lower()
    if kind == "name" and not _is_utf8(value):
        err = bad("a folder name in UTF-8 (OpenCV cannot write under other names)")
        err.hint = "use letters, digits, '-', '_' or '.'"
        raise err
    if kind == "name" and (not _NAME_RE.match(value) or value in (".", "..")):
        err = bad("a folder name without '/' (or null for the source's name)")
        err.hint = "a run folder is always made inside output.dir (--output): give that the path"
        raise err
    if kind == "path":
        return _resolve(_expand_home(value, bad), base)
    if kind == "uri" and not (value.isdigit() or "://" in value):
        # a file, folder or glob; not a camera or URL
        return str(_resolve(_expand_home(value, bad), base))
    return value


def parse_address(text: str | int) -> tuple[str, int]:
    """Read ``output.serve``: ``"8080"``, ``":8080"``, ``"0.0.0.0:8080"``, ``"[::1]:8080"``.

    The host is ``127.0.0.1`` unless given. Port 0 asks the system for a free port.

    Raises:
        ConfigError: Not a port, or a port outside 0-65535.
    """
    raw = str(text).strip()
    host, _, port_text = raw.rpartition(":")
    host = host.strip("[]") or DEFAULT_SERVE_HOST
    hint = "give PORT or HOST:PORT, e.g. 8080 or 0.0.0.0:8080"
    if not port_text.isdigit():
        raise ConfigError(f"output.serve {raw!r} is not [HOST:]PORT", hint=hint)
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"output.serve {raw!r}: port {port} is out of range 0-65535", hint=hint)
    return host, port


def _is_utf8(text: str) -> bool:
    """False for a str holding surrogate escapes (bytes that are not UTF-8, from argv)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_cli(kind: str, text: str) -> Any:
    """Command-line strings → the kind's type; left as is when they do not parse (so the
    type check reports them)."""
    try:
        if kind in ("int", "attempts"):
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        return text
    if kind == "bool":
        low = text.lower()
        return True if low in _TRUE else False if low in _FALSE else text
    if kind == "classes":
        return [p.strip() for p in text.split(",") if p.strip()]
    return text


def _expand_home(value: str, bad: Callable[[str], ConfigError]) -> str:
    """``${models}/x`` -> ``<models folder>/x`` (the folders of :func:`detector.paths.homes`)."""
    match = _HOME_RE.match(value)
    if match is None:
        return value
    folders = homes()
    name = match.group(1)
    if name not in folders:
        raise bad("a path starting with " + ", ".join(f"${{{n}}}" for n in folders))
    return str(folders[name]) + value[match.end() :]


def _resolve(value: str, base: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return Path(os.path.normpath(p if p.is_absolute() else base / p))
