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
from detector.model.graphfile import (
    node_name,
    placeholders,
    sink_outputs,
    tf_module,
)

log = logging.getLogger(__name__)

_FULL_VALUES = 10_000  # larger tensors are summarised


def _dtype(enum: int) -> str:
    return str(tf_module().dtypes.as_dtype(enum).name)


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
    collections = {}
    for name, col in sorted(meta.collection_def.items()):
        kind = col.WhichOneof("kind")
        items = list(getattr(col, kind).value) if kind else []
        shown = [i if isinstance(i, str | int | float) else type(i).__name__ for i in items[:8]]
        collections[name] = {
            "kind": kind,
            "count": len(items),
            "items": [s.decode() if isinstance(s, bytes) else s for s in shown],
        }
    saver = meta.saver_def
    outputs = None
    if "outputs" in meta.collection_def:
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


def _tensor_value(value: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"shape": list(value.shape), "dtype": str(value.dtype)}
    if value.dtype.kind in "OSU":
        out["values"] = [
            v.decode(errors="replace") if isinstance(v, bytes) else str(v)
            for v in value.ravel()[:100]
        ]
    elif value.size <= _FULL_VALUES:
        out["values"] = value.tolist()
    else:
        out.update(
            min=float(value.min()),
            max=float(value.max()),
            mean=float(value.mean()),
            first=value.ravel()[:20].tolist(),
        )
    return out


def inspect_checkpoint(path: Path, tensor: str | None, allow_unsafe_ops: bool) -> dict[str, Any]:
    from detector.model.checkpoints import read_state_file, resolve_checkpoint

    tf = tf_module()
    ref = resolve_checkpoint(path)
    reader = tf.train.load_checkpoint(str(ref.prefix))
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    keys = sorted(k for k in shapes if k != "_CHECKPOINTABLE_OBJECT_GRAPH")
    result: dict[str, Any] = {
        "format": "checkpoint",
        "prefix": str(ref.prefix),
        "step": ref.step,
        "meta": str(ref.meta) if ref.meta else None,
        "variables": {k: list(shapes[k]) for k in keys},
        "dtypes": {k: dtypes[k].name for k in keys},
        "parameters": int(
            sum(np.prod(shapes[k], dtype=np.int64) for k in keys if dtypes[k].name != "string")
        ),
    }
    folder = path if path.is_dir() else ref.prefix.parent
    state = read_state_file(folder)
    if state is not None:
        result["state_file"] = state_summary(state)
    if ref.meta is not None:
        meta = tf.compat.v1.MetaGraphDef()
        meta.ParseFromString(ref.meta.read_bytes())
        result.update(_meta_summary(meta, str(ref.meta), allow_unsafe_ops))
    if tensor is not None:
        name = tensor[:-2] if tensor.endswith(":0") else tensor
        if name not in shapes:
            import difflib

            raise ModelError(
                f"checkpoint '{ref.prefix}' has no tensor {tensor!r}",
                hint=f"closest: {difflib.get_close_matches(name, keys, n=5)}; "
                "run without --tensor to list them",
            )
        result["tensor"] = {"name": name, **_tensor_value(reader.get_tensor(name))}
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
    return {"name": name, **_tensor_value(tensor_util.MakeNdarray(node.attr["value"].tensor))}


def inspect_graph_file(
    path: Path, fmt: str, tensor: str | None, allow_unsafe_ops: bool
) -> dict[str, Any]:
    from detector.model.safety import check_graph_def

    tf = tf_module()
    if fmt == "meta":
        meta = tf.compat.v1.MetaGraphDef()
        meta.ParseFromString(path.read_bytes())
        result = {
            "format": "meta",
            "path": str(path),
            **_meta_summary(meta, str(path), allow_unsafe_ops),
        }
        graph_def = meta.graph_def
    else:
        graph_def = tf.compat.v1.GraphDef()
        if fmt == "pbtxt":
            from google.protobuf import text_format

            text_format.Parse(path.read_text(encoding="utf-8"), graph_def)
        else:
            graph_def.ParseFromString(path.read_bytes())
        refused = _safety(check_graph_def, graph_def, str(path), allow_unsafe_ops)
        from detector.model.graphfile import OD_OUTPUTS

        names = {n.name for n in graph_def.node}
        outs = list(OD_OUTPUTS) if all(o in names for o in OD_OUTPUTS) else None
        result = {
            "format": fmt,
            "path": str(path),
            "bytes": path.stat().st_size,
            "safety": refused or "ok",
            "graph": graph_summary(graph_def, importable=refused is None, outputs=outs),
        }
    if tensor is not None:
        result["tensor"] = _graph_tensor(graph_def, tensor)
    return result


def inspect_saved_model(path: Path, tensor: str | None, allow_unsafe_ops: bool) -> dict[str, Any]:
    tf = tf_module()
    from detector.model.safety import parse_saved_model

    saved = parse_saved_model(path)
    graphs = []
    for meta in saved.meta_graphs:
        summary = _meta_summary(
            meta, f"{path} [{','.join(meta.meta_info_def.tags)}]", allow_unsafe_ops
        )
        summary["signatures"] = {
            key: {
                "method": sig.method_name,
                "inputs": {
                    k: {"name": v.name, "dtype": _dtype(v.dtype), "shape": _shape(v.tensor_shape)}
                    for k, v in sig.inputs.items()
                },
                "outputs": {
                    k: {"name": v.name, "dtype": _dtype(v.dtype), "shape": _shape(v.tensor_shape)}
                    for k, v in sig.outputs.items()
                },
            }
            for key, sig in sorted(meta.signature_def.items())
        }
        graphs.append(summary)
    result: dict[str, Any] = {"format": "saved_model", "path": str(path), "meta_graphs": graphs}
    index = path / "variables" / "variables.index"
    if index.is_file():
        reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
        shapes = reader.get_variable_to_shape_map()
        keys = sorted(k for k in shapes if k != "_CHECKPOINTABLE_OBJECT_GRAPH")
        result["variables"] = {
            k.replace("/.ATTRIBUTES/VARIABLE_VALUE", ""): list(shapes[k]) for k in keys
        }
        result["parameters"] = int(sum(np.prod(shapes[k], dtype=np.int64) for k in keys))
        if tensor is not None:
            match = next(
                (k for k in keys if tensor in (k, k.replace("/.ATTRIBUTES/VARIABLE_VALUE", ""))),
                None,
            )
            if match is None:
                raise ModelError(
                    f"SavedModel '{path}' has no variable {tensor!r}",
                    hint="run without --tensor to list them",
                )
            result["tensor"] = {"name": tensor, **_tensor_value(reader.get_tensor(match))}
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
    path: str | Path, *, tensor: str | None = None, allow_unsafe_ops: bool = False
) -> dict[str, Any]:
    """Describe a checkpoint, ``.meta``, frozen ``.pb``/``.pbtxt``, SavedModel or ``.tflite``.

    Args:
        path: The model path (format found from its contents).
        tensor: A variable or constant whose values to include.
        allow_unsafe_ops: Import graphs with refused ops too (for their output shapes).

    Raises:
        DetectorError: The path is missing, unreadable or not a model.
    """
    from detector.model.formats import detect_format

    path = Path(path)
    fmt = detect_format(path)
    try:
        if fmt == "checkpoint":
            return inspect_checkpoint(path, tensor, allow_unsafe_ops)
        if fmt in ("meta", "frozen_pb", "pbtxt"):
            return inspect_graph_file(path, fmt, tensor, allow_unsafe_ops)
        if fmt == "saved_model":
            return inspect_saved_model(path, tensor, allow_unsafe_ops)
        return inspect_tflite(path)
    except DetectorError:
        raise
    except Exception as exc:
        raise ModelError(
            f"cannot inspect '{path}' ({fmt}): {type(exc).__name__}: {exc}",
            hint="is the file complete?",
        ) from exc
