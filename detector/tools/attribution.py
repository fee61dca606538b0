"""Find which constants of a frozen graph are weights, and name each after its variable.

Which constants were variables is read from the ``freeze`` sidecar JSON when there is one;
otherwise from the graph: TF1's ``<var>`` Const feeding ``<var>/read``, TF2's Const feeding
a converted ``ReadVariableOp`` (an Identity), or a float Const used as the weights of a
Conv2D, DepthwiseConv2dNative, MatMul, BiasAdd or batch norm (possibly through Identity
nodes). Every walk is linear in the graph.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.model.graphfile import node_name

log = logging.getLogger(__name__)

#: Op → input positions that hold weights (the kernel, bias, batch-norm parameters).
_WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "Conv2D": (1,),
    "Conv3D": (1,),
    "DepthwiseConv2dNative": (1,),
    "MatMul": (0, 1),
    "BatchMatMul": (1,),
    "BatchMatMulV2": (1,),
    "BatchMatMulV3": (1,),
    "BiasAdd": (1,),
    "FusedBatchNorm": (1, 2, 3, 4),
    "FusedBatchNormV2": (1, 2, 3, 4),
    "FusedBatchNormV3": (1, 2, 3, 4),
    "Conv2DBackpropInput": (1,),
}
_FLOATS = frozenset({1, 2, 19, 14})  # DT_FLOAT, DT_DOUBLE, DT_HALF, DT_BFLOAT16


def weight_name(name: str) -> str:
    """The variable name a tensor or read node stands for: ``'v/read:0'`` → ``'v'``."""
    name = node_name(name)
    return name[: -len("/read")] if name.endswith("/read") else name


#: Ops a value passes through unchanged on its way to where it is used (TF1 loops' Enter,
#: lowered TF2 control flow's Switch/Merge and function-input Identities).
_PASS_THROUGH = frozenset({"Identity", "Enter", "RefEnter", "Switch", "RefSwitch", "Snapshot"})
#: Elementwise ops whose constant operand is a learned bias or scale (Keras 3 Dense adds its
#: bias with AddV2; inference batch norm folds into Sub/Mul/AddV2).
_ELEMENTWISE = frozenset({"Add", "AddV2", "Sub", "Mul", "RealDiv"})
_LOOPS = frozenset({"While", "StatelessWhile", "If", "StatelessIf"})
_KIND = {
    "Conv2D": "conv",
    "Conv3D": "conv",
    "DepthwiseConv2dNative": "conv",
    "Conv2DBackpropInput": "conv",
    "MatMul": "matmul",
    "BatchMatMul": "matmul",
    "BatchMatMulV2": "matmul",
    "BatchMatMulV3": "matmul",
    "BiasAdd": "bias",
    "FusedBatchNorm": "batchnorm",
    "FusedBatchNormV2": "batchnorm",
    "FusedBatchNormV3": "batchnorm",
}


@dataclass
class Attribution:
    """Which constants of a frozen graph are weights, and how each was recognised.

    Attributes:
        names: Constant node name → the weight's name.
        kinds: Constant node name → how it was found: ``sidecar``, ``variable`` (a TF1
            ``<var>/read`` or TF2 ``ReadVariableOp`` reader), ``conv``, ``matmul``,
            ``bias``, ``batchnorm`` (also the Sub/Mul/AddV2 of unfused batch norm),
            ``loop`` (fed into a ``While``/``If``), or ``elementwise`` (another Add/Mul operand).
        unattributed: Float constants with more than one element that none of these
            explain (listed in every export report: never dropped silently).
    """

    names: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    unattributed: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind in self.kinds.values():
            out[kind] = out.get(kind, 0) + 1
        return dict(sorted(out.items()))


def _elements(node: Any) -> int:
    dims = [d.size for d in node.attr["value"].tensor.tensor_shape.dim]
    return int(np.prod(dims)) if dims else 1


_LIVE_ROOTS = frozenset({"Placeholder", "PlaceholderWithDefault", "Merge", "_Arg"})


def _computed_nodes(graph_def: Any, consumers: dict[str, list[tuple[Any, int]]]) -> set[str]:
    """Nodes whose value depends on more than constants (an input, a loop variable): the
    data-edge closure forward from the placeholders, in one linear pass."""
    live = {n.name for n in graph_def.node if n.op in _LIVE_ROOTS}
    stack = list(live)
    while stack:
        for node, _ in consumers.get(stack.pop(), []):
            if node.name not in live:
                live.add(node.name)
                stack.append(node.name)
    return live


def _bn_role(
    reader: str, consumers: dict[str, list[tuple[Any, int]]], nodes: dict[str, Any]
) -> str | None:
    """``gamma``, ``beta``, ``moving_mean`` or ``moving_variance`` from how unfused inference
    batch norm uses a value: ``Rsqrt(var + eps)``, ``* gamma``, ``beta - mean * scale``."""
    for node, pos in consumers.get(reader, []):
        readers_of_node = consumers.get(node.name, [])
        if node.op in ("Add", "AddV2") and any(c.op == "Rsqrt" for c, _ in readers_of_node):
            return "moving_variance"
        if node.op == "Sub" and pos == 0:
            return "beta"
        if node.op == "Mul":
            if any(c.op == "Sub" and p == 1 for c, p in readers_of_node):
                return "moving_mean"
            other = nodes.get(node_name(node.input[1 - pos]))
            if other is not None and other.op == "Rsqrt":
                return "gamma"
    return None


def attribute_constants(graph_def: Any, sidecar: Path | None = None) -> Attribution:
    """Find every weight constant of a frozen graph; see :class:`Attribution`.

    With the ``freeze`` sidecar JSON its mapping is used as is. Otherwise each float
    constant is followed through pass-through ops (``Identity``, ``Enter``, ``Switch``)
    to where it is used: a variable reader (the name says ``/read`` or
    ``ReadVariableOp``), a weight input of Conv/MatMul/BiasAdd/FusedBatchNorm, an operand
    of an elementwise Add/Sub/Mul whose other side is computed, or a loop/branch input.
    """
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    if sidecar is not None and sidecar.is_file():
        return _from_sidecar(sidecar, consts)
    uses = _Uses.of(graph_def)
    out = Attribution()
    taken = set(consts)
    for name, node in consts.items():
        if node.attr["dtype"].type not in _FLOATS:
            continue
        kind, better = uses.kind_of(name)
        big = _elements(node) > 1
        if (
            better is not None
            or kind in ("variable", "conv", "matmul", "bias", "batchnorm", "loop")
            or (kind == "elementwise" and big)
        ):
            label = name
            if _GENERATED.search(name) and better:
                label = _clean(better)
                role = _bn_role(better, uses.consumers, uses.nodes) if kind == "batchnorm" else None
                if role is not None:  # Keras' Cast..Cast_3 say nothing: the math does
                    label = f"{label.rsplit('/', 1)[0]}/{role}"
                if label in taken or label in out.names.values():
                    label = f"{label}_{name.replace('/', '_')}"
            out.names[name] = label
            out.kinds[name] = kind or "elementwise"
        elif big:
            out.unattributed.append(name)
    return out


def _from_sidecar(sidecar: Path, consts: dict[str, Any]) -> Attribution:
    """The weights the ``freeze`` sidecar JSON names (those still in the graph)."""
    out = Attribution()
    data = json.loads(sidecar.read_text(encoding="utf-8"))
    out.names = {c: v["variable"] for c, v in data.get("variables", {}).items() if c in consts}
    out.kinds = dict.fromkeys(out.names, "sidecar")
    log.info("using %d variable names from %s", len(out.names), sidecar)
    return out


@dataclass(frozen=True)
class _Uses:
    """Where a graph's values go: each node by name, its readers, the computed nodes."""

    nodes: dict[str, Any]
    consumers: dict[str, list[tuple[Any, int]]]
    live: set[str]

    @classmethod
    def of(cls, graph_def: Any) -> _Uses:
        consumers: dict[str, list[tuple[Any, int]]] = {}
        for node in graph_def.node:
            for pos, inp in enumerate(node.input):
                if not inp.startswith("^"):
                    consumers.setdefault(node_name(inp), []).append((node, pos))
        nodes = {n.name: n for n in graph_def.node}
        return cls(nodes, consumers, _computed_nodes(graph_def, consumers))

    def computed(self, name: str) -> bool:
        """Whether a value depends on more than constants (an input, a variable)."""
        return name in self.live

    def kind_of(self, const: str) -> tuple[str | None, str | None]:
        """How a constant is used, and the name of its variable reader if it has one."""
        frontier, seen, reader, bn = [const], set(), None, False
        while frontier:
            cur = frontier.pop()
            if cur in seen:
                continue
            seen.add(cur)
            for node, pos in self.consumers.get(cur, []):
                is_reader = node.name == f"{cur}/read" or "ReadVariableOp" in node.name
                bn = bn or "batchnorm" in node.name.lower()
                if node.op in _PASS_THROUGH:
                    if is_reader and reader is None:
                        reader = node.name
                    frontier.append(node.name)
                elif node.op == "ReadVariableOp":
                    return "variable", reader or node.name
                elif node.op in _WEIGHT_INPUTS and pos in _WEIGHT_INPUTS[node.op]:
                    if (
                        node.op == "MatMul"
                        and pos == 0
                        and not self.computed(node_name(node.input[1]))
                    ):
                        continue
                    return _KIND[node.op], _role_name(node, pos)
                elif node.op in _ELEMENTWISE and len(node.input) == 2:
                    other = node_name(node.input[1 - pos])
                    if self.computed(other) or (reader and bn):
                        kind = "batchnorm" if bn else "elementwise"
                        return kind, reader
                elif node.op in _LOOPS:
                    return "loop", reader
        if reader:
            return ("batchnorm" if bn else "variable"), reader
        return None, None


#: Constant names TF2 freezing makes up (``unknown_3``, ``.../ReadVariableOp/resource``).
_GENERATED = re.compile(r"(^|/)unknown(_\d+)?$|/ReadVariableOp/resource$|^Const(_\d+)?$")
_BN_ROLES = {1: "gamma", 2: "beta", 3: "moving_mean", 4: "moving_variance"}


def _role_name(node: Any, pos: int) -> str:
    """The name a weight gets from the op using it: ``dense/MatMul`` input 1 → ``dense/kernel``."""
    scope = node.name.rsplit("/", 1)[0] if "/" in node.name else node.name
    kind = _KIND[node.op]
    if kind == "batchnorm":
        return f"{scope}/{_BN_ROLES.get(pos, pos)}"
    return f"{scope}/{'bias' if kind == 'bias' else 'kernel'}"


def _clean(name: str) -> str:
    """Drop the wrappers TF2 freezing adds: ``StatefulPartitionedCall/`` scopes, a trailing
    ``/ReadVariableOp`` or ``/read``."""
    name = re.sub(r"^(StatefulPartitionedCall(_\d+)?/|PartitionedCall(_\d+)?/)+", "", name)
    return re.sub(r"/(ReadVariableOp|read)$", "", name)


def find_weight_constants(graph_def: Any, sidecar: Path | None = None) -> dict[str, str]:
    """Constant node name → variable name for every weight constant of a frozen graph.

    Args:
        graph_def: A frozen ``GraphDef``.
        sidecar: The ``freeze`` sidecar JSON; when it exists its mapping is used as is.
    """
    return attribute_constants(graph_def, sidecar).names
