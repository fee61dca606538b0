"""Where an SSD graph's explanation tensors are: pre-NMS boxes and scores, logits, feature maps.

Pure analysis of a ``GraphDef`` (no session): the split into network and post-processing
comes from :func:`detector.model.split.find_split`; from there

* the **pre-NMS decoded boxes and class scores** are the inputs of the
  ``CombinedNonMaxSuppression`` op;
* the **class logits** are found by walking up from those scores to the ``Sigmoid`` /
  ``Softmax`` that made them, and on through clamps and identities to the raw tensor (a clamped
  logit has no gradient where it saturates); the scores drop ``offset`` leading (background)
  columns of the logits;
* the **feature maps** are the tensors fed to convolutions; the **head maps** are those fed to
  the last convolutions before the split (the SSD box and class heads);
* the Grad-CAM layer is the finest head map; the gradient × activation layer is the deepest
  feature map finer than that (38×38 on the default model, whose finest head map is 19×19).
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from detector.errors import ModelError
from detector.model.split import NETWORK_OPS, SplitPoint

#: Ops an explanation can walk through from the scores up to the logits (shape-preserving).
_PASS_OPS = frozenset({"Identity", "Minimum", "Maximum", "ClipByValue", "Relu", "Relu6"})
_SCORE_OPS = frozenset({"Sigmoid", "Softmax"})
_SLICE_OPS = frozenset({"StridedSlice", "Slice", "Identity", "Minimum", "Maximum", "Relu"})

#: Static or measured shape of a tensor, ``None`` where unknown.
ShapeOf = Callable[[str], "tuple[int | None, ...] | None"]


@dataclass(frozen=True)
class ExplainPoints:
    """The tensors an explanation reads, by name (``node:port``).

    Attributes:
        boxes: Pre-NMS decoded boxes ``[B, N, q, 4]`` (or ``[B, N, 4]``), normalized
            ``ymin, xmin, ymax, xmax``; ``None`` when the graph has no combined NMS.
        scores: Pre-NMS class scores ``[B, N, C]``; ``None`` as for ``boxes``.
        logits: What is differentiated: the raw class logits ``[B, N, C + offset]`` (the
            scores themselves when no sigmoid/softmax was found).
        offset: Score column ``k`` is logit column ``k + offset`` (1: a background column).
        gradcam_layer: The Grad-CAM feature map.
        fine_layer: The gradient × activation feature map.
        heads: The maps the SSD heads read, finest first.
    """

    boxes: str | None
    scores: str | None
    logits: str | None
    offset: int
    gradcam_layer: str | None
    fine_layer: str | None
    heads: tuple[str, ...] = ()


def parse_ref(ref: str) -> tuple[str, int, bool]:
    """``'^a'`` → (a, 0, True); ``'a:1'`` → (a, 1, False); ``'a'`` → (a, 0, False)."""
    control = ref.startswith("^")
    name, _, port = ref.lstrip("^").partition(":")
    return name, int(port) if port else 0, control


def tensor_ref(ref: str) -> str:
    name, port, _ = parse_ref(ref)
    return f"{name}:{port}"


def combined_nms_inputs(graph_def: object) -> tuple[str, str] | None:
    """``(boxes, scores)`` tensor names read by the graph's ``CombinedNonMaxSuppression``."""
    for node in graph_def.node:  # type: ignore[attr-defined]
        if node.op == "CombinedNonMaxSuppression":
            return tensor_ref(node.input[0]), tensor_ref(node.input[1])
    return None


def find_logits(graph_def: object, scores: str, shape_of: ShapeOf) -> tuple[str, int]:
    """The raw logits behind ``scores`` and the column offset between them.

    Walks up the first data input through slices and clamps to a ``Sigmoid`` / ``Softmax``,
    then through clamps and identities above it. Without one, the scores are differentiated.
    """
    nodes = {n.name: n for n in graph_def.node}  # type: ignore[attr-defined]
    ref = scores
    found = None
    for _ in range(32):
        node = nodes.get(parse_ref(ref)[0])
        if node is None or not node.input:
            break
        if node.op in _SCORE_OPS:
            found = tensor_ref(node.input[0])
            break
        if node.op not in _SLICE_OPS:
            break
        ref = tensor_ref(node.input[0])
    if found is None:
        return scores, 0
    for _ in range(32):  # past clamps (a saturated clamp has a zero gradient)
        node = nodes.get(parse_ref(found)[0])
        if node is None or node.op not in _PASS_OPS or not node.input:
            break
        found = tensor_ref(node.input[0])
    logit_shape, score_shape = shape_of(found), shape_of(scores)
    offset = 0
    if logit_shape and score_shape and logit_shape[-1] and score_shape[-1]:
        offset = int(logit_shape[-1]) - int(score_shape[-1])
    return found, max(offset, 0)


def topo_order(graph_def: object) -> dict[str, int]:
    """Node name → position in a topological order (Kahn): larger is deeper."""
    nodes = {n.name: n for n in graph_def.node}  # type: ignore[attr-defined]
    children: dict[str, list[str]] = {}
    indegree = dict.fromkeys(nodes, 0)
    for name, node in nodes.items():
        for ref in node.input:
            parent = parse_ref(ref)[0]
            if parent in nodes:
                children.setdefault(parent, []).append(name)
                indegree[name] += 1
    todo = deque(n for n, d in indegree.items() if d == 0)
    order: dict[str, int] = {}
    while todo:
        name = todo.popleft()
        order[name] = len(order)
        for child in children.get(name, ()):
            indegree[child] -= 1
            if indegree[child] == 0:
                todo.append(child)
    return order


def feature_maps(graph_def: object, network_nodes: frozenset[str]) -> list[str]:
    """Tensors fed to a convolution on the network side, shallowest first."""
    order = topo_order(graph_def)
    maps: set[str] = set()
    for node in graph_def.node:  # type: ignore[attr-defined]
        if node.op in NETWORK_OPS and node.name in network_nodes and node.input:
            maps.add(tensor_ref(node.input[0]))
    return sorted(maps, key=lambda t: order.get(parse_ref(t)[0], -1))


def head_maps(graph_def: object, split: SplitPoint) -> list[str]:
    """Tensors read by the last convolutions before the split (the SSD heads)."""
    nodes = {n.name: n for n in graph_def.node}  # type: ignore[attr-defined]
    heads: set[str] = set()
    seen: set[str] = set()
    stack = [parse_ref(t)[0] for t in split.tensors]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        node = nodes[name]
        if node.op in NETWORK_OPS:
            heads.add(tensor_ref(node.input[0]))
            continue
        stack.extend(parse_ref(r)[0] for r in node.input if not r.startswith("^"))
    return sorted(heads)


def _area(shape: tuple[int | None, ...] | None) -> int:
    if not shape or len(shape) != 4 or not shape[1] or not shape[2]:
        return 0
    return int(shape[1]) * int(shape[2])


def choose_layers(
    maps: Sequence[str], heads: Sequence[str], shape_of: ShapeOf
) -> tuple[str | None, str | None, tuple[str, ...]]:
    """``(gradcam_layer, fine_layer, heads finest first)`` from the maps and their shapes.

    Grad-CAM: the finest head map (the deepest of equals). Gradient × activation: the deepest
    feature map finer than it (ties: the deepest); the head map itself when none is finer.
    """
    order = {t: i for i, t in enumerate(maps)}
    ranked = sorted(
        (h for h in heads if _area(shape_of(h))),
        key=lambda h: (-_area(shape_of(h)), -order.get(h, -1)),
    )
    if not ranked:
        return None, None, ()
    top = ranked[0]
    top_area = _area(shape_of(top))
    finer = [
        m for m in maps if _area(shape_of(m)) > top_area and order[m] < order.get(top, 1 << 30)
    ]
    if not finer:
        return top, top, tuple(ranked)
    next_area = min(_area(shape_of(m)) for m in finer)
    fine = [m for m in finer if _area(shape_of(m)) == next_area][-1]
    return top, fine, tuple(ranked)


def check_layer(graph_def: object, layer: str) -> str:
    """``layer`` as a tensor name (``node:port``), or a ``ModelError`` naming close matches."""
    names = {n.name for n in graph_def.node}  # type: ignore[attr-defined]
    name = parse_ref(layer)[0]
    if name not in names:
        near = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        raise ModelError(
            f"--layer {layer!r}: the graph has no node {name!r}",
            hint=f"did you mean {near}?"
            if near
            else "`python main.py model inspect MODEL` lists the graph's nodes",
        )
    return tensor_ref(layer)
