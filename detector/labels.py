"""Class-id → name label maps, read from TF OD API ``.pbtxt``, plain ``.txt`` or COCO ``.json``.

Ids are label-map ids: 1-based, COCO ids (1 = person) for the default model.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from detector.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

_ID_LINE = re.compile(r"^\s*(\d+)[\s:,]+(\S.*?)\s*$")
_PBTXT_START = re.compile(r"^\s*item\s*\{", re.MULTILINE)


@dataclass(frozen=True)
class LabelMap:
    """Names of class ids.

    Attributes:
        names: Read-only mapping of class id (int) → display name.
        path: The file it was read from, if any.
    """

    names: Mapping[int, str]
    path: Path | None = None
    _by_name: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = {int(k): str(v) for k, v in dict(self.names).items()}
        object.__setattr__(self, "names", MappingProxyType(names))
        by_name: dict[str, int] = {}
        for cid in sorted(names):  # the lowest id wins when two classes share a name
            by_name.setdefault(names[cid].casefold(), cid)
        object.__setattr__(self, "_by_name", MappingProxyType(by_name))

    def name(self, class_id: int) -> str:
        """The display name of ``class_id``, or ``'class N'`` when the map does not know it."""
        return self.names.get(int(class_id), f"class {int(class_id)}")

    def id_for(self, name: str) -> int | None:
        """The id whose name is ``name`` (case-insensitive), or None."""
        return self._by_name.get(name.strip().casefold())

    def __len__(self) -> int:
        return len(self.names)

    def resolve_classes(
        self, classes: Iterable[str | int], *, key: str = "detect.classes"
    ) -> frozenset[int] | None:
        """Turn a class filter of names and/or ids into ids; empty → None (all classes).

        Args:
            classes: Names (case-insensitive, e.g. ``"person"``) or integer ids; a string of
                digits counts as an id.
            key: The config key to name in errors.

        Raises:
            ConfigError: A name is not in the map (with the closest names as a hint), or an
                id is not (with the map's range), or an id is below 1.
        """
        ids: set[int] = set()
        for item in classes:
            if isinstance(item, int) or (
                isinstance(item, str) and item.strip().lstrip("-").isdigit()
            ):
                cid = int(item)
                if cid < 1 or (self.names and cid not in self.names):
                    where = f"the label map '{self.path}'" if self.path else "the label map"
                    known = sorted(self.names)
                    raise ConfigError(
                        f"{key}: class id {cid} is not in {where}"
                        if self.names
                        else f"{key}: class id {cid} is not a valid id (ids start at 1)",
                        hint=f"its ids run from {known[0]} to {known[-1]} "
                        f"(e.g. {known[0]} = {self.names[known[0]]!r}); or give class names"
                        if known
                        else "class ids start at 1",
                    )
                ids.add(cid)
                continue
            found = self.id_for(str(item))
            if found is None:
                close = difflib.get_close_matches(str(item).casefold(), list(self._by_name), n=3)
                where = f" in '{self.path}'" if self.path else ""
                raise ConfigError(
                    f"{key}: unknown class name {item!r}{where}",
                    hint=f"did you mean {', '.join(map(repr, close))}?"
                    if close
                    else "use a name from the label map or an integer id",
                )
            ids.add(found)
        return frozenset(ids) if ids else None


def load_label_map(path: str | Path) -> LabelMap:
    """Read a label map, choosing the parser from the suffix, then from the content.

    Formats:

    * ``.pbtxt``: the TF Object Detection API ``StringIntLabelMap`` text format,
      ``item { id: 1 name: "person" display_name: "person" }``; ``display_name`` is used
      when present, else ``name``; comments (``#``) and single-quoted strings are fine.
    * ``.json``: COCO annotations (``{"categories": [{"id": 1, "name": "person"}]}``) or a
      plain ``{"1": "person"}`` object.
    * ``.txt`` (or anything else): either one name per line, giving ids ``1..N`` in order,
      or ``<id> <name>`` lines on every line. When the first ``<id> <name>`` line has id 0
      (the 0-based ``coco_labels.txt`` style: ``0 person`` … ``89 toothbrush``), every id
      is taken as 0-based and shifted by +1, so they become the 1-based COCO ids the TF OD
      API models output (``1 person``). Blank lines and lines starting with ``#`` are skipped.

    Raises:
        ConfigError: The file is missing, unreadable or malformed (message quotes the path
            and the line).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        # Exit code 1 like a missing model or source: a named file is not there.
        raise ModelError(
            f"label map '{p}' does not exist",
            hint="set model.labels (or --labels) to a .pbtxt or .txt file, or null for none",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read label map '{p}': {exc}") from exc
    suffix = p.suffix.lower()
    if suffix in (".pbtxt", ".pbtx", ".prototxt") or (
        suffix != ".json" and _PBTXT_START.search(_strip_comments(text))
    ):
        names = _parse_pbtxt(text, p)
    elif suffix == ".json":
        names = _parse_json(text, p)
    else:
        names = _parse_txt(text, p)
    if not names:
        raise ConfigError(f"label map '{p}' holds no labels")
    log.debug("label map %s: %d classes", p, len(names))
    return LabelMap(names, p)


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


@lru_cache(maxsize=1)
def _label_map_class() -> Any:
    """The TF OD API ``StringIntLabelMap`` message class, built from a descriptor at run time.

    Built here rather than importing the Object Detection API (not a dependency) or
    generated code (tied to one protobuf version).
    """

    fdp = descriptor_pb2.FileDescriptorProto(
        name="detector/string_int_label_map.proto", package="detector.labelmap", syntax="proto2"
    )
    f = descriptor_pb2.FieldDescriptorProto
    opt, rep = f.LABEL_OPTIONAL, f.LABEL_REPEATED

    def fields(message: Any, *rows: tuple[Any, ...]) -> None:
        """``(name, label, type[, message or enum name])`` rows, numbered from 1."""
        for number, (name, label, kind, *ref) in enumerate(rows, 1):
            named = {"type_name": f".detector.labelmap.{ref[0]}"} if ref else {}
            message.field.add(name=name, number=number, label=label, type=kind, **named)

    enum = fdp.enum_type.add(name="LVISFrequency")
    for i, n in enumerate(("UNSPECIFIED", "FREQUENT", "COMMON", "RARE")):
        enum.value.add(name=n, number=i)
    item = fdp.message_type.add(name="StringIntLabelMapItem")
    kp = item.nested_type.add(name="KeypointMap")
    fields(kp, ("id", opt, f.TYPE_INT32), ("label", opt, f.TYPE_STRING))
    fields(
        item,
        ("name", opt, f.TYPE_STRING),
        ("id", opt, f.TYPE_INT32),
        ("display_name", opt, f.TYPE_STRING),
        ("keypoints", rep, f.TYPE_MESSAGE, "StringIntLabelMapItem.KeypointMap"),
        ("ancestor_ids", rep, f.TYPE_INT32),
        ("descendant_ids", rep, f.TYPE_INT32),
        ("frequency", opt, f.TYPE_ENUM, "LVISFrequency"),
        ("instance_count", opt, f.TYPE_INT32),
    )
    top = fdp.message_type.add(name="StringIntLabelMap")
    fields(top, ("item", rep, f.TYPE_MESSAGE, "StringIntLabelMapItem"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("detector.labelmap.StringIntLabelMap")
    )


def _parse_pbtxt(text: str, path: Path) -> dict[int, str]:
    msg = _label_map_class()()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as exc:
        line = exc.GetLine()
        where = f" line {line}" if line else ""
        src = text.splitlines()[line - 1].strip() if line and line <= len(text.splitlines()) else ""
        detail = str(exc).split(" : ", 1)[-1].replace("detector.labelmap.", "").rstrip(".")
        raise ConfigError(
            f"label map '{path}'{where}: {detail}" + (f": {src!r}" if src else ""),
            hint='expected TF OD API items: item { id: 1 name: "person" display_name: "person" }',
        ) from None
    names: dict[int, str] = {}
    for n, item in enumerate(msg.item, 1):
        label = item.display_name or item.name
        if not item.HasField("id"):
            raise ConfigError(f"label map '{path}': item {n} ({label!r}) has no id")
        if not label:
            raise ConfigError(f"label map '{path}': item {n} (id {item.id}) has no name")
        _add(names, item.id, label, path, f"item {n}")
    return names


def _parse_json(text: str, path: Path) -> dict[int, str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"label map '{path}' line {exc.lineno}: invalid JSON: {exc.msg}"
        ) from None
    names: dict[int, str] = {}
    if isinstance(data, dict) and isinstance(data.get("categories"), list):
        for n, cat in enumerate(data["categories"], 1):
            if not (isinstance(cat, dict) and isinstance(cat.get("id"), int) and cat.get("name")):
                raise ConfigError(
                    f"label map '{path}': category {n} needs an int 'id' and a 'name'"
                )
            _add(names, cat["id"], str(cat["name"]), path, f"category {n}")
    elif isinstance(data, dict):
        for k, v in data.items():
            if not str(k).strip().isdigit():
                raise ConfigError(f"label map '{path}': key {k!r} is not an integer id")
            _add(names, int(k), str(v), path, f"key {k!r}")
    else:
        raise ConfigError(
            f"label map '{path}': expected a COCO 'categories' list or an id → name object"
        )
    return names


def _parse_txt(text: str, path: Path) -> dict[int, str]:
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    names: dict[int, str] = {}
    first = _ID_LINE.match(lines[0][1]) if lines else None
    if first:
        # "<id> <name>" mode, decided by the first line: every line must follow it.
        offset = 1 if int(first.group(1)) == 0 else 0
        if offset:
            log.debug("label map %s starts at id 0: treating ids as 0-based (+1)", path)
        for n, line in lines:
            m = _ID_LINE.match(line)
            if m is None:
                raise ConfigError(
                    f"label map '{path}' line {n}: expected '<id> <name>' like the first line, "
                    f"got {line!r}"
                )
            _add(names, int(m.group(1)) + offset, m.group(2), path, f"line {n}")
    else:
        for cid, (_, line) in enumerate(lines, 1):
            names[cid] = line
    return names


def _add(names: dict[int, str], cid: int, label: str, path: Path, where: str) -> None:
    if cid == 0:
        # Some official maps (mscoco_complete_label_map.pbtxt) list the background as id 0;
        # detectors never output it, so it is left out rather than refused.
        log.warning(
            "label map '%s' %s: id 0 (%r) is the background class, not a detectable one: "
            "ignored (label ids start at 1)",
            path,
            where,
            label,
        )
        return
    if cid < 0:
        raise ConfigError(f"label map '{path}' {where}: negative id {cid}")
    if cid in names:
        raise ConfigError(
            f"label map '{path}' {where}: id {cid} given twice ({names[cid]!r} and {label!r})"
        )
    names[cid] = label
