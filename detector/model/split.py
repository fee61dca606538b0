"""Where an SSD frozen graph splits into network and post-processing (pure graph analysis).

The original app ran the convolutional network on the GPU and the SSD post-processing
(box decoding + non-max suppression, which has no GPU kernel) on the CPU, each in its
own thread, with the split points hard-coded as node names of one graph. Here the split
is found from the graph itself: every convolution and everything it depends on belongs to
the network, every non-max-suppression op and everything depending on it belongs to the
post-processing, and the boundary between them is the *smallest* set of tensors that
separates the two (a minimum cut over the data-flow graph, closest to the network). For a
TF Object Detection API SSD this is the box encodings and class predictions, just as the
original's hard-coded names were.

``find_split`` and ``split_graph_defs`` are pure Python on a ``GraphDef`` (no session):
:mod:`detector.model.split_runtime` runs the two halves in two threads, and other backends
(explain, OpenVINO) reuse the same cut.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from detector.config import OD_OUTPUTS
from detector.errors import ModelError

log = logging.getLogger(__name__)

#: Ops that make up a detector's network: they decide the source side of the split.
NETWORK_OPS = frozenset(
    {
        "Conv2D",
        "Conv3D",
        "DepthwiseConv2dNative",
        "_FusedConv2D",
        "_FusedDepthwiseConv2dNative",
        "FusedDepthwiseConv2dNative",
        "FusedResizeAndPadConv2D",
        "FusedPadConv2D",
    }
)
#: Ops of SSD post-processing that only the CPU runs: they decide the sink side.
NMS_OPS = frozenset(
    {
        "NonMaxSuppression",
        "NonMaxSuppressionV2",
        "NonMaxSuppressionV3",
        "NonMaxSuppressionV4",
        "NonMaxSuppressionV5",
        "NonMaxSuppressionWithOverlaps",
        "CombinedNonMaxSuppression",
    }
)
_INF = 1 << 40


@dataclass(frozen=True)
class SplitPoint:
    """Where a graph splits.

    Attributes:
        tensors: Names (``node:port``) of the tensors crossing from the network to the
            post-processing, in a stable order.
        network_nodes: Names of the non-constant nodes on the network side.
        post_nodes: Names of the non-constant nodes on the post-processing side.
    """

    tensors: tuple[str, ...]
    network_nodes: frozenset[str] = field(repr=False)
    post_nodes: frozenset[str] = field(repr=False)


def _parse_input(ref: str) -> tuple[str, int, bool]:
    """``'^a'`` → (a, -1, True); ``'a:1'`` → (a, 1, False); ``'a'`` → (a, 0, False)."""
    if ref.startswith("^"):
        return ref[1:], -1, True
    name, _, port = ref.partition(":")
    return name, int(port) if port else 0, False


def _tensor_name(ref: str) -> str:
    name, port, _ = _parse_input(ref)
    return f"{name}:{port}"


def _ancestors(nodes: dict[str, Any], roots: Iterable[str]) -> set[str]:
    """Names of ``roots`` and every node they depend on (data and control inputs)."""
    seen: set[str] = set()
    stack = [r for r in roots if r in nodes]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for ref in nodes[name].input:
            parent = _parse_input(ref)[0]
            if parent in nodes and parent not in seen:
                stack.append(parent)
    return seen


def _const_like(nodes: dict[str, Any]) -> set[str]:
    """Nodes that depend on no placeholder: constants and pure functions of constants.

    They are copied to whichever side needs them, so they never cross the split.
    """
    children: dict[str, list[str]] = {}
    for name, node in nodes.items():
        for ref in node.input:
            children.setdefault(_parse_input(ref)[0], []).append(name)
    live = {n for n, d in nodes.items() if d.op in ("Placeholder", "PlaceholderWithDefault")}
    stack = list(live)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in live:
                live.add(child)
                stack.append(child)
    return set(nodes) - live


class _FlowNet:
    """A small max-flow network (Edmonds-Karp on adjacency dicts): graphs here are < 10k nodes."""

    def __init__(self) -> None:
        self.cap: dict[Any, dict[Any, int]] = {}

    def edge(self, u: Any, v: Any, c: int) -> None:
        self.cap.setdefault(u, {})
        self.cap.setdefault(v, {})
        self.cap[u][v] = self.cap[u].get(v, 0) + c
        self.cap[v].setdefault(u, 0)

    def max_flow(self, s: Any, t: Any, limit: int) -> int:
        flow = 0
        while flow < limit:
            parent = {s: None}
            todo = deque([s])
            while todo and t not in parent:
                u = todo.popleft()
                for v, c in self.cap[u].items():
                    if c > 0 and v not in parent:
                        parent[v] = u
                        todo.append(v)
            if t not in parent:
                break
            path, v = [], t
            while parent[v] is not None:
                path.append((parent[v], v))
                v = parent[v]
            push = min(self.cap[u][v] for u, v in path)
            for u, v in path:
                self.cap[u][v] -= push
                self.cap[v][u] += push
            flow += push
        return flow

    def reachable(self, s: Any) -> set[Any]:
        seen = {s}
        todo = deque([s])
        while todo:
            u = todo.popleft()
            for v, c in self.cap[u].items():
                if c > 0 and v not in seen:
                    seen.add(v)
                    todo.append(v)
        return seen


def find_split(graph_def: Any, outputs: Sequence[str] = OD_OUTPUTS) -> SplitPoint:
    """Find the boundary between a detector's network and its SSD post-processing.

    Args:
        graph_def: A ``tf.compat.v1.GraphDef`` (only ``node[].name/op/input`` are read).
        outputs: The output tensor names the post-processing must produce.

    Returns:
        The split: the fewest tensors whose values, computed by the network side, are all
        the post-processing side needs.

    Raises:
        ModelError: The graph has no convolutions, no non-max suppression, or they are
            interleaved so that no cut separates them.
    """
    nodes = _needed_nodes(graph_def, outputs)
    consts, forced_net, nms = _network_and_nms(nodes)
    side = _network_side(nodes, consts, forced_net, nms)
    network_nodes = frozenset(n for n in nodes if n not in consts and n in side)
    post_nodes = frozenset(n for n in nodes if n not in consts and n not in side)
    crossing: set[str] = set()
    for name in post_nodes:
        for ref in nodes[name].input:
            parent, port, control = _parse_input(ref)
            if not control and parent in network_nodes:
                crossing.add(f"{parent}:{port}")
    log.debug(
        "split: %d network nodes, %d post nodes, cut %s",
        len(network_nodes),
        len(post_nodes),
        sorted(crossing),
    )
    return SplitPoint(tuple(sorted(crossing)), network_nodes, post_nodes)


def _needed_nodes(graph_def: Any, outputs: Sequence[str]) -> dict[str, Any]:
    """The nodes the outputs depend on, by name (raises when an output is not in the graph)."""
    nodes = {n.name: n for n in graph_def.node}
    missing = [o for o in outputs if _parse_input(o)[0] not in nodes]
    if missing:
        raise ModelError(
            f"cannot split the graph: output tensors {missing} are not in it",
            hint="check model.*_tensor names; `python main.py model inspect MODEL` lists outputs",
        )
    needed = _ancestors(nodes, (_parse_input(o)[0] for o in outputs))
    return {k: v for k, v in nodes.items() if k in needed}


def _network_and_nms(nodes: dict[str, Any]) -> tuple[set[str], set[str], list[str]]:
    """``(constants, nodes that must run in the network, the NMS nodes)``; raises when the
    graph has no network part, no NMS, or a convolution that depends on NMS."""
    convs = [n for n, d in nodes.items() if d.op in NETWORK_OPS]
    nms = [n for n, d in nodes.items() if d.op in NMS_OPS]
    if not convs:
        raise ModelError(
            "cannot split the graph: it has no convolution ops feeding the outputs, so there "
            "is no network part to run on its own",
            hint="run the model as one graph (no split)",
        )
    if not nms:
        raise ModelError(
            "cannot split the graph: it has no non-max-suppression op (no SSD post-processing "
            f"found among ops {sorted({d.op for d in nodes.values()})[:30]})",
            hint="run the model as one graph (no split)",
        )
    consts = _const_like(nodes)
    forced_net = _ancestors(nodes, convs) - consts
    if forced_net & set(nms):
        raise ModelError(
            "cannot split the graph: a convolution depends on non-max suppression, so the "
            "network and the post-processing are interleaved",
            hint="run the model as one graph (no split)",
        )
    return consts, forced_net, nms


def _network_side(
    nodes: dict[str, Any], consts: set[str], forced_net: set[str], nms: list[str]
) -> set[Any]:
    """The nodes on the network side of the minimum cut (fewest crossing tensors) between
    the convolutions and the NMS; raises when no finite cut exists."""
    net = _FlowNet()
    src, sink = ("S",), ("T",)
    for name, node in nodes.items():
        if name in consts:
            continue
        net.cap.setdefault(name, {})
        for ref in node.input:
            parent, port, control = _parse_input(ref)
            if parent not in nodes or parent in consts:
                continue
            net.edge(name, parent, _INF)  # a consumer on the network side needs its producer there
            if control:
                continue  # a control edge into post-processing is dropped: the network ran first
            tensor = ("t", parent, port)
            net.edge(parent, tensor, 1 if (tensor not in net.cap) else 0)
            net.edge(tensor, parent, _INF)
            net.edge(tensor, name, _INF)
    for name in forced_net:
        net.edge(src, name, _INF)
    for name in nms:
        net.edge(name, sink, _INF)
    if net.max_flow(src, sink, _INF) >= _INF:
        raise ModelError(
            "cannot split the graph: no set of tensors separates the convolutions from the "
            "non-max suppression",
            hint="run the model as one graph (no split)",
        )
    return net.reachable(src)


def split_graph_defs(
    graph_def: Any, point: SplitPoint, outputs: Sequence[str], dtypes: dict[str, Any]
) -> tuple[Any, Any, list[str]]:
    """Build the two GraphDefs of a split.

    Args:
        graph_def: The whole graph.
        point: Its split (``find_split``).
        outputs: Output tensor names of the whole graph.
        dtypes: ``tensor name → tf.DType`` for each crossing tensor.

    Returns:
        ``(network_graph_def, post_graph_def, post_input_names)``: the post graph reads
        the crossing tensors from placeholders named ``post_input_names`` (same order as
        ``point.tensors``).
    """
    import tensorflow as tf

    nodes = {n.name: n for n in graph_def.node}
    net_keep = _ancestors(nodes, {t.split(":")[0] for t in point.tensors})
    net_gd = tf.compat.v1.GraphDef()
    net_gd.versions.CopyFrom(graph_def.versions)
    net_gd.library.CopyFrom(graph_def.library)
    net_gd.node.extend(n for n in graph_def.node if n.name in net_keep)

    renamed = {t: f"split/input_{i}" for i, t in enumerate(point.tensors)}
    post_gd = tf.compat.v1.GraphDef()
    post_gd.versions.CopyFrom(graph_def.versions)
    post_gd.library.CopyFrom(graph_def.library)
    for tensor, ph_name in renamed.items():
        ph = post_gd.node.add(name=ph_name, op="Placeholder")
        ph.attr["dtype"].type = dtypes[tensor].as_datatype_enum
    # post side: everything the outputs need, stopping at the crossing tensors
    keep: set[str] = set()
    stack = [_parse_input(o)[0] for o in outputs]
    while stack:
        name = stack.pop()
        if name in keep or name in point.network_nodes:
            continue
        keep.add(name)
        for ref in nodes[name].input:
            parent, port, control = _parse_input(ref)
            if f"{parent}:{port}" not in renamed and not (
                control and parent in point.network_nodes
            ):
                stack.append(parent)
    for node in graph_def.node:
        if node.name not in keep:
            continue
        copy = post_gd.node.add()
        copy.CopyFrom(node)
        del copy.input[:]
        for ref in node.input:
            parent, port, control = _parse_input(ref)
            if control and parent in point.network_nodes:
                continue
            copy.input.append(renamed.get(f"{parent}:{port}", ref) if not control else ref)
    return net_gd, post_gd, [f"{renamed[t]}:0" for t in point.tensors]
