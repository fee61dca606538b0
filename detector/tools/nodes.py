"""List a graph's nodes — name, op, inputs, output tensors — as ``graph.get_operations()`` does.

Read from the GraphDef (and a function library's bodies), so a graph the allowlist refuses
can be listed too: nothing is imported. Output tensors carry their dtype where the node's
attributes say it (``dtype``, ``T``, ``out_type``, ``output_types``); shapes come from a
``_output_shapes`` attribute when the writer recorded one.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from detector.tools.tensors import dtype_name, shape_of

_DTYPE_ATTRS = ("dtype", "T", "out_type", "DstT", "Tout", "output_types", "component_types")


def _dtypes(node: Any) -> list[str]:
    if node.op in ("VarHandleOp", "HashTableV2", "MutableHashTableV2", "StackV2"):
        return ["resource"]

    for key in _DTYPE_ATTRS:
        if key in node.attr:
            value = node.attr[key]
            if value.HasField("list"):
                return [dtype_name(t) for t in value.list.type]
            if value.type:
                return [dtype_name(value.type)]
    return []


def _shapes(node: Any) -> list[list[int | None] | None]:
    if "_output_shapes" not in node.attr:
        return []
    return [shape_of(s) for s in node.attr["_output_shapes"].list.shape]


def _imported_shapes(graph: Any, name: str) -> tuple[list[str], list[list[int | None] | None]]:
    """Dtypes and shapes TensorFlow inferred for an imported node's outputs."""
    try:
        op = graph.get_operation_by_name(name)
    except (KeyError, ValueError):
        return [], []
    return [t.dtype.name for t in op.outputs], [
        t.shape.as_list() if t.shape.rank is not None else None for t in op.outputs
    ]


def describe_node(
    node: Any, function: str | None = None, graph: Any | None = None
) -> dict[str, Any]:
    """One node as a dict: name, op, inputs, device, output tensors (dtype, shape).

    Given the imported ``graph``, dtypes and shapes are the ones TensorFlow inferred (as
    ``graph.get_operations()`` shows them); otherwise they come from the node's attributes.
    """
    dtypes, shapes = _dtypes(node), _shapes(node)
    if graph is not None and function is None:
        dtypes, shapes = _imported_shapes(graph, node.name)
    count = max(len(dtypes), len(shapes)) or (0 if node.op in ("NoOp", "Assert") else 1)
    outputs = [
        {
            "name": f"{node.name}:{i}",
            "dtype": dtypes[i] if i < len(dtypes) else None,
            "shape": shapes[i] if i < len(shapes) else None,
        }
        for i in range(count)
    ]
    out: dict[str, Any] = {"name": node.name, "op": node.op, "inputs": list(node.input)}
    if node.device:
        out["device"] = node.device
    if function:
        out["function"] = function
    out["outputs"] = outputs
    return out


def list_nodes(
    graph_def: Any,
    *,
    op: str = "",
    name: str = "",
    functions: bool = True,
    graph: Any | None = None,
) -> list[dict[str, Any]]:
    """Every node (and function body node) of ``graph_def``, filtered.

    Args:
        op: Comma-separated op types to keep (``Conv2D,MatMul``); empty keeps all.
        name: A glob (``logits/*``) or plain substring the node name must match.
        functions: Include the nodes of the function library (``If``/``While`` bodies,
            TF2 functions), marked with their function's name.
        graph: ``graph_def`` imported (after the allowlist passed): shapes as TF infers them.
    """
    ops = {o.strip() for o in op.split(",") if o.strip()}

    def keep(node: Any) -> bool:
        if ops and node.op not in ops:
            return False
        return not name or fnmatch.fnmatchcase(node.name, name) or name in node.name

    out = [describe_node(n, graph=graph) for n in graph_def.node if keep(n)]
    if functions:
        for fdef in graph_def.library.function:
            out += [describe_node(n, fdef.signature.name) for n in fdef.node_def if keep(n)]
    return out
