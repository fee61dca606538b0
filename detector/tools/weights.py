"""Pull weights out of any model file into ``.npz``, and assign them to a graph's variables by name.

A frozen graph keeps its weights as constants. Which constants were variables is read
from the ``freeze`` sidecar JSON when there is one; otherwise from the graph: TF1's
``<var>`` Const feeding ``<var>/read``, TF2's Const feeding a converted ``ReadVariableOp``
(an Identity), or a float Const used as the weights of a Conv2D, DepthwiseConv2dNative,
MatMul, BiasAdd or batch norm (possibly through Identity nodes). Arrays are written with
``np.savez``: no pickle, ever. :func:`restore_weights` never fails silently: it returns
(or raises with) the matched, missing, unexpected and shape-mismatched names.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import CheckpointError, ModelError
from detector.model.graphfile import node_name, tf_module

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


def find_weight_constants(graph_def: Any, sidecar: Path | None = None) -> dict[str, str]:
    """Constant node name → variable name for every weight constant of a frozen graph.

    Args:
        graph_def: A frozen ``GraphDef``.
        sidecar: The ``freeze`` sidecar JSON; when it exists its mapping is used as is.
    """
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    if sidecar is not None and sidecar.is_file():
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        mapping = {c: v["variable"] for c, v in data.get("variables", {}).items() if c in consts}
        log.info("using %d variable names from %s", len(mapping), sidecar)
        return mapping
    nodes = {n.name: n for n in graph_def.node}
    found: dict[str, str] = {}
    for node in graph_def.node:
        if node.op in ("Identity", "ReadVariableOp") and node.input:
            src = node_name(node.input[0])
            if src in consts and (node.name == f"{src}/read" or "ReadVariableOp" in node.name):
                found[src] = src
        for pos in _WEIGHT_INPUTS.get(node.op, ()):
            if pos >= len(node.input):
                continue
            src = node_name(node.input[pos])
            while src in nodes and nodes[src].op == "Identity" and nodes[src].input:
                src = node_name(nodes[src].input[0])
            if src in consts and consts[src].attr["dtype"].type in _FLOATS:
                found[src] = src
    return found


def _frozen_weights(path: Path, fmt: str, allow_unsafe_ops: bool) -> dict[str, np.ndarray]:
    from tensorflow.python.framework import tensor_util

    from detector.model.graphfile import read_graph_def
    from detector.tools.freeze import sidecar_path

    graph_def = read_graph_def(path, fmt, allow_unsafe_ops=allow_unsafe_ops)
    mapping = find_weight_constants(graph_def, sidecar_path(path))
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    return {
        var: tensor_util.MakeNdarray(consts[c].attr["value"].tensor)
        for c, var in sorted(mapping.items())
    }


def _checkpoint_weights(path: Path) -> dict[str, np.ndarray]:
    from detector.model.checkpoints import resolve_checkpoint

    tf = tf_module()
    ref = resolve_checkpoint(path)
    reader = tf.train.load_checkpoint(str(ref.prefix))
    out: dict[str, np.ndarray] = {}
    for key in sorted(reader.get_variable_to_shape_map()):
        if key == "_CHECKPOINTABLE_OBJECT_GRAPH":
            continue
        value = reader.get_tensor(key)
        if not isinstance(value, np.ndarray) or value.dtype.kind in "OSU":
            continue  # strings cannot be stored without pickle
        out[key.replace("/.ATTRIBUTES/VARIABLE_VALUE", "")] = value
    return out


def read_weights(path: str | Path, *, allow_unsafe_ops: bool = False) -> dict[str, np.ndarray]:
    """Variable name → array from a frozen graph, a checkpoint or a SavedModel.

    Raises:
        ModelError: The path is a ``.tflite`` or holds no weights.
    """
    from detector.model.formats import detect_format

    path = Path(path)
    fmt = detect_format(path)
    if fmt in ("frozen_pb", "pbtxt"):
        weights = _frozen_weights(path, fmt, allow_unsafe_ops)
    elif fmt in ("checkpoint", "meta"):
        weights = _checkpoint_weights(path)
    elif fmt == "saved_model":
        from tensorflow.python.framework import tensor_util

        from detector.model.graphfile import load_graph
        from detector.tools.freeze import freeze_loaded

        with load_graph(path, allow_unsafe_ops=allow_unsafe_ops) as loaded:
            result = freeze_loaded(loaded, verify=False, what=str(path))
        consts = {n.name: n for n in result.graph_def.node}
        weights = {
            v: tensor_util.MakeNdarray(consts[c].attr["value"].tensor)
            for c, v in sorted(result.variables.items())
        }
    else:
        raise ModelError(
            f"'{path}' is a TFLite model; export-weights reads TF files",
            hint=f"convert it first: python main.py model convert '{path}' -o m.pb",
        )
    if not weights:
        raise ModelError(
            f"found no weights in '{path}'",
            hint="a frozen graph's weights are found through its sidecar JSON or "
            "the Conv2D/MatMul/BiasAdd constants; is it the right file?",
        )
    return weights


def export_weights(
    path: str | Path, out: str | Path, *, allow_unsafe_ops: bool = False
) -> dict[str, Any]:
    """Write ``out`` (``.npz``, ``np.savez``, no pickle) of name → array; return a summary."""
    weights = read_weights(path, allow_unsafe_ops=allow_unsafe_ops)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:  # a file object: np.savez must not append its own suffix
        np.savez(f, **weights)  # type: ignore[arg-type]  # numpy stubs: **arrays
    return {
        "out": str(out),
        "arrays": len(weights),
        "bytes": out.stat().st_size,
        "parameters": int(sum(a.size for a in weights.values())),
        "names": {k: [list(a.shape), str(a.dtype)] for k, a in weights.items()},
    }


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read a weights ``.npz`` without ever unpickling."""
    with np.load(Path(path), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@dataclass
class RestoreReport:
    """What :func:`restore_weights` did, name by name.

    Attributes:
        matched: Variables assigned (or to be assigned) a value.
        missing: Graph variables with no weight (not skipped).
        unexpected: Weights with no variable (not skipped).
        shape_mismatched: ``(name, variable shape, weight shape)`` (dtype clashes too).
        skipped: Names on either side matching the skip pattern.
        untouched: Non-trainable variables with no weight (steps, optimizer slots): left as
            initialised, not an error.
    """

    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatched: list[tuple[str, list[int | None], list[int]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)
    _ops: list[Any] = field(default_factory=list, repr=False)
    _feed: dict[Any, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatched)

    def summary(self) -> str:
        parts = [
            f"{len(self.matched)} matched",
            f"{len(self.skipped)} skipped",
            f"{len(self.untouched)} non-trainable left as initialised",
        ]
        if self.missing:
            parts.append(f"missing (no weight): {self.missing[:8]}")
        if self.unexpected:
            parts.append(f"unexpected (no variable): {self.unexpected[:8]}")
        if self.shape_mismatched:
            parts.append(
                "shape mismatched: "
                + ", ".join(
                    f"{n} variable {a} vs weight {b}" for n, a, b in self.shape_mismatched[:8]
                )
            )
        return "; ".join(parts)

    def assign(self, session: Any) -> None:
        """Assign the matched values in ``session`` (for a report made from a graph)."""
        if self._ops:
            session.run(self._ops, self._feed)


def restore_weights(
    session_or_graph: Any,
    weights: Mapping[str, np.ndarray],
    skip: str | re.Pattern[str] | None = None,
    *,
    strict: bool = True,
) -> RestoreReport:
    """Assign ``weights`` to the graph's variables with the same names.

    Run the graph's initializer first: only matched variables are assigned. Given a
    session the values are assigned at once; given a graph, call ``report.assign(sess)``.

    Args:
        session_or_graph: A ``tf.compat.v1.Session`` or a ``tf.Graph``.
        weights: Name (``conv1/kernel``, ``conv1/kernel:0`` or ``conv1/kernel/read``) → array.
        skip: A regular expression (searched in each name); matching variables and weights
            are left alone: the "all but the last layer" case (``skip="^logits/"``).
        strict: Raise, assigning nothing, on any missing, unexpected or mismatched name;
            when False, assign the matches and log a warning with the rest.

    Every global variable can be matched (batch-norm moving averages too); a trainable
    one without a weight is *missing*, a non-trainable one (global step, optimizer slots)
    is left *untouched*.

    Raises:
        CheckpointError: When strict and the names or shapes do not all match.
    """
    tf = tf_module()
    graph = getattr(session_or_graph, "graph", session_or_graph)
    keys = tf.compat.v1.GraphKeys
    variables = {v.op.name: v for v in graph.get_collection(keys.GLOBAL_VARIABLES)}
    trainable = {v.op.name for v in graph.get_collection(keys.TRAINABLE_VARIABLES)}
    if not variables:
        raise CheckpointError(
            "the graph has no variables to restore into", hint="build the model's variables first"
        )
    pattern = re.compile(skip) if isinstance(skip, str) else skip
    values = {weight_name(k): np.asarray(v) for k, v in weights.items()}
    report = RestoreReport()
    for name in sorted(set(variables) | set(values)):
        if pattern is not None and pattern.search(name):
            report.skipped.append(name)
        elif name not in values:
            (report.missing if name in trainable else report.untouched).append(name)
        elif name not in variables:
            report.unexpected.append(name)
        else:
            var, value = variables[name], values[name]
            shape = var.shape.as_list() if var.shape.rank is not None else None
            dtype = var.dtype.base_dtype.as_numpy_dtype
            if (
                shape is not None
                and (
                    len(shape) != value.ndim
                    or any(
                        d is not None and d != s for d, s in zip(shape, value.shape, strict=True)
                    )
                )
            ) or np.dtype(dtype).kind != value.dtype.kind:
                report.shape_mismatched.append((name, shape or [], list(value.shape)))
            else:
                report.matched.append(name)
                report._ops.append(var.initializer)
                report._feed[var.initializer.inputs[1]] = value.astype(dtype, copy=False)
    if not report.ok:
        if strict:
            raise CheckpointError(
                f"weights do not match the graph's variables: {report.summary()}",
                hint="pass a skip pattern for layers you replaced (e.g. "
                "'^logits/'), or strict=False to assign the matches only",
            )
        log.warning("restoring weights: %s", report.summary())
    if session_or_graph is not graph:
        report.assign(session_or_graph)
    return report
