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

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import CheckpointError, ModelError
from detector.model.checkpoints import open_reader, resolve_checkpoint
from detector.model.formats import detect_format
from detector.model.graphfile import load_graph, read_graph_def, tf_module
from detector.model.objckpt import checkpoint_entries
from detector.model.sizes import tensor_array
from detector.tools.attribution import attribute_constants, weight_name
from detector.tools.freeze import freeze_loaded, sidecar_path
from detector.tools.keras_inspect import keras_weights

log = logging.getLogger(__name__)


def _frozen_weights(
    path: Path, fmt: str, allow_unsafe_ops: bool
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    graph_def = read_graph_def(path, fmt, allow_unsafe_ops=allow_unsafe_ops)
    found = attribute_constants(graph_def, sidecar_path(path))
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    weights = {
        var: tensor_array(consts[c].attr["value"].tensor, f"constant '{c}' of '{path}'")
        for c, var in sorted(found.names.items())
    }
    kinds = {found.names[c]: k for c, k in found.kinds.items()}
    return weights, {
        "kinds": found.counts(),
        "weight_kinds": kinds,
        "unattributed": {
            c: [d.size for d in consts[c].attr["value"].tensor.tensor_shape.dim]
            for c in found.unattributed
        },
    }


def _checkpoint_weights(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every tensor of a checkpoint, scalars included (object-based ones by variable name;
    a variable stored under two object paths, as SavedModels do, once); strings cannot go
    into an ``.npz`` without pickle and are listed as skipped."""

    ref = resolve_checkpoint(path)
    reader = open_reader(ref.prefix)
    out: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    skipped: dict[str, str] = {}
    entries = checkpoint_entries(reader)
    by_name: dict[str, list[Any]] = {}
    for entry in entries:
        if entry.name:
            by_name.setdefault(entry.name, []).append(entry)
    for name, same in by_name.items():
        if len(same) > 1 and all(
            np.array_equal(reader.get_tensor(e.key), reader.get_tensor(same[0].key))
            for e in same[1:]
        ):
            keep = same[0]
            entries = [e for e in entries if e.name != name or e is keep]
            idx = entries.index(keep)
            entries[idx] = type(keep)(keep.key, keep.path, keep.name, name)
    for entry in entries:
        try:
            value = np.asarray(reader.get_tensor(entry.key))
        except Exception as exc:
            raise CheckpointError(
                f"cannot read '{entry.key}' from checkpoint '{ref.prefix}': "
                f"{str(exc).strip().splitlines()[0]}",
                hint="a .data-* shard is missing, cut off or corrupt: copy it again",
            ) from exc
        if value.dtype.kind in "OSU":
            skipped[entry.export_name] = "string tensor (an .npz holds numbers only)"
            continue
        out[entry.export_name] = value
        kinds[entry.export_name] = "scalar" if value.ndim == 0 else "array"
    counts: dict[str, int] = {}
    for k in kinds.values():
        counts[k] = counts.get(k, 0) + 1
    return out, {"kinds": counts, "weight_kinds": kinds, "skipped": skipped}


def read_weights(path: str | Path, *, allow_unsafe_ops: bool = False) -> dict[str, np.ndarray]:
    """Variable name → array from a frozen graph, a checkpoint or a SavedModel.

    Raises:
        ModelError: The path is a ``.tflite`` or holds no weights.
    """
    return read_weights_report(path, allow_unsafe_ops=allow_unsafe_ops)[0]


def read_weights_report(
    path: str | Path, *, allow_unsafe_ops: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """:func:`read_weights` and what it found: counts per kind, skipped and unattributed."""

    path = Path(path)
    fmt = detect_format(path)
    details: dict[str, Any] = {}
    if fmt in ("frozen_pb", "pbtxt"):
        weights, details = _frozen_weights(path, fmt, allow_unsafe_ops)
    elif fmt in ("checkpoint", "meta"):
        weights, details = _checkpoint_weights(path)
    elif fmt in ("keras", "keras_weights"):
        weights, details = keras_weights(path, fmt)
    elif fmt == "saved_model" and (path / "variables" / "variables.index").is_file():
        weights, details = _checkpoint_weights(path / "variables" / "variables")
    elif fmt == "saved_model":
        with load_graph(path, allow_unsafe_ops=allow_unsafe_ops) as loaded:
            result = freeze_loaded(loaded, verify=False, what=str(path))
        consts = {n.name: n for n in result.graph_def.node}
        weights = {
            v: tensor_array(consts[c].attr["value"].tensor, f"constant '{c}' of '{path}'")
            for c, v in sorted(result.variables.items())
        }
        kinds = {k: "scalar" if a.ndim == 0 else "array" for k, a in weights.items()}
        details = {
            "kinds": {
                k: sum(1 for v in kinds.values() if v == k) for k in sorted(set(kinds.values()))
            },
            "weight_kinds": kinds,
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
    return weights, details


def export_weights(
    path: str | Path, out: str | Path, *, allow_unsafe_ops: bool = False
) -> dict[str, Any]:
    """Write ``out`` (``.npz``, ``np.savez``, no pickle) of name → array; return a summary."""
    weights, details = read_weights_report(path, allow_unsafe_ops=allow_unsafe_ops)
    for name, why in details.get("skipped", {}).items():
        log.warning("export-weights: skipped '%s': %s", name, why)
    if details.get("unattributed"):
        log.warning(
            "export-weights: %d float constant(s) of '%s' could not be attributed to a "
            "weight and are not exported: %s",
            len(details["unattributed"]),
            path,
            ", ".join(details["unattributed"]),
        )
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
        "kinds": details.get("kinds", {}),
        "weight_kinds": details.get("weight_kinds", {}),
        "skipped": details.get("skipped", {}),
        "unattributed": details.get("unattributed", {}),
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
    graph = getattr(session_or_graph, "graph", session_or_graph)
    variables, trainable = _graph_variables(graph)
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
            _match(report, name, variables[name], values[name])
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


def _graph_variables(graph: Any) -> tuple[dict[str, Any], set[str]]:
    """``(every global variable by name, the trainable ones' names)``; raises when none."""
    keys = tf_module().compat.v1.GraphKeys
    variables = {v.op.name: v for v in graph.get_collection(keys.GLOBAL_VARIABLES)}
    trainable = {v.op.name for v in graph.get_collection(keys.TRAINABLE_VARIABLES)}
    if not variables:
        raise CheckpointError(
            "the graph has no variables to restore into", hint="build the model's variables first"
        )
    return variables, trainable


def _match(report: RestoreReport, name: str, var: Any, value: np.ndarray) -> None:
    """Record ``value`` for ``var`` as matched (its assignment queued) or as mismatched when
    its shape or kind of dtype differs from the variable's."""
    shape = var.shape.as_list() if var.shape.rank is not None else None
    dtype = var.dtype.base_dtype.as_numpy_dtype
    if (
        shape is not None
        and (
            len(shape) != value.ndim
            or any(d is not None and d != s for d, s in zip(shape, value.shape, strict=True))
        )
    ) or np.dtype(dtype).kind != value.dtype.kind:
        report.shape_mismatched.append((name, shape or [], list(value.shape)))
    else:
        report.matched.append(name)
        report._ops.append(var.initializer)
        report._feed[var.initializer.inputs[1]] = value.astype(dtype, copy=False)
