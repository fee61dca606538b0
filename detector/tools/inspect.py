"""Describe any model file: variables, inputs, outputs, ops, parameters, signatures.

The result is a plain dict (``--json`` prints it as is) built from the files' protos and
readers; a graph is imported (never run) only to learn its output shapes, and only once it
has passed the op allowlist. Formats are found by structure (see
:func:`detector.model.formats.detect_format`).
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import DetectorError, ModelError
from detector.model.checkpoints import (
    data_problem,
    open_reader,
    read_state_file,
    resolve_checkpoint,
)
from detector.model.formats import detect_format, keras3_saved_by_tf
from detector.model.graphfile import node_name, parse_graph_def, parse_meta_graph
from detector.model.objckpt import checkpoint_entries, find_entry, is_object_based
from detector.model.outputs import OD_OUTPUTS
from detector.model.safety import check_graph_def, parse_saved_model
from detector.model.sizes import tensor_array
from detector.tools import inspect_saved as sm
from detector.tools.graph_summary import graph_summary, meta_summary, safety_verdict
from detector.tools.keras_inspect import inspect_keras, inspect_keras_weights
from detector.tools.nodes import list_nodes
from detector.tools.tensors import tensor_value
from detector.tools.tflite_inspect import inspect_tflite
from detector.tools.weights import read_weights_report

log = logging.getLogger(__name__)


def inspect_checkpoint(path: Path, tensor: str | None, allow_unsafe_ops: bool) -> dict[str, Any]:
    """A checkpoint: its tensors (object-based ones by variable name, object path and raw
    key), a warning when the ``.data`` is missing or unreadable, its state file and graph."""

    ref = resolve_checkpoint(path)
    reader = open_reader(ref.prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    entries = checkpoint_entries(reader)
    object_based = is_object_based(shapes)
    result: dict[str, Any] = {
        "format": "checkpoint",
        "kind": "object-based" if object_based else "name-based",
        "prefix": str(ref.prefix),
        "step": ref.step,
        "meta": str(ref.meta) if ref.meta else None,
        "variables": {e.export_name: list(shapes[e.key]) for e in entries},
        "dtypes": {e.export_name: dtypes[e.key].name for e in entries},
        "parameters": int(
            sum(
                np.prod(shapes[e.key], dtype=np.int64)
                for e in entries
                if dtypes[e.key].name != "string"
            )
        ),
    }
    if object_based:
        result["objects"] = {
            e.export_name: {"path": e.path, "name": e.name, "key": e.key} for e in entries
        }
    problem = data_problem(ref.prefix)
    if problem:
        result["warnings"] = [f"checkpoint '{ref.prefix}': {problem}"]
        log.warning("checkpoint %s: %s", ref.prefix, problem)
    folder = path if path.is_dir() else ref.prefix.parent
    state = read_state_file(folder)
    if state is not None:
        result["state_file"] = state_summary(state)
    if ref.meta is not None:
        meta = parse_meta_graph(ref.meta)
        result.update(meta_summary(meta, str(ref.meta), allow_unsafe_ops))
    if tensor is not None:
        entry = find_entry(entries, tensor, f"checkpoint '{ref.prefix}'")
        try:
            value = reader.get_tensor(entry.key)
        except Exception as exc:
            raise ModelError(
                f"cannot read tensor {entry.key!r} of checkpoint '{ref.prefix}': "
                f"{str(exc).strip().splitlines()[0]}",
                hint="the .data-* file is missing, cut off or corrupt: copy it again",
            ) from exc
        result["tensor"] = {"name": entry.export_name, "key": entry.key, **tensor_value(value)}
    return result


def state_summary(state: Any) -> dict[str, Any]:
    """A state file as JSON: latest, every kept checkpoint with its step and time."""

    def entry(e: Any) -> dict[str, Any]:
        return {
            "path": e.recorded,
            "step": e.step,
            "timestamp": e.timestamp,
            "modified": e.modified,
            "exists": e.exists,
            "points_elsewhere": e.elsewhere,
        }

    return {
        "path": str(state.path),
        "latest": entry(state.latest) if state.latest else None,
        "all": [entry(e) for e in state.entries],
    }


def _graph_tensor(graph_def: Any, tensor: str) -> dict[str, Any]:
    name = node_name(tensor)
    node = next((n for n in graph_def.node if n.name == name), None)
    if node is None or node.op != "Const":
        consts = [n.name for n in graph_def.node if n.op == "Const"]

        raise ModelError(
            f"graph has no constant {tensor!r}",
            hint=f"closest: {difflib.get_close_matches(name, consts, n=5)}",
        )
    value = tensor_array(node.attr["value"].tensor, f"constant '{name}'")
    return {"name": name, **tensor_value(value)}


def inspect_graph_file(
    path: Path, fmt: str, tensor: str | None, allow_unsafe_ops: bool
) -> dict[str, Any]:
    if fmt == "meta":
        meta = parse_meta_graph(path)
        result = {
            "format": "meta",
            "path": str(path),
            **meta_summary(meta, str(path), allow_unsafe_ops),
        }
        graph_def = meta.graph_def
    else:
        graph_def = parse_graph_def(path, fmt)
        refused = safety_verdict(check_graph_def, graph_def, str(path), allow_unsafe_ops)
        names = {n.name for n in graph_def.node}
        outs = list(OD_OUTPUTS) if all(o in names for o in OD_OUTPUTS) else None
        result = {
            "format": fmt,
            "path": str(path),
            "bytes": path.stat().st_size,
            "safety": refused or "ok",
            "graph": graph_summary(graph_def, importable=refused is None, outputs=outs),
        }
        unfrozen = sorted(result["graph"]["variables"])
        if unfrozen:
            result["warnings"] = [
                f"not frozen: {len(unfrozen)} variable(s) whose values are not in the file "
                f"({', '.join(unfrozen[:8])}); freeze it with its checkpoint: python main.py "
                f"model freeze --graph '{path}' --checkpoint PREFIX -o frozen.pb"
            ]
    result["_graph_def"] = graph_def
    if tensor is not None:
        result["tensor"] = _graph_tensor(graph_def, tensor)
    return result


def inspect_saved_model(path: Path, tensor: str | None, allow_unsafe_ops: bool) -> dict[str, Any]:
    """A SavedModel: per MetaGraph what ``saved_model_cli show --all`` shows, plus safety,
    variables by name and the functions' specs; see :mod:`detector.tools.inspect_saved`."""

    saved = parse_saved_model(path)
    graphs = []
    warnings = []
    for meta in saved.meta_graphs:
        summary = meta_summary(
            meta, f"{path} [{','.join(meta.meta_info_def.tags)}]", allow_unsafe_ops
        )
        summary["signatures"] = sm.signatures(meta)
        summary["functions"] = sm.functions(meta)
        summary["_graph_def"] = meta.graph_def
        if keras3_saved_by_tf(meta):
            warnings.append(
                "a Keras 3 model saved with tf.saved_model.save: its graph does not restore "
                "its variables by itself, so run, freeze and convert load it through "
                "TensorFlow's object loader (tf.saved_model.load), as TensorFlow does"
            )
        graphs.append(summary)
    result: dict[str, Any] = {"format": "saved_model", "path": str(path), "meta_graphs": graphs}
    result.update(sm.variables(path, tensor))
    if warnings:
        result["warnings"] = warnings
    return result


def inspect_path(
    path: str | Path,
    *,
    tensor: str | None = None,
    allow_unsafe_ops: bool = False,
    nodes: bool = False,
    node_filter: dict[str, str] | None = None,
    all_tensors: bool = False,
) -> dict[str, Any]:
    """Describe a checkpoint, ``.meta``, frozen ``.pb``/``.pbtxt``, SavedModel or ``.tflite``.

    Args:
        path: The model path (format found from its contents).
        tensor: A variable or constant whose values to include.
        allow_unsafe_ops: Import graphs with refused ops too (for their output shapes).
        nodes: Also list every node (name, op, inputs, output tensors) under ``nodes``.
        node_filter: ``{"op": "Conv2D,MatMul", "name": "logits/*"}`` to keep some nodes.
        all_tensors: Every tensor's values too (``inspect_checkpoint --all_tensors``):
            checkpoint and SavedModel variables, a graph's constants, a Keras file's
            weights, a TFLite file's tensors with their quantization.

    Raises:
        DetectorError: The path is missing, unreadable or not a model.
    """

    path = Path(path)
    fmt = detect_format(path)
    try:
        if fmt == "checkpoint":
            info = inspect_checkpoint(path, tensor, allow_unsafe_ops)
        elif fmt in ("meta", "frozen_pb", "pbtxt"):
            info = inspect_graph_file(path, fmt, tensor, allow_unsafe_ops)
        elif fmt == "saved_model":
            info = inspect_saved_model(path, tensor, allow_unsafe_ops)
        elif fmt in ("keras", "keras_weights"):
            reader = inspect_keras if fmt == "keras" else inspect_keras_weights
            info = reader(path, tensor)
        else:
            info = inspect_tflite(path, all_tensors=all_tensors)
        _attach_nodes(info, nodes or node_filter is not None, node_filter or {})
        if all_tensors and fmt != "tflite":
            info["all_tensors"] = _all_tensors(path, allow_unsafe_ops)
        return info
    except DetectorError:
        raise
    except Exception as exc:
        raise ModelError(
            f"cannot inspect '{path}' ({fmt}): {type(exc).__name__}: {exc}",
            hint="is the file complete?",
        ) from exc


def _all_tensors(path: Path, allow_unsafe_ops: bool) -> dict[str, Any]:
    """Every weight's values, as ``inspect_checkpoint --all_tensors`` prints them."""

    weights, _ = read_weights_report(path, allow_unsafe_ops=allow_unsafe_ops)
    return {name: tensor_value(value) for name, value in weights.items()}


def _attach_nodes(info: dict[str, Any], wanted: bool, node_filter: dict[str, str]) -> None:
    """Add the node listing where asked (shapes from the graph imported for the summary),
    and drop the GraphDefs and graphs kept for it."""

    op, name = node_filter.get("op", ""), node_filter.get("name", "")
    if wanted and info.get("format") == "tflite":
        raise ModelError(
            "--nodes lists TensorFlow graph nodes; a .tflite has operators",
            hint="its operators are counted under 'ops' without --nodes",
        )
    checkpoint_graph = info.get("format") == "checkpoint" and "graph" in info
    if checkpoint_graph and "_graph_def" not in info and wanted and info.get("meta"):
        info["_graph_def"] = parse_meta_graph(info["meta"]).graph_def
    for holder in [info, *info.get("meta_graphs", [])]:
        graph_def = holder.pop("_graph_def", None)
        graph = holder["graph"].pop("_tf_graph", None) if "graph" in holder else None
        if wanted and graph_def is not None:
            holder["nodes"] = list_nodes(graph_def, op=op, name=name, graph=graph)


def refusals(info: dict[str, Any]) -> list[str]:
    """The allowlist refusals an inspect report holds (empty when every graph passed)."""
    found = []
    for holder in [info, *info.get("meta_graphs", [])]:
        verdict = holder.get("safety")
        if verdict not in (None, "ok"):
            found.append(str(verdict))
    return found
