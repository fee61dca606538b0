"""Freeze a checkpoint (or any loaded graph) into a GraphDef of constants, verified on a probe.

Works for TF1 ref variables (``VariableV2`` + ``<var>/read``) and TF2 resource variables
(``VarHandleOp`` + ``ReadVariableOp``), which TF's own ``freeze_graph --input_graph``
cannot handle. Devices are cleared, variables matching a deny list stay variables, the
result is checked to hold no other variable op, and the frozen graph must give the
checkpoint's outputs on a probe input. A sidecar JSON records which constants were which
variables so that ``unfreeze`` can give them their names back.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import ModelError
from detector.model.graphfile import (
    VARIABLE_OPS,
    LoadedGraph,
    load_graph,
    node_name,
    placeholders,
    tensor_name,
    tf_module,
)
from detector.model.sizes import check_frozen_size
from detector.tools.verify import compare_outputs, probe_feed

log = logging.getLogger(__name__)

SIDECAR_FORMAT = "detector-freeze/1"


def sidecar_path(pb: str | Path) -> Path:
    """Where a frozen graph's constant → variable mapping goes: ``x.pb`` → ``x.variables.json``."""
    pb = Path(pb)
    return pb.with_name(pb.stem + ".variables.json")


@dataclass(frozen=True)
class FreezeResult:
    """A frozen graph and what it came from.

    Attributes:
        graph_def: The frozen ``GraphDef``.
        inputs: Placeholder node names left in the frozen graph.
        outputs: Output node names.
        variables: Constant name → original variable name, for each frozen variable.
        kept: Variables left as variables (the deny list).
        max_diff: Largest absolute output difference on the probe (None: not verified).
    """

    graph_def: Any
    inputs: list[str]
    outputs: list[str]
    variables: dict[str, str]
    kept: list[str]
    max_diff: float | None


def freeze_loaded(
    loaded: LoadedGraph, *, exclude: Sequence[str] = (), verify: bool = True, what: str = "graph"
) -> FreezeResult:
    """Freeze a loaded graph's outputs; see the module docstring.

    Outputs and inputs keep their logical names: a SavedModel's signature keys become the
    frozen graph's node names (an Identity per output, renamed placeholders).

    Args:
        loaded: A graph in a session with its variables restored.
        exclude: Variable names or glob patterns (``logits/*``) to keep as variables.
        verify: Compare the frozen graph's outputs with the session's on a probe input.
        what: The source path, for messages.

    Raises:
        ModelError: Variables remain, or the outputs differ.
    """
    tf1 = tf_module().compat.v1
    out_nodes = sorted({node_name(t) for t in loaded.outputs.values()})
    graph_def = loaded.graph.as_graph_def()
    for node in graph_def.node:
        node.device = ""
    sub = tf1.graph_util.extract_sub_graph(graph_def, out_nodes)
    var_nodes = [n.name for n in sub.node if n.op in VARIABLE_OPS]
    kept = _kept_variables(var_nodes, exclude)
    check_frozen_size(_variable_bytes(sub, set(kept)), what)
    frozen = tf1.graph_util.convert_variables_to_constants(
        loaded.session, graph_def, out_nodes, variable_names_blacklist=kept or None
    )
    for node in frozen.node:
        node.device = ""
    _prune_library(frozen)
    _refuse_variables_left(frozen, kept, what)
    ops = {n.name: n.op for n in frozen.node}
    mapping = {v: v for v in var_nodes if v not in kept and ops.get(v) == "Const"}
    outputs = _name_outputs(frozen, loaded)
    _name_inputs(frozen, loaded)
    inputs = placeholders(frozen)
    max_diff = _verify(loaded, frozen, inputs, outputs, kept, what) if verify else None
    log.info(
        "froze %d variables of %s (%d kept); %d nodes",
        len(mapping),
        what,
        len(kept),
        len(frozen.node),
    )
    return FreezeResult(frozen, inputs, outputs, mapping, kept, max_diff)


def _kept_variables(var_nodes: list[str], exclude: Sequence[str]) -> list[str]:
    """The variables ``exclude`` (names or glob patterns) keeps; warns of patterns that
    match none of them."""
    kept = [v for v in var_nodes if any(fnmatch.fnmatchcase(v, p) or v == p for p in exclude)]
    unused = [p for p in exclude if not any(fnmatch.fnmatchcase(v, p) or v == p for v in var_nodes)]
    if unused:
        log.warning("--exclude %s matches no variable the outputs use", unused)
    return kept


def _refuse_variables_left(frozen: Any, kept: list[str], what: str) -> None:
    """Raise when a variable op not kept is still in the frozen graph or its functions."""
    left = [n.name for n in frozen.node if n.op in VARIABLE_OPS and n.name not in kept]
    left += [
        f"{f.signature.name}/{n.name}"
        for f in frozen.library.function
        for n in f.node_def
        if n.op in VARIABLE_OPS
    ]
    if left:
        raise ModelError(
            f"freezing {what} left variable ops in the graph: {left[:10]}",
            hint="these variables are not reachable from the session; "
            "check the outputs and the checkpoint",
        )


def _variable_bytes(graph_def: Any, kept: set[str]) -> dict[str, int]:
    """Variable name → bytes its constant will take (unknown dimensions count as 1)."""
    tf = tf_module()
    out = {}
    for node in graph_def.node:
        if node.op in VARIABLE_OPS and node.name not in kept:
            dims = [max(int(d.size), 1) for d in node.attr["shape"].shape.dim]
            size = tf.dtypes.as_dtype(node.attr["dtype"].type).size if "dtype" in node.attr else 4
            out[node.name] = int(np.prod(dims, dtype=np.float64)) * int(size)
    return out


def _prune_library(graph_def: Any) -> None:
    """Drop functions no node reaches (a SavedModel's save and restore functions)."""
    library = {f.signature.name: f for f in graph_def.library.function}
    if not library:
        return

    def calls(nodes: Any) -> set[str]:
        found = set()
        for n in nodes:
            if n.op in library:
                found.add(n.op)
            for value in n.attr.values():
                if value.HasField("func"):
                    found.add(value.func.name)
                elif value.HasField("list"):
                    found.update(f.name for f in value.list.func)
        return found & set(library)

    keep, stack = set(), list(calls(graph_def.node))
    while stack:
        name = stack.pop()
        if name not in keep:
            keep.add(name)
            stack.extend(calls(library[name].node_def))
    kept = [library[n] for n in sorted(keep)]
    gradients = [g for g in graph_def.library.gradient if g.function_name in keep]
    del graph_def.library.function[:]
    graph_def.library.function.extend(kept)
    del graph_def.library.gradient[:]
    graph_def.library.gradient.extend(gradients)


def _name_outputs(frozen: Any, loaded: LoadedGraph) -> list[str]:
    """Make each logical output name a node: an Identity when the tensor is named otherwise."""
    names = {n.name for n in frozen.node}
    outputs = []
    for key, tensor in loaded.outputs.items():
        if tensor in (key, f"{key}:0"):
            outputs.append(key)
        elif key not in names:
            node = frozen.node.add(name=key, op="Identity", input=[tensor])
            node.attr["T"].type = loaded.graph.get_tensor_by_name(tensor).dtype.as_datatype_enum
            names.add(key)
            outputs.append(key)
        else:
            log.warning(
                "output '%s' keeps its tensor name '%s' (a node is named '%s')", key, tensor, key
            )
            outputs.append(tensor)
    return outputs


def _name_inputs(frozen: Any, loaded: LoadedGraph) -> None:
    """Rename placeholders to their logical names (a SavedModel's signature keys)."""
    names = {n.name for n in frozen.node}
    renames = {
        node_name(t): k
        for k, t in loaded.inputs.items()
        if node_name(t) != k and node_name(t) in names and k not in names
    }
    if not renames:
        return
    for node in frozen.node:
        if node.name in renames:
            node.name = renames[node.name]
        for i, inp in enumerate(node.input):
            src = node_name(inp)
            if src in renames:
                node.input[i] = inp.replace(src, renames[src], 1)


def _verify(
    loaded: LoadedGraph,
    frozen: Any,
    inputs: list[str],
    outputs: list[str],
    kept: list[str],
    what: str,
) -> float:
    tf = tf_module()
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(frozen, name="")
    probe = LoadedGraph(
        graph,
        tf1.Session(graph=graph),
        "frozen_pb",
        {p: f"{p}:0" for p in inputs},
        {o: tensor_name(o) for o in outputs},
    )
    with probe:
        feed = probe_feed(probe)
        # Kept variables are not initialised in the frozen graph: feed their values.
        extra = {}
        for name in kept:
            if name not in loaded.variables:
                raise ModelError(
                    f"cannot verify the frozen graph of {what}: kept variable "
                    f"'{name}' is not in the graph's variable collections",
                    hint="pass --no-verify",
                )
            with loaded.graph.as_default():
                value = loaded.session.run(loaded.variables[name].value())
            readers = [
                n.name
                for n in frozen.node
                if n.op == "ReadVariableOp" and node_name(n.input[0]) == name
            ] or [name]
            extra.update({graph.get_tensor_by_name(f"{r}:0"): value for r in readers})
        tensors = [graph.get_tensor_by_name(tensor_name(o)) for o in outputs]
        feeds = {graph.get_tensor_by_name(f"{k}:0"): v for k, v in feed.items()} | extra
        got = dict(zip(loaded.outputs, probe.session.run(tensors, feeds), strict=True))
    expected = loaded.run(feed)
    return compare_outputs(expected, got, f"frozen graph of {what} vs the source")


def write_frozen(
    result: FreezeResult, out: str | Path, *, source: str, step: int | None = None
) -> tuple[Path, Path]:
    """Write the frozen ``.pb`` (deterministic bytes) and its sidecar JSON."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(result.graph_def.SerializeToString(deterministic=True))
    consts = {n.name: n for n in result.graph_def.node}
    tf = tf_module()
    variables = {}
    for const, var in sorted(result.variables.items()):
        tensor = consts[const].attr["value"].tensor
        variables[const] = {
            "variable": var,
            "dtype": tf.dtypes.as_dtype(tensor.dtype).name,
            "shape": [d.size for d in tensor.tensor_shape.dim],
        }
    side = sidecar_path(out)
    side.write_text(
        json.dumps(
            {
                "format": SIDECAR_FORMAT,
                "source": source,
                "step": step,
                "inputs": result.inputs,
                "outputs": result.outputs,
                "kept_variables": result.kept,
                "variables": variables,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return out, side


def freeze_checkpoint(
    path: str | Path,
    out: str | Path,
    *,
    outputs: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    verify: bool = True,
    allow_unsafe_ops: bool = False,
    init_missing: bool = False,
    graph: str | Path | None = None,
) -> dict[str, Any]:
    """Freeze a checkpoint (prefix, folder or ``.meta``) into ``out`` plus a sidecar JSON.

    Args:
        path: The checkpoint; its ``.meta`` must be next to it unless ``graph`` is given.
        out: The frozen ``.pb`` to write.
        outputs: Output node names; default: the TF OD API names when present.
        exclude: Variable names or glob patterns to keep as variables.
        verify: Compare outputs on a probe input (on by default).
        allow_unsafe_ops: Accept ops outside the allowlist.
        init_missing: Variables the checkpoint lacks take their initial values (listed in
            the report's ``initialised``) instead of failing.
        graph: A ``tf.io.write_graph`` GraphDef (``.pbtxt``/``.pb``) or ``.meta`` to use
            instead of the checkpoint's ``.meta`` (what ``freeze_graph --input_graph`` reads).

    Returns:
        A report: paths, inputs, outputs, counts and the probe's largest difference.
    """
    with load_graph(
        path,
        outputs=outputs,
        allow_unsafe_ops=allow_unsafe_ops,
        init_missing=init_missing,
        graph=graph,
    ) as loaded:
        result = freeze_loaded(loaded, exclude=exclude, verify=verify, what=str(path))
        pb, side = write_frozen(result, out, source=str(path), step=loaded.step)
        initialised = list(loaded.initialised)
    report = {k: v for k, v in asdict(result).items() if k != "graph_def"}
    report.update(
        initialised=initialised,
        out=str(pb),
        sidecar=str(side),
        nodes=len(result.graph_def.node),
        bytes=pb.stat().st_size,
        frozen_variables=len(result.variables),
        parameters=int(
            sum(np.prod(_shape(result.graph_def, c), dtype=np.int64) for c in result.variables)
        ),
    )
    return report


def _shape(graph_def: Any, const: str) -> list[int]:
    node = next(n for n in graph_def.node if n.name == const)
    return [d.size for d in node.attr["value"].tensor.tensor_shape.dim]
