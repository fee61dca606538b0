"""Choose a graph's outputs when none are given: collections, the OD API names, inference sinks.

A training graph's ends are not its outputs: the loss and its shape checks, the optimizer's
bookkeeping reads (``Adam/ReadVariableOp``), the global step. Freezing all of them pulls in
every slot variable and the labels placeholder. So, in order: the outputs a graph names
itself (the ``outputs`` collection ``unfreeze``/``convert`` write, the ``inference_op``
collection training code sets), the TF Object Detection API names, and the sinks that
compute from a trainable variable without a loss op behind them.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Sequence
from typing import Any

from detector.config import OD_OUTPUT_NODES
from detector.errors import ModelError
from detector.model.graph_info import NOT_OUTPUTS

log = logging.getLogger(__name__)

#: The TF Object Detection API outputs (node names), used when a command is given no outputs.
OD_OUTPUTS = OD_OUTPUT_NODES
#: Named outputs ``--explain-outputs`` adds beside the detections (other nodes read some of
#: them, so they are no sinks): kept whenever the OD API outputs are chosen.
EXPLAIN_OUTPUTS = (
    "explain/feature_map",
    "explain/grad",
    "explain/fine_map",
    "explain/fine_grad",
    "explain/boxes",
    "explain/scores",
)
#: Collections a graph names its outputs in (ours first, then training code's convention).
OUTPUT_COLLECTIONS = ("outputs", "inference_op")
#: Ops that only a loss uses: a sink behind one is a loss, not an output.
LOSS_OPS = frozenset(
    {
        "SparseSoftmaxCrossEntropyWithLogits",
        "SoftmaxCrossEntropyWithLogits",
        "SigmoidCrossEntropyWithLogits",
        "L2Loss",
        "Assert",
    }
)
_VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})


def node_name(name: str) -> str:
    """``'^a/b:1'`` → ``'a/b'``."""
    return name.lstrip("^").split(":")[0]


def sink_outputs(graph_def: Any) -> list[str]:
    """Node names nothing reads: a graph's likely outputs, detection-like names first."""
    consumed = {node_name(i) for n in graph_def.node for i in n.input}
    names = [
        n.name
        for n in graph_def.node
        if n.name not in consumed
        and n.op not in NOT_OUTPUTS
        and not n.name.startswith(("init", "report_uninitialized", "gradients/"))
        and not re.match(r"save(_\d+)?/", n.name)
        and not n.op.startswith(
            ("Save", "Restore", "Apply", "ResourceApply", "Assign", "Scatter", "ResourceScatter")
        )
    ]
    return sorted(names, key=lambda n: ("detection" not in n and "num_" not in n, n))


def _ancestors(nodes: dict[str, Any], root: str) -> set[str]:
    seen: set[str] = set()
    stack = [root]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(node_name(i) for i in nodes[name].input)
    return seen


def inference_sinks(graph_def: Any, trainable: set[str]) -> list[str]:
    """The sinks that read a trainable variable and have no loss op behind them."""
    nodes = {n.name: n for n in graph_def.node}
    kept = []
    for sink in sink_outputs(graph_def):
        behind = _ancestors(nodes, sink)
        ops = {nodes[n].op for n in behind}
        reads = {n for n in behind if nodes[n].op in _VARIABLE_OPS}
        if not ops & LOSS_OPS and reads & trainable:
            kept.append(sink)
    return kept


def collection_outputs(meta: Any) -> list[str] | None:
    """The outputs a MetaGraphDef names in one of :data:`OUTPUT_COLLECTIONS`, if any."""
    for key in OUTPUT_COLLECTIONS:
        if key in meta.collection_def:
            values = list(meta.collection_def[key].node_list.value)
            if values:
                return [node_name(t) for t in values]
    return None


def trainable_names(meta: Any) -> set[str]:
    """Variable node names in the ``trainable_variables`` collection of a MetaGraphDef."""
    from tensorflow.core.framework import variable_pb2

    col = meta.collection_def.get("trainable_variables") if meta.collection_def else None
    if col is None:
        return set()
    return {
        node_name(variable_pb2.VariableDef.FromString(b).variable_name)
        for b in col.bytes_list.value
    }


def _missing_error(graph_def: Any, missing: list[str], names: set[str], what: str) -> ModelError:
    near = {m: difflib.get_close_matches(node_name(m), names, n=3) for m in missing}
    hints = "; ".join(f"'{m}': did you mean {near[m]}" for m in missing if near[m])
    return ModelError(
        f"graph '{what}' has no node {', '.join(repr(m) for m in missing)}; candidate "
        f"outputs: {sink_outputs(graph_def)[:10]}",
        hint=hints or f"pass --outputs with node names from 'python main.py model inspect {what}'",
    )


def choose_outputs(
    graph_def: Any, given: Sequence[str] | None, what: str, trainable: set[str] | None = None
) -> list[str]:
    """The output node names: those given (checked), else the OD API names, else the sinks
    (only those computing from a ``trainable`` variable without a loss, when given)."""
    names = {n.name for n in graph_def.node}
    if given:
        missing = [g for g in given if node_name(g) not in names]
        if missing:
            raise _missing_error(graph_def, missing, names, what)
        return [node_name(g) for g in given]
    if all(o in names for o in OD_OUTPUTS):
        return [*OD_OUTPUTS, *(o for o in EXPLAIN_OUTPUTS if o in names)]
    sinks = inference_sinks(graph_def, trainable) if trainable else []
    sinks = sinks or sink_outputs(graph_def)
    if not sinks:
        raise ModelError(
            f"graph '{what}' has no output candidates", hint="pass --outputs NODE[,NODE...]"
        )
    log.info("no outputs given and no TF OD API names in %s; using %s", what, sinks)
    return sinks
