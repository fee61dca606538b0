"""Describe a loaded graph's inputs and likely outputs, for error messages that help.

When a configured tensor name is missing, users need the names the graph does have:
its placeholders (the inputs) and the tensors nothing consumes (the outputs).
"""

from __future__ import annotations

from typing import Any

#: Ops that end a graph without being a result (init, save/restore, assignments).
NOT_OUTPUTS = frozenset(
    {
        "ApplyGradientDescent",
        "Assert",
        "Assign",
        "AssignAdd",
        "AssignSub",
        "AssignVariableOp",
        "Const",
        "IsVariableInitialized",
        "MergeV2Checkpoints",
        "NoOp",
        "Placeholder",
        "PlaceholderWithDefault",
        "ResourceApplyGradientDescent",
        "Restore",
        "RestoreSlice",
        "RestoreV2",
        "Save",
        "SaveSlices",
        "SaveV2",
        "ShardedFilename",
        "StringJoin",
        "VarHandleOp",
        "VarIsInitializedOp",
        "Variable",
        "VariableV2",
    }
)


def _shape(t: Any) -> str:
    shape = t.shape
    if shape.rank is None:
        return "?"
    return "[" + ",".join("?" if d is None else str(d) for d in shape.as_list()) + "]"


def describe_graph(graph: Any, limit: int = 12) -> tuple[list[str], list[str]]:
    """``(placeholders, candidate outputs)`` of a ``tf.Graph`` as ``'name:0 dtype [shape]'``.

    Candidates are outputs of ops no other op reads, detection-like names first.
    """
    consumed: set[str] = set()
    ops = graph.get_operations()
    for op in ops:
        consumed.update(t.name for t in op.inputs)
    placeholders = [
        f"{t.name} {t.dtype.name} {_shape(t)}"
        for op in ops
        if op.type in ("Placeholder", "PlaceholderWithDefault")
        for t in op.outputs
    ]
    candidates = [
        t
        for op in ops
        if op.type not in NOT_OUTPUTS and not op.name.startswith(("save/", "init"))
        for t in op.outputs
        if t.name not in consumed
    ]
    candidates.sort(key=lambda t: "detection" not in t.name)
    shown = [f"{t.name} {t.dtype.name} {_shape(t)}" for t in candidates[:limit]]
    if len(candidates) > limit:
        shown.append(f"... {len(candidates) - limit} more")
    return placeholders[:limit], shown


def describe_signature(sig: Any) -> tuple[list[str], list[str]]:
    """``(inputs, outputs)`` of a SavedModel ``SignatureDef`` as ``'key (tensor:0)'``."""
    inputs = [f"{k} ({v.name})" for k, v in sorted(sig.inputs.items())]
    outputs = [f"{k} ({v.name})" for k, v in sorted(sig.outputs.items())]
    return inputs, outputs
