"""Name the variables of an object-based (TF2) checkpoint: object path, variable name, raw key.

``tf.train.Checkpoint``, Keras ``save_weights`` (TF format) and a SavedModel's
``variables/`` store each value under a raw key built from the path of objects that leads
to it (``model/layer/kernel/.ATTRIBUTES/VARIABLE_VALUE``) and keep, in the
``_CHECKPOINTABLE_OBJECT_GRAPH`` entry, the object graph with each variable's own name
(``sequential/dense/kernel``). This module reads that graph — a protobuf, parsed, never
executed — so users can name a variable by any of the three.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.errors import CheckpointError, ModelError
from detector.model.checkpoints import open_reader

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


@dataclass(frozen=True)
class CheckpointEntry:
    """One tensor of a checkpoint.

    Attributes:
        key: The raw key (what ``tf.train.list_variables`` prints).
        path: The object path (the key without ``/.ATTRIBUTES/VARIABLE_VALUE``); for a
            name-based (TF1 Saver) checkpoint, the variable name (the key itself).
        name: The variable's own name recorded in the object graph (``full_name``), if any.
        export_name: The name used in weight exports: ``name`` when no other entry shares
            it, else ``path``.
    """

    key: str
    path: str
    name: str | None
    export_name: str


def is_object_based(keys: Any) -> bool:
    """Whether a checkpoint's keys are object-based (it holds the object graph)."""
    return OBJECT_GRAPH_KEY in keys


def object_path(key: str) -> str:
    """``'model/w/.ATTRIBUTES/VARIABLE_VALUE'`` → ``'model/w'``; other keys unchanged."""
    return key[: -len(VALUE_SUFFIX)] if key.endswith(VALUE_SUFFIX) else key


def _full_names(reader: Any) -> dict[str, str]:
    """Raw key → the variable's recorded name, from the object graph (empty if none)."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
        graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH_KEY))
    except Exception:  # a damaged object graph: the keys still name every tensor
        return {}
    return {
        a.checkpoint_key: a.full_name
        for node in graph.nodes
        for a in node.attributes
        if a.full_name and a.checkpoint_key
    }


def checkpoint_entries(reader: Any) -> list[CheckpointEntry]:
    """Every tensor of a checkpoint (``tf.train.load_checkpoint`` reader), sorted by key."""
    keys = sorted(k for k in reader.get_variable_to_shape_map() if k != OBJECT_GRAPH_KEY)
    names = _full_names(reader) if is_object_based(reader.get_variable_to_shape_map()) else {}
    counts = Counter(names.get(k) for k in keys)
    out = []
    for key in keys:
        name = names.get(key)
        path = object_path(key)
        unique = name is not None and counts[name] == 1
        out.append(CheckpointEntry(key, path, name, name if unique and name else path))
    return out


def find_entry(entries: list[CheckpointEntry], wanted: str, what: str) -> CheckpointEntry:
    """The entry ``wanted`` names: a raw key, an object path or a variable name (``:0`` ok).

    Raises:
        ModelError: No entry has that name (closest names in the hint), or a variable name
            is shared by entries holding different keys (the hint lists their paths).
    """
    name = wanted[:-2] if wanted.endswith(":0") else wanted
    for attr in ("key", "path", "export_name"):
        hit = [e for e in entries if getattr(e, attr) == name]
        if hit:
            return hit[0]
    hit = [e for e in entries if e.name == name]
    if hit:
        return hit[0]  # several keys hold the same variable (a SavedModel lists it twice)
    every = [e.path for e in entries] + [e.name for e in entries if e.name]
    raise ModelError(
        f"{what} has no tensor {wanted!r}",
        hint=f"closest: {difflib.get_close_matches(name, every, n=5)}; give a raw key, an "
        "object path or a variable name (run without --tensor to list them)",
    )


def no_graph_error(prefix: Path) -> CheckpointError:
    """The error for a checkpoint with no graph: object-based ones need their model's code."""

    if is_object_based(open_reader(prefix).get_variable_to_shape_map()):
        return CheckpointError(
            f"checkpoint '{prefix}' is object-based (tf.train.Checkpoint or Keras "
            "save_weights): it stores values by object path but no graph, so it cannot be "
            "frozen or converted by itself",
            hint="inspect or export its weights here (model inspect / export-weights); to "
            "make a model, build the tf.Module or Keras model in Python, restore with "
            "tf.train.Checkpoint(model=obj).read(prefix), and save it with model.export() "
            "or tf.saved_model.save(); or let the toolkit do it: python main.py model convert "
            f"'{prefix}' -o model.pb --model my_model.py:build (your function that builds it)",
        )
    return CheckpointError(
        f"checkpoint '{prefix}' has no .meta graph next to it",
        hint="this command needs the graph: keep model.ckpt-N.meta with the checkpoint, or "
        "give the graph written by tf.io.write_graph: --graph graph.pbtxt",
    )
