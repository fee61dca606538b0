"""Where an SSD graph's non-max suppression starts and the limits it holds, read from the GraphDef.

Two kinds of graph are read: ``CombinedNonMaxSuppression`` (one op: its inputs are the decoded
boxes and the scores, its constant inputs the limits), and the classic TF Object Detection API
export, ``BatchMultiClassNonMaxSuppression``: a ``map/while`` loop over the images holding, per
class, a score filter (``Greater``), the boxes clipped to the window, and a
``NonMaxSuppressionV2``..``V5`` op. For that kind the entry is the decoded boxes and scores
that flow into the loop's name scope, and the limits are the constants the per-class ops read
(through the loop's ``Enter`` / ``Identity`` nodes); every class must hold the same ones.
Pure graph analysis: no session, no TensorFlow import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

COMBINED = "CombinedNonMaxSuppression"
PER_CLASS_NMS = (
    "NonMaxSuppressionV2",
    "NonMaxSuppressionV3",
    "NonMaxSuppressionV4",
    "NonMaxSuppressionV5",
)
CLASSIC_SCOPE = "BatchMultiClassNonMaxSuppression"
_THROUGH = ("Identity", "Enter", "RefEnter", "Cast")


class Unsupported(Exception):
    """The graph's post-processing is not one the NumPy version reproduces (the reason)."""


@dataclass(frozen=True)
class NmsEntry:
    """Where suppression starts.

    Attributes:
        kind: ``combined`` or ``classic``.
        boxes: The decoded boxes tensor fed to it (``[B, N, 1, 4]``).
        scores: The class scores tensor fed to it (``[B, N, C]``).
        node: The ``CombinedNonMaxSuppression`` node's name (``combined``), else ``""``.
    """

    kind: str
    boxes: str
    scores: str
    node: str = ""


def nms_entry(graph_def: Any, feeds: dict[str, set[str]]) -> NmsEntry:
    """The suppression's entry in a post-processing ``GraphDef``.

    Args:
        graph_def: The post-processing graph.
        feeds: Per network tensor (placeholder name), the names of the nodes computed from it.

    Raises:
        Unsupported: Neither one ``CombinedNonMaxSuppression`` nor a classic per-class loop.
    """
    combined = [n for n in graph_def.node if n.op == COMBINED]
    per_class = [n for n in graph_def.node if n.op in PER_CLASS_NMS]
    if len(combined) == 1 and not per_class:
        node = combined[0]
        return NmsEntry("combined", _ref(node.input[0]), _ref(node.input[1]), node.name)
    if combined or not per_class:
        ops = sorted({n.op for n in graph_def.node if "NonMaxSuppression" in n.op})
        raise Unsupported(
            f"post-processing has {len(combined)} {COMBINED} op(s) and {len(per_class)} "
            f"per-class NMS op(s) (NMS ops found: {', '.join(ops) or 'none'})"
        )
    scope = _classic_scope(per_class)
    outside = _inputs_into(graph_def, scope)
    names = list(feeds)
    if len(names) != 2:
        raise Unsupported("the NumPy version takes box encodings and class logits")

    def only(mine: str, other: str) -> list[str]:
        return [t for t in outside if _node(t) in feeds[mine] and _node(t) not in feeds[other]]

    boxes, scores = only(names[0], names[1]), only(names[1], names[0])
    if len(boxes) != 1 or len(scores) != 1:
        raise Unsupported(f"cannot tell the boxes from the scores entering {scope}")
    return NmsEntry("classic", boxes[0], scores[0])


def classic_limits(graph_def: Any) -> dict[str, float]:
    """``iou_threshold``, ``score_threshold`` and ``max_per_class`` of a classic loop.

    Raises:
        Unsupported: A limit is not a constant, or the classes hold different ones.
    """
    nodes = {n.name: n for n in graph_def.node}
    per_class = [n for n in graph_def.node if n.op in PER_CLASS_NMS]
    scope = _classic_scope(per_class)
    found: dict[str, set[float]] = {"iou_threshold": set(), "max_per_class": set()}
    scores: set[float] = set()
    for node in per_class:
        found["iou_threshold"].add(_constant(nodes, node.input[3]))
        found["max_per_class"].add(_limit(nodes, node.input[2]))
        if node.op != "NonMaxSuppressionV2":
            scores.add(_constant(nodes, node.input[4]))
    for node in graph_def.node:  # the score filter in front of each class's NMS
        if node.op == "Greater" and node.name.startswith(scope):
            value = _maybe_constant(nodes, node.input[1])
            if value is not None and np.isfinite(value) and value != 0.0:
                scores.add(value)
    out: dict[str, float] = {}
    for name, values in (*found.items(), ("score_threshold", scores or {float("-inf")})):
        if len(values) != 1:
            raise Unsupported(f"the classes' NMS ops hold different {name} values: {values}")
        out[name] = values.pop()
    return out


def _classic_scope(per_class: list[Any]) -> str:
    """The ``.../BatchMultiClassNonMaxSuppression/`` scope holding every per-class NMS op."""
    scopes = set()
    for node in per_class:
        parts = node.name.split("/")
        if CLASSIC_SCOPE not in parts:
            raise Unsupported(f"NMS op {node.name} is outside a {CLASSIC_SCOPE} scope")
        scopes.add("/".join(parts[: parts.index(CLASSIC_SCOPE) + 1]) + "/")
    if len(scopes) != 1:
        raise Unsupported(f"NMS ops in {len(scopes)} {CLASSIC_SCOPE} scopes")
    return scopes.pop()


def _inputs_into(graph_def: Any, scope: str) -> list[str]:
    """Tensors made outside ``scope`` and read inside it (constants left out), in order."""
    nodes = {n.name: n for n in graph_def.node}
    seen: list[str] = []
    for node in graph_def.node:
        if not node.name.startswith(scope):
            continue
        for ref in node.input:
            if ref.startswith("^"):
                continue
            producer = nodes.get(_node(ref))
            if producer is None or producer.name.startswith(scope) or producer.op == "Const":
                continue
            if _ref(ref) not in seen:
                seen.append(_ref(ref))
    return seen


def _constant(nodes: dict[str, Any], ref: str) -> float:
    value = _maybe_constant(nodes, ref)
    if value is None:
        raise Unsupported(f"NMS input {ref} is not a constant")
    return value


def _maybe_constant(nodes: dict[str, Any], ref: str) -> float | None:
    """The scalar constant ``ref`` is (through identities and loop entries), or None."""
    node = nodes.get(_node(ref))
    while node is not None and node.op in _THROUGH and node.input:
        node = nodes.get(_node(node.input[0]))
    if node is None or node.op != "Const":
        return None
    return _scalar(node.attr["value"].tensor)


def _limit(nodes: dict[str, Any], ref: str) -> float:
    """A ``max_output_size``: a constant, or ``Minimum(constant, boxes left)``."""
    value = _maybe_constant(nodes, ref)
    if value is not None:
        return value
    node = nodes.get(_node(ref))
    if node is not None and node.op == "Minimum":
        found = [v for v in (_maybe_constant(nodes, i) for i in node.input) if v is not None]
        if len(found) == 1:
            return found[0]
    raise Unsupported(f"NMS limit {ref} is neither a constant nor min(constant, count)")


def _scalar(tensor: Any) -> float | None:
    """A scalar ``TensorProto``'s value (float or int fields), without TensorFlow."""
    if (
        list(tensor.tensor_shape.dim)
        and int(np.prod([d.size for d in tensor.tensor_shape.dim])) != 1
    ):
        return None
    for field in ("float_val", "int_val", "int64_val", "double_val"):
        values = list(getattr(tensor, field))
        if values:
            return float(values[0])
    content = tensor.tensor_content
    if content:
        dtype = {1: np.float32, 3: np.int32, 9: np.int64, 2: np.float64}.get(tensor.dtype)
        if dtype is not None and len(content) == np.dtype(dtype).itemsize:
            return float(np.frombuffer(content, dtype)[0])
    return None


def _node(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


def _ref(ref: str) -> str:
    """``name`` → ``name:0``; ``name:k`` unchanged."""
    return ref if ":" in ref else f"{ref}:0"
