"""Summarise a GraphDef or MetaGraphDef for ``model inspect``: inputs, outputs, ops, variables.

Every pass over the nodes is linear (a 200,000-node graph costs about what TensorFlow's own
parse and import cost): the graph is imported at most once, only after it passed the op
allowlist, and that import is kept so the node listing can show every tensor's shape.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from detector.config import OD_OUTPUT_NODES as OD_OUTPUTS
from detector.errors import UnsafeGraphError
from detector.model.graphfile import node_name, placeholders, tf_module
from detector.model.outputs import sink_outputs
from detector.model.safety import check_meta_graph
from detector.tools.attribution import find_weight_constants
from detector.tools.tensors import dtype_name, shape_of

_VARIABLE_OPS = ("VariableV2", "VarHandleOp", "Variable")


def safety_verdict(check: Any, obj: Any, what: str, allow_unsafe_ops: bool) -> str | None:
    """None when the object passes the allowlist and structure checks, else the refusal."""
    try:
        check(obj, what=what, allow_unsafe_ops=allow_unsafe_ops)
    except UnsafeGraphError as exc:
        return exc.message
    return None


def import_for_shapes(graph_def: Any) -> Any:
    """A ``tf.Graph`` holding ``graph_def`` (checked by the caller), for tensor shapes."""
    tf = tf_module()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    return graph


def _output_shapes(
    graph: Any, outs: list[str]
) -> tuple[list[str], dict[str, tuple[str, list[int | None] | None]]]:
    shapes: dict[str, tuple[str, list[int | None] | None]] = {}
    kept = []
    for name in outs:
        op = graph.get_operation_by_name(node_name(name))
        if not op.outputs:  # a stateful op run for its effect (a train step)
            continue
        t = graph.get_tensor_by_name(name if ":" in name else f"{name}:0")
        shapes[name] = (t.dtype.name, t.shape.as_list() if t.shape.rank is not None else None)
        kept.append(name)
    return kept, shapes


def _parameters(graph_def: Any, variables: dict[str, Any]) -> tuple[int, int]:
    """``(weight constants, parameters)`` of variables and weight constants."""

    weights = find_weight_constants(graph_def)
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    weight_params = sum(
        math.prod(int(d or 0) for d in shape_of(consts[c].attr["value"].tensor.tensor_shape) or [])
        for c in weights
    )
    var_params = sum(math.prod(int(d or 0) for d in v["shape"] or []) for v in variables.values())
    return len(weights), var_params + weight_params


def graph_summary(
    graph_def: Any, *, importable: bool, outputs: list[str] | None = None
) -> dict[str, Any]:
    """Inputs, outputs with shapes, op histogram, variables and parameter count of a graph.

    The imported ``tf.Graph`` (when ``importable``) rides along under ``_tf_graph`` for
    the node listing; :func:`detector.tools.inspect.inspect_path` removes it.
    """
    inputs_names = set(placeholders(graph_def))
    inputs = [
        {
            "name": f"{n.name}:0",
            "dtype": dtype_name(n.attr["dtype"].type),
            "shape": shape_of(n.attr["shape"].shape) if "shape" in n.attr else None,
        }
        for n in graph_def.node
        if n.name in inputs_names
    ]
    outs = outputs if outputs is not None else sink_outputs(graph_def)
    shapes: dict[str, tuple[str, list[int | None] | None]] = {}
    graph = import_for_shapes(graph_def) if importable else None
    if graph is not None and outs:
        outs, shapes = _output_shapes(graph, outs)
    variables = {
        n.name: {
            "shape": shape_of(n.attr["shape"].shape),
            "dtype": dtype_name(n.attr["dtype"].type),
        }
        for n in graph_def.node
        if n.op in _VARIABLE_OPS
    }
    weight_constants, parameters = _parameters(graph_def, variables)
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
        "ops": dict(Counter(n.op for n in graph_def.node).most_common()),
        "functions": len(graph_def.library.function),
        "function_ops": dict(
            Counter(n.op for f in graph_def.library.function for n in f.node_def).most_common()
        ),
        "variables": variables,
        "weight_constants": weight_constants,
        "parameters": parameters,
        "_tf_graph": graph,
    }


def _meta_outputs(meta: Any) -> list[str] | None:
    """A MetaGraph's outputs: its signatures', its ``outputs`` collection, the OD API names."""
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
        return signature_outputs
    if "outputs" in meta.collection_def:
        return [node_name(t) for t in meta.collection_def["outputs"].node_list.value]
    names = {n.name for n in meta.graph_def.node}
    return list(OD_OUTPUTS) if all(o in names for o in OD_OUTPUTS) else None


def _saver(meta: Any) -> dict[str, Any] | None:
    if not meta.HasField("saver_def"):
        return None
    saver = meta.saver_def
    return {
        "filename_tensor": saver.filename_tensor_name,
        "save_tensor": saver.save_tensor_name,
        "restore_op": saver.restore_op_name,
        "max_to_keep": saver.max_to_keep,
        "sharded": saver.sharded,
        "keep_checkpoint_every_n_hours": saver.keep_checkpoint_every_n_hours,
        "version": int(saver.version),
    }


def meta_summary(meta: Any, what: str, allow_unsafe_ops: bool) -> dict[str, Any]:
    """A MetaGraphDef: meta info, saver, collections, safety verdict and its graph."""

    refused = safety_verdict(check_meta_graph, meta, what, allow_unsafe_ops)
    info = meta.meta_info_def
    return {
        "meta_info": {
            "meta_graph_version": info.meta_graph_version,
            "tags": list(info.tags),
            "tensorflow_version": info.tensorflow_version,
            "tensorflow_git_version": info.tensorflow_git_version,
            "ops_used": sorted(op.name for op in info.stripped_op_list.op),
        },
        "saver": _saver(meta),
        "collections": {
            name: decode_collection(name, col) for name, col in sorted(meta.collection_def.items())
        },
        "safety": refused or "ok",
        "graph": graph_summary(
            meta.graph_def, importable=refused is None, outputs=_meta_outputs(meta)
        ),
    }


def _collection_item(item: Any, proto_type: Any) -> Any:
    if not isinstance(item, bytes):
        return item
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
            return f"{proto_type.__name__}({label})" if label else proto_type.__name__
        except Exception:
            pass
    try:
        text = item.decode("utf-8")
        return text if text.isprintable() else f"<{len(item)} bytes>"
    except UnicodeDecodeError:
        return f"<{len(item)} bytes>"


def decode_collection(name: str, col: Any, limit: int = 50) -> dict[str, Any]:
    """A collection's entries as text: node names, numbers, or the protos its bytes hold
    (``VariableDef`` → the variable name, ``CondContextDef`` → its name, ...)."""
    from tensorflow.python.framework import ops

    kind = col.WhichOneof("kind")
    items = list(getattr(col, kind).value) if kind else []
    proto_type = ops.get_collection_proto_type(name) if kind == "bytes_list" else None
    shown = [_collection_item(item, proto_type) for item in items[:limit]]
    return {"kind": kind, "count": len(items), "items": shown}
