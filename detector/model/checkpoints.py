"""Find the checkpoint a path means: prefixes, folders, state files, steps, and their misuses.

A ``tf.train.Saver`` checkpoint is a *prefix* (``model.ckpt-100``) naming three files:
``.index`` (which tensors, where), ``.data-00000-of-00001`` (the bytes) and usually a
``.meta`` (the MetaGraphDef). A ``checkpoint`` state file in the folder, in protobuf text
format, records the latest prefix and the ones kept (``max_to_keep``). Users pass any of
these, or a frozen ``.pb`` by mistake; TensorFlow then says "bad magic number". This module
says what the path really is and what to pass instead. It never imports TensorFlow: the
state file is read with a ``CheckpointState`` message built from its descriptor.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from detector.errors import CheckpointError
from detector.model.formats import detect_format
from detector.model.session import import_tf

log = logging.getLogger(__name__)

STATE_FILE = "checkpoint"
_STEP = re.compile(r"-(\d+)$")
_DATA = re.compile(r"^(?P<prefix>.+)\.data-\d{5}-of-\d{5}$")
_TABLE_MAGIC = b"\x57\xfb\x80\x8b\x24\x75\x47\xdb"  # leveldb table footer (.index, V1)
_REPAIR_HINT = "repair it: python main.py model checkpoints '{folder}' --repair"


@dataclass(frozen=True)
class CheckpointRef:
    """A resolved checkpoint.

    Attributes:
        prefix: The path TensorFlow reads (``folder/model.ckpt-100``, no suffix).
        meta: Its MetaGraphDef file, if there is one.
        step: The global step from the prefix's ``-N`` suffix, if any.
    """

    prefix: Path
    meta: Path | None
    step: int | None


@dataclass(frozen=True)
class StateEntry:
    """One checkpoint recorded by a state file.

    Attributes:
        recorded: The path exactly as the state file holds it.
        prefix: Where it resolves to (relative paths against the state file's folder).
        step: Its global step, if the prefix ends in ``-N``.
        timestamp: Seconds since the epoch when it was saved, if recorded.
        exists: Whether ``prefix.index`` exists.
        elsewhere: An absolute path outside the state file's folder (a copied folder).
        modified: The ``.index`` file's modification time (``tf.train.Saver`` records no
            timestamps, only ``tf.train.CheckpointManager`` does), if it exists.
    """

    recorded: str
    prefix: Path
    step: int | None
    timestamp: float | None
    exists: bool
    elsewhere: bool
    modified: float | None = None


@dataclass(frozen=True)
class CheckpointState:
    """What a ``checkpoint`` state file records: the latest prefix and every kept one."""

    path: Path
    latest: StateEntry | None
    entries: tuple[StateEntry, ...]
    last_preserved_timestamp: float | None


@cache
def _state_message_class() -> Any:
    """The ``tensorflow.CheckpointState`` message, built here so TF need not be imported."""

    fdp = descriptor_pb2.FileDescriptorProto(
        name="detector_checkpoint_state.proto", package="tensorflow", syntax="proto3"
    )
    msg = fdp.message_type.add(name="CheckpointState")
    F = descriptor_pb2.FieldDescriptorProto
    for number, name, kind, label in (
        (1, "model_checkpoint_path", F.TYPE_STRING, F.LABEL_OPTIONAL),
        (2, "all_model_checkpoint_paths", F.TYPE_STRING, F.LABEL_REPEATED),
        (3, "all_model_checkpoint_timestamps", F.TYPE_DOUBLE, F.LABEL_REPEATED),
        (4, "last_preserved_timestamp", F.TYPE_DOUBLE, F.LABEL_OPTIONAL),
    ):
        msg.field.add(name=name, number=number, type=kind, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.CheckpointState"))


def step_of(prefix: str | Path) -> int | None:
    """The global step a prefix ends with (``model.ckpt-100`` → 100), or None."""
    match = _STEP.search(Path(prefix).name)
    return int(match.group(1)) if match else None


_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def recorded_name(recorded: str) -> str:
    """The file name part of a recorded path, whichever system wrote it
    (``C:\\train\\model.ckpt-100`` → ``model.ckpt-100``)."""
    return re.split(r"[\\/]", recorded.rstrip("\\/"))[-1]


def _is_absolute(recorded: str) -> bool:
    """Absolute here, or an absolute Windows path (``C:\\...``, ``\\\\server\\...``)."""
    return Path(recorded).is_absolute() or bool(_WINDOWS_ABSOLUTE.match(recorded))


def _entry(folder: Path, recorded: str, timestamp: float | None) -> StateEntry:
    path = Path(recorded)
    windows = bool(_WINDOWS_ABSOLUTE.match(recorded)) and not path.is_absolute()
    resolved = path if _is_absolute(recorded) else folder / path
    elsewhere = windows or (
        path.is_absolute() and os.path.realpath(path.parent) != os.path.realpath(folder)
    )
    index = Path(f"{resolved}.index")
    data = index if index.is_file() else resolved if is_v1_checkpoint(resolved) else None
    return StateEntry(
        recorded,
        resolved,
        step_of(recorded),
        timestamp,
        data is not None,
        elsewhere,
        data.stat().st_mtime if data is not None else None,
    )


def read_state_file(folder: str | Path) -> CheckpointState | None:
    """Parse ``folder/checkpoint``; None when the folder has no state file.

    Raises:
        CheckpointError: The state file exists but is not a CheckpointState text proto.
    """

    folder = Path(folder)
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    state = _state_message_class()()
    try:
        text_format.Parse(path.read_text(encoding="utf-8"), state)
    except Exception as exc:
        raise CheckpointError(
            f"cannot parse checkpoint state file '{path}': {exc}",
            hint='it should hold lines like model_checkpoint_path: "model.ckpt-100"; '
            "delete it to use the highest step in the folder",
        ) from exc
    stamps = list(state.all_model_checkpoint_timestamps)
    entries = tuple(
        _entry(folder, p, stamps[i] if i < len(stamps) else None)
        for i, p in enumerate(state.all_model_checkpoint_paths)
    )
    latest = None
    if state.model_checkpoint_path:
        latest = next(
            (e for e in entries if e.recorded == state.model_checkpoint_path), None
        ) or _entry(folder, state.model_checkpoint_path, None)
    return CheckpointState(path, latest, entries, state.last_preserved_timestamp or None)


def is_v1_checkpoint(path: Path) -> bool:
    """Whether ``path`` is an old single-file (V1, TF < 0.12) checkpoint: a table file."""
    try:
        if not path.is_file() or path.stat().st_size < 48 or path.suffix == ".index":
            return False
        with path.open("rb") as f:
            f.seek(-8, os.SEEK_END)
            return f.read(8) == _TABLE_MAGIC
    except OSError:
        return False


def find_prefixes(folder: str | Path) -> list[Path]:
    """Every checkpoint prefix in ``folder`` (one per ``.index``), lowest step first."""
    found = [p.with_suffix("") for p in Path(folder).glob("*.index")]
    return sorted(found, key=lambda p: (step_of(p) is not None, step_of(p) or 0, p.name))


def repair_state_file(folder: str | Path) -> list[tuple[str, str]]:
    """Rewrite the state file's paths relative to its folder, where the files are local.

    A folder copied from elsewhere keeps absolute paths to the original; TensorFlow then
    silently reads the original (or fails once it is gone). Each recorded path whose
    ``basename.index`` exists in ``folder`` becomes that basename.

    Returns:
        ``(old, new)`` for each path changed (empty when nothing needed repair).

    Raises:
        CheckpointError: No state file, or a recorded checkpoint has no local copy.
    """

    folder = Path(folder)
    state_path = folder / STATE_FILE
    if read_state_file(folder) is None:
        raise CheckpointError(
            f"'{folder}' has no '{STATE_FILE}' state file to repair",
            hint="nothing to repair: the highest step in the folder is used",
        )
    state = _state_message_class()()
    text_format.Parse(state_path.read_text(encoding="utf-8"), state)
    changes: list[tuple[str, str]] = []

    def fix(recorded: str) -> str:
        name = recorded_name(recorded)
        if not _is_absolute(recorded) and Path(f"{folder / recorded}.index").is_file():
            return recorded
        if not (folder / f"{name}.index").is_file():
            raise CheckpointError(
                f"state file '{state_path}' records '{recorded}', which has no copy in "
                f"'{folder}' ({name}.index is missing)",
                hint=f"copy that checkpoint's files into '{folder}' or drop the entry",
            )
        if name != recorded:
            changes.append((recorded, name))
        return name

    latest = fix(state.model_checkpoint_path) if state.model_checkpoint_path else ""
    paths = [fix(p) for p in state.all_model_checkpoint_paths]
    if changes:
        state.model_checkpoint_path = latest
        del state.all_model_checkpoint_paths[:]
        state.all_model_checkpoint_paths.extend(paths)
        tmp = state_path.with_name(STATE_FILE + ".tmp")
        tmp.write_text(text_format.MessageToString(state), encoding="utf-8")
        os.replace(tmp, state_path)
        log.info("rewrote %d path(s) in %s relative to its folder", len(changes), state_path)
    return changes


def _meta_for(prefix: Path) -> Path | None:
    """``prefix.meta``, else the folder's only ``.meta``; two candidates are an error."""
    own = Path(f"{prefix}.meta")
    if own.is_file():
        return own
    metas = sorted(prefix.parent.glob("*.meta"))
    if len(metas) == 1:
        log.info(
            "checkpoint %s has no %s; using the folder's only graph %s",
            prefix,
            own.name,
            metas[0].name,
        )
        return metas[0]
    if len(metas) > 1:
        raise CheckpointError(
            f"checkpoint '{prefix}' has no '{own.name}' and its folder holds "
            f"{len(metas)} .meta files ({', '.join(m.name for m in metas)}); cannot tell "
            "which graph belongs to it",
            hint=f"pass the right graph's path (one of them), or keep only it as '{own.name}'",
        )
    return None


def _is_frozen_graph(path: Path) -> bool:
    try:
        return detect_format(path) in ("frozen_pb", "pbtxt")
    except Exception:
        return False


def _from_folder(folder: Path) -> Path:
    """The prefix a folder means: its state file's latest, else its highest step."""
    if (folder / "saved_model.pb").is_file() or (folder / "saved_model.pbtxt").is_file():
        raise CheckpointError(
            f"'{folder}' is a SavedModel folder, not a checkpoint",
            hint="use it as a model directly, or convert it: python main.py model convert "
            f"'{folder}' -o model.pb",
        )
    state = read_state_file(folder)
    if state is not None and state.latest is not None:
        latest = state.latest
        if latest.elsewhere:
            local_name = recorded_name(latest.recorded)
            local = Path(f"{folder / local_name}.index").is_file()
            raise CheckpointError(
                f"state file '{state.path}' points elsewhere: its latest checkpoint is the "
                f"absolute path '{latest.recorded}', outside '{folder}' (was the folder "
                "copied?)" + (f"; this folder has its own '{local_name}'" if local else ""),
                hint=_REPAIR_HINT.format(folder=folder)
                if local
                else "copy that checkpoint into the folder, or delete the state file to use the "
                "highest step here",
            )
        if latest.exists:
            return latest.prefix
        raise CheckpointError(
            f"state file '{state.path}' names '{latest.recorded}', but "
            f"'{latest.prefix}.index' does not exist",
            hint="the checkpoint was deleted or not copied; delete the state file to use "
            "the highest step in the folder",
        )
    prefixes = find_prefixes(folder)
    if prefixes:
        if len(prefixes) > 1 and all(step_of(p) is None for p in prefixes):
            raise CheckpointError(
                f"'{folder}' holds {len(prefixes)} checkpoints without steps and no state "
                f"file: {', '.join(p.name for p in prefixes)}",
                hint="pass one prefix, e.g. " + str(prefixes[0]),
            )
        log.info("no state file in %s; using the highest step %s", folder, prefixes[-1].name)
        return prefixes[-1]
    data = sorted(folder.glob("*.data-*"))
    if data:
        raise CheckpointError(
            f"'{folder}' holds checkpoint data ({data[0].name}) but no .index file",
            hint="copy the matching .index file too: a checkpoint needs both",
        )
    pbs = [p for p in sorted(folder.glob("*.pb*")) if _is_frozen_graph(p)]
    if pbs:
        raise CheckpointError(
            f"'{folder}' holds no checkpoint, only frozen graph(s): "
            f"{', '.join(p.name for p in pbs)}",
            hint=f"use '{pbs[0]}' as the model directly, or make a checkpoint from it: "
            f"python main.py model unfreeze '{pbs[0]}' -o ckpt/",
        )
    raise CheckpointError(
        f"'{folder}' holds no checkpoint (no '{STATE_FILE}' state file, no *.index)",
        hint="a checkpoint folder holds model.ckpt-N.index, .data-*, .meta and 'checkpoint'",
    )


def resolve_checkpoint(path: str | Path) -> CheckpointRef:
    """Resolve a prefix, folder, ``.meta`` or ``.index`` path to a checkpoint.

    Args:
        path: ``model.ckpt-100`` (a prefix), a folder (its state file's latest checkpoint,
            or its highest step when there is none), ``model.ckpt-100.meta`` or ``.index``,
            or an old single-file (V1) ``model.ckpt``.

    Returns:
        The prefix, its MetaGraphDef file (None if there is none) and step.

    Raises:
        CheckpointError: What the path is instead (a frozen graph, a data shard, a
            SavedModel, a stale copied folder, ...) and what to pass.
    """
    path = Path(path)
    if path.is_dir():
        prefix = _from_folder(path)
    elif path.is_file():
        prefix = _from_file(path)
    else:
        prefix = path
    if not Path(f"{prefix}.index").is_file() and not is_v1_checkpoint(prefix):
        _missing_index(prefix)
    return CheckpointRef(prefix, _meta_for(prefix), step_of(prefix))


def _from_file(path: Path) -> Path:
    name = path.name
    if name.endswith(".meta"):
        return path.with_name(name[: -len(".meta")])
    if name.endswith(".index"):
        return path.with_name(name[: -len(".index")])
    data = _DATA.match(name)
    if data:
        prefix = path.with_name(data.group("prefix"))
        raise CheckpointError(
            f"'{path}' is one data shard of checkpoint '{prefix}', not the checkpoint",
            hint=f"pass the prefix without suffix: '{prefix}'",
        )
    if name == STATE_FILE:
        return _from_folder(path.parent)
    if _is_frozen_graph(path):
        raise CheckpointError(
            f"'{path}' is a frozen graph (GraphDef), not a checkpoint: it holds constants, "
            "no variables for Saver.restore",
            hint=f"use it as a model directly, or make a checkpoint from it: python main.py "
            f"model unfreeze '{path}' -o ckpt/",
        )
    with path.open("rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        raise CheckpointError(
            f"'{path}' is a TFLite model, not a checkpoint",
            hint=f"convert it: python main.py model convert '{path}' -o model.pb",
        )
    if is_v1_checkpoint(path):
        return path  # an old single-file checkpoint is its own prefix
    raise CheckpointError(
        f"'{path}' is not a checkpoint file",
        hint="pass the prefix (model.ckpt-N), its folder or its .meta",
    )


def _missing_index(prefix: Path) -> None:
    """Raise the clearest error for a prefix whose ``.index`` is absent."""
    data = sorted(prefix.parent.glob(f"{prefix.name}.data-*"))
    if data:
        raise CheckpointError(
            f"checkpoint '{prefix}' has data ({data[0].name}) but its index "
            f"'{prefix.name}.index' is missing",
            hint="copy the .index file too: without it the data cannot be read",
        )
    if Path(f"{prefix}.meta").is_file():
        raise CheckpointError(
            f"checkpoint '{prefix}' has only its graph ({prefix.name}.meta): no "
            f"'{prefix.name}.index' or .data-* with the weights",
            hint="copy the .index and .data-* files from where it was saved",
        )
    near = find_prefixes(prefix.parent) if prefix.parent.is_dir() else []
    raise CheckpointError(
        f"no checkpoint at '{prefix}' ('{prefix.name}.index' does not exist)",
        hint=(f"checkpoints in '{prefix.parent}': " + ", ".join(p.name for p in near[-5:]))
        if near
        else "pass a prefix such as folder/model.ckpt-100, or the folder",
    )


def open_reader(prefix: str | Path) -> Any:
    """``tf.train.load_checkpoint(prefix)``, with a named error when the files are unreadable."""

    tf = import_tf()
    try:
        return tf.train.load_checkpoint(str(prefix))
    except Exception as exc:
        raise CheckpointError(
            f"cannot read checkpoint '{prefix}': {_first_line(exc)}",
            hint="the prefix needs its .index and every .data-* shard, copied whole",
        ) from exc


def data_problem(prefix: str | Path) -> str | None:
    """Why the checkpoint's values cannot be read (missing or corrupt ``.data``), or None.

    Checks that the ``.data-*`` shards exist and reads the last tensor of each listed
    key order (a cut-off shard fails there); cheap next to reading every value.
    """
    prefix = Path(prefix)
    if is_v1_checkpoint(prefix):
        return None
    shards = sorted(prefix.parent.glob(f"{prefix.name}.data-*"))
    if not shards:
        return (
            f"'{prefix.name}.data-*' is missing: the variables are listed but their values "
            "are not there"
        )
    expected = re.search(r"-of-(\d{5})$", shards[0].name)
    if expected and len(shards) != int(expected.group(1)):
        return f"{len(shards)} of {int(expected.group(1))} .data shards are there"
    try:
        reader = open_reader(prefix)
        keys = sorted(reader.get_variable_to_shape_map())
        for key in keys[-1:] + keys[:1]:
            reader.get_tensor(key)
    except Exception as exc:
        return f"its values cannot be read ({_first_line(exc)})"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
