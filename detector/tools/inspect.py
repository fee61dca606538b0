"""Describe any model file: variables, inputs, outputs, ops, parameters, signatures.

The result is a plain dict (``--json`` prints it as is) built from the files' protos and
readers; a graph is imported (never run) only to learn its output shapes, and only once it
has passed the op allowlist. Formats are found by structure (see
:func:`detector.model.formats.detect_format`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import DetectorError, ModelError
from detector.model.formats import keras3_saved_by_tf
from detector.model.graphfile import (
    node_name,
    placeholders,
    sink_outputs,
    tf_module,
)
from detector.tools.tensors import dtype_name, tensor_value

log = logging.getLogger(__name__)


def _dtype(enum: int) -> str:
    return dtype_name(enum)


def _shape(proto: Any) -> list[int | None] | None:
    if proto.unknown_rank:
        return None
    return [d.size if d.size >= 0 else None for d in proto.dim]


def _safety(check: Any, obj: Any, what: str, allow_unsafe_ops: bool) -> str | None:
    """None when the object passes the allowlist, else the refusal message."""
    from detector.errors import UnsafeGraphError

    try:
        check(obj, what=what, allow_unsafe_ops=allow_unsafe_ops)
    except UnsafeGraphError as exc:
        return exc.message
    return None


def graph_summary(
    graph_def: Any, *, importable: bool, outputs: list[str] | None = None
) -> dict[str, Any]:
    """Inputs, outputs with shapes, op histogram, variables and parameter count of a graph."""
    from detector.tools.weights import find_weight_constants

    ops = Counter(n.op for n in graph_def.node)
    fn_ops = Counter(n.op for f in graph_def.library.function for n in f.node_def)
    inputs = [
        {
            "name": f"{n.name}:0",
            "dtype": _dtype(n.attr["dtype"].type),
            "shape": _shape(n.attr["shape"].shape) if "shape" in n.attr else None,
        }
        for n in graph_def.node
        if n.name in set(placeholders(graph_def))
    ]
    outs = outputs if outputs is not None else sink_outputs(graph_def)
    shapes: dict[str, tuple[str, list[int | None] | None]] = {}
    if importable and outs:
        tf = tf_module()
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        kept = []
        for name in outs:
            op = graph.get_operation_by_name(node_name(name))
            if not op.outputs:  # a stateful op run for its effect (a train step)
                continue
            t = graph.get_tensor_by_name(name if ":" in name else f"{name}:0")
            shapes[name] = (t.dtype.name, t.shape.as_list() if t.shape.rank is not None else None)
            kept.append(name)
        outs = kept
    variables = {
        n.name: {"shape": _shape(n.attr["shape"].shape), "dtype": _dtype(n.attr["dtype"].type)}
        for n in graph_def.node
        if n.op in ("VariableV2", "VarHandleOp", "Variable")
    }
    weights = find_weight_constants(graph_def)
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    weight_params = sum(
        math.prod(int(d or 0) for d in _shape(consts[c].attr["value"].tensor.tensor_shape) or [])
        for c in weights
    )
    var_params = sum(math.prod(int(d or 0) for d in v["shape"] or []) for v in variables.values())
    return {
        "nodes": len(graph_def.node),
        "inputs": inputs,
        "outputs": [
            {
                "name": o if ":" in o else f"{o}:0",
                "dtype": shapes[o][0] if o in shapes else None,
                "shape": shapes[o][1] if o in shapes else None,
            }
            for o in outs
        ],
        "ops": dict(ops.most_common()),
        "functions": len(graph_def.library.function),
        "function_ops": dict(fn_ops.most_common()),
        "variables": variables,
        "weight_constants": len(weights),
        "parameters": var_params + weight_params,
    }


def _meta_summary(meta: Any, what: str, allow_unsafe_ops: bool) -> dict[str, Any]:
    from detector.model.safety import check_meta_graph

    refused = _safety(check_meta_graph, meta, what, allow_unsafe_ops)
    info = meta.meta_info_def
    collections = {
        name: decode_collection(name, col) for name, col in sorted(meta.collection_def.items())
    }
    saver = meta.saver_def
    outputs = None
    signature_outputs = sorted(
        {
            t.name
            for key, sig in meta.signature_def.items()
            if key != "__saved_model_init_op"
            for t in sig.outputs.values()
            if t.name
        }
    )
    if signature_outputs:  # a SavedModel: its signatures say what the outputs are
        outputs = signature_outputs
    elif "outputs" in meta.collection_def:
        outputs = [node_name(t) for t in meta.collection_def["outputs"].node_list.value]
    else:
        from detector.model.graphfile import OD_OUTPUTS

        names = {n.name for n in meta.graph_def.node}
        if all(o in names for o in OD_OUTPUTS):
            outputs = list(OD_OUTPUTS)
    return {
        "meta_info": {
            "meta_graph_version": info.meta_graph_version,
            "tags": list(info.tags),
            "tensorflow_version": info.tensorflow_version,
            "tensorflow_git_version": info.tensorflow_git_version,
            "ops_used": sorted(op.name for op in info.stripped_op_list.op),
        },
        "saver": {
            "filename_tensor": saver.filename_tensor_name,
            "save_tensor": saver.save_tensor_name,
            "restore_op": saver.restore_op_name,
            "max_to_keep": saver.max_to_keep,
            "sharded": saver.sharded,
            "keep_checkpoint_every_n_hours": saver.keep_checkpoint_every_n_hours,
            "version": int(saver.version),
        }
        if meta.HasField("saver_def")
        else None,
        "collections": collections,
        "safety": refused or "ok",
        "graph": graph_summary(meta.graph_def, importable=refused is None, outputs=outputs),
    }


def decode_collection(name: str, col: Any, limit: int = 50) -> dict[str, Any]:
    """A collection's entries as text: node names, numbers, or the protos its bytes hold
    (``VariableDef`` → the variable name, ``CondContextDef`` → its name, ...)."""
    from tensorflow.python.framework import ops

    kind = col.WhichOneof("kind")
    items = list(getattr(col, kind).value) if kind else []
    proto_type = ops.get_collection_proto_type(name) if kind == "bytes_list" else None
    shown: list[Any] = []
    for item in items[:limit]:
        if not isinstance(item, bytes):
            shown.append(item)
            continue
        if proto_type is not None:
            try:
                msg = proto_type.FromString(item)
                label = next(
                    (
                        getattr(msg, f)
                        for f in ("variable_name", "context_name", "name")
                        if hasattr(msg, f) and getattr(msg, f)
                    ),
                    "",
                )
                shown.append(f"{proto_type.__name__}({label})" if label else proto_type.__name__)
                continue
            except Exception:
                pass
        try:
            text = item.decode("utf-8")
            shown.append(text if text.isprintable() else f"<{len(item)} bytes>")
        except UnicodeDecodeError:
            shown.append(f"<{len(item)} bytes>")
    return {"kind": kind, "count": len(items), "items": shown}


def inspect_checkpoint(path: Path, tensor: str | None, allow_unsafe_ops: bool) -> dict[str, Any]:
    """A checkpoint: its tensors (object-based ones by variable name, object path and raw
    key), a warning when the ``.data`` is missing or unreadable, its state file and graph."""
    from detector.model.checkpoints import (
        data_problem,
        open_reader,
        read_state_file,
        resolve_checkpoint,
    )
    from detector.model.graphfile import parse_meta_graph
    from detector.model.objckpt import checkpoint_entries, find_entry, is_object_based

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
        result.update(_meta_summary(meta, str(ref.meta), allow_unsafe_ops))
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
    from tensorflow.python.framework import tensor_util

    name = node_name(tensor)
    node = next((n for n in graph_def.node if n.name == name), None)
    if node is None or node.op != "Const":
        consts = [n.name for n in graph_def.node if n.op == "Const"]
        import difflib

        raise ModelError(
            f"graph has no constant {tensor!r}",
            hint=f"closest: {difflib.get_close_matches(name, consts, n=5)}",
        )
    return {"name": name, **tensor_value(tensor_util.MakeNdarray(node.attr["value"].tensor))}


def inspect_graph_file(
    path: Path, fmt: str, tensor: str | None, allow_unsafe_ops: bool
) -> dict[str, Any]:
    from detector.model.graphfile import OD_OUTPUTS, parse_graph_def, parse_meta_graph
    from detector.model.safety import check_graph_def

    if fmt == "meta":
        meta = parse_meta_graph(path)
        result = {
            "format": "meta",
            "path": str(path),
            **_meta_summary(meta, str(path), allow_unsafe_ops),
        }
        graph_def = meta.graph_def
    else:
        graph_def = parse_graph_def(path, fmt)
        refused = _safety(check_graph_def, graph_def, str(path), allow_unsafe_ops)
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
    from detector.model.safety import parse_saved_model
    from detector.tools import inspect_saved as sm

    saved = parse_saved_model(path)
    graphs = []
    warnings = []
    for meta in saved.meta_graphs:
        summary = _meta_summary(
            meta, f"{path} [{','.join(meta.meta_info_def.tags)}]", allow_unsafe_ops
        )
        summary["signatures"] = sm.signatures(meta)
        summary["functions"] = sm.functions(meta)
        summary["_graph_def"] = meta.graph_def
        if keras3_saved_by_tf(meta):
            warnings.append(
                "a Keras 3 model saved with tf.saved_model.save: its variables are not "
                "restored by the graph loader, so it cannot be run, frozen or converted "
                "here; re-export it with model.export('folder')"
            )
        graphs.append(summary)
    result: dict[str, Any] = {"format": "saved_model", "path": str(path), "meta_graphs": graphs}
    result.update(sm.variables(path, tensor))
    if warnings:
        result["warnings"] = warnings
    return result


def inspect_tflite(path: Path) -> dict[str, Any]:
    from detector.tflite.reader import read_tflite

    model = read_tflite(path)

    def describe(i: int) -> dict[str, Any]:
        t = model.tensors[i]
        out: dict[str, Any] = {"name": t.name, "shape": list(t.shape), "dtype": str(t.dtype)}
        if t.quant is not None and t.quant.scale.size:
            out["quantization"] = {
                "scale": float(t.quant.scale.ravel()[0]),
                "zero_point": int(t.quant.zero_point.ravel()[0]),
            }
        return out

    return {
        "format": "tflite",
        "path": str(path),
        "bytes": path.stat().st_size,
        "version": model.version,
        "description": model.description,
        "inputs": [describe(i) for i in model.inputs],
        "outputs": [describe(i) for i in model.outputs],
        "ops": dict(Counter(op.name for op in model.operators).most_common()),
        "tensors": len(model.tensors),
        "parameters": int(sum(t.data.size for t in model.tensors if t.data is not None)),
    }


def inspect_path(
    path: str | Path,
    *,
    tensor: str | None = None,
    allow_unsafe_ops: bool = False,
    nodes: bool = False,
    node_filter: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Describe a checkpoint, ``.meta``, frozen ``.pb``/``.pbtxt``, SavedModel or ``.tflite``.

    Args:
        path: The model path (format found from its contents).
        tensor: A variable or constant whose values to include.
        allow_unsafe_ops: Import graphs with refused ops too (for their output shapes).
        nodes: Also list every node (name, op, inputs, output tensors) under ``nodes``.
        node_filter: ``{"op": "Conv2D,MatMul", "name": "logits/*"}`` to keep some nodes.

    Raises:
        DetectorError: The path is missing, unreadable or not a model.
    """
    from detector.model.formats import detect_format

    path = Path(path)
    fmt = detect_format(path)
    try:
        if fmt == "checkpoint":
            info = inspect_checkpoint(path, tensor, allow_unsafe_ops)
        elif fmt in ("meta", "frozen_pb", "pbtxt"):
            info = inspect_graph_file(path, fmt, tensor, allow_unsafe_ops)
        elif fmt == "saved_model":
            info = inspect_saved_model(path, tensor, allow_unsafe_ops)
        else:
            info = inspect_tflite(path)
        _attach_nodes(info, nodes or node_filter is not None, node_filter or {})
        return info
    except DetectorError:
        raise
    except Exception as exc:
        raise ModelError(
            f"cannot inspect '{path}' ({fmt}): {type(exc).__name__}: {exc}",
            hint="is the file complete?",
        ) from exc


def _attach_nodes(info: dict[str, Any], wanted: bool, node_filter: dict[str, str]) -> None:
    """Add the node listing where asked, and drop the GraphDefs kept for it."""
    from detector.tools.nodes import list_nodes

    holders = [info, *info.get("meta_graphs", [])]
    op, name = node_filter.get("op", ""), node_filter.get("name", "")
    graph_def = info.pop("_graph_def", None)
    for holder in holders[1:]:
        gd = holder.pop("_graph_def", None)
        if wanted and gd is not None:
            holder["nodes"] = list_nodes(gd, op=op, name=name)
    if wanted and graph_def is not None:
        info["nodes"] = list_nodes(graph_def, op=op, name=name)
    if wanted and info.get("format") == "checkpoint" and info.get("meta"):
        from detector.model.graphfile import parse_meta_graph

        info["nodes"] = list_nodes(parse_meta_graph(info["meta"]).graph_def, op=op, name=name)
    if wanted and info.get("format") == "tflite":
        raise ModelError(
            "--nodes lists TensorFlow graph nodes; a .tflite has operators",
            hint="its operators are counted under 'ops' without --nodes",
        )


def refusals(info: dict[str, Any]) -> list[str]:
    """The allowlist refusals an inspect report holds (empty when every graph passed)."""
    found = []
    for holder in [info, *info.get("meta_graphs", [])]:
        verdict = holder.get("safety")
        if verdict not in (None, "ok"):
            found.append(str(verdict))
    return found
