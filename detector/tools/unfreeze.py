"""Turn a frozen graph back into a trainable checkpoint: weight constants become variables.

The weight constants (named by the ``freeze`` sidecar, else found from the graph; see
:mod:`detector.tools.weights`) are removed from the GraphDef and the rest is imported with
each of them mapped onto a resource variable of the original name, so that
``tf.train.Saver`` writes a checkpoint whose keys are the variable names and a ``.meta``
that trains. The new checkpoint is loaded back and must give the frozen graph's outputs
on a probe input.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detector.errors import ModelError
from detector.model.formats import detect_format
from detector.model.graphfile import (
    LoadedGraph,
    load_graph,
    placeholders,
    read_graph_def,
    tensor_name,
    tf_module,
)
from detector.model.outputs import choose_outputs
from detector.model.sizes import tensor_array
from detector.tools.attribution import find_weight_constants
from detector.tools.freeze import sidecar_path
from detector.tools.verify import compare_outputs, probe_feed

log = logging.getLogger(__name__)


def graph_with_variables(
    graph_def: Any, mapping: dict[str, str]
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Import ``graph_def`` into a new graph with the mapped constants as variables.

    Returns:
        ``(graph, variables by name, value by name)``; the variables start at zero and
        their values are fed to their initializers by the caller.
    """

    tf = tf_module()
    tf1 = tf.compat.v1
    if len(set(mapping.values())) != len(mapping):
        raise ModelError(
            "two constants map to the same variable name",
            hint="check the sidecar JSON next to the frozen graph",
        )
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    stripped = tf1.GraphDef()
    stripped.versions.CopyFrom(graph_def.versions)
    stripped.library.CopyFrom(graph_def.library)
    stripped.node.extend(n for n in graph_def.node if n.name not in mapping)
    for node in stripped.node:  # colocation with a removed constant would fail the import
        if "_class" in node.attr:
            keep = [
                c
                for c in node.attr["_class"].list.s
                if c.decode().removeprefix("loc:@") not in mapping
            ]
            del node.attr["_class"].list.s[:]
            node.attr["_class"].list.s.extend(keep)
            if not keep:
                del node.attr["_class"]
    graph = tf.Graph()
    variables: dict[str, Any] = {}
    values: dict[str, Any] = {}
    with graph.as_default():
        for const, var_name in sorted(mapping.items()):
            value = tensor_array(consts[const].attr["value"].tensor, f"constant '{const}'")
            # Zeros as the initial value keep the weights out of the .meta: they live
            # in the checkpoint only.
            var = tf1.Variable(tf.zeros(value.shape, value.dtype), name=var_name, use_resource=True)
            if var.op.name != var_name:
                raise ModelError(
                    f"variable name '{var_name}' clashes with a node of the graph",
                    hint="rename it in the sidecar JSON",
                )
            variables[var_name] = var
            values[var_name] = value
        input_map = {tensor_name(c): variables[v].value() for c, v in mapping.items()}
        tf1.import_graph_def(stripped, input_map=input_map, name="")
    return graph, variables, values


def write_checkpoint(
    graph_def: Any, mapping: dict[str, str], outputs: Sequence[str], out_dir: Path, *, step: int = 0
) -> tuple[str, dict[str, Any]]:
    """Save ``graph_def`` with its mapped constants as variables to ``out_dir/model.ckpt-<step>``.

    The state file holds relative paths, so the folder can be moved or copied.

    Returns:
        ``(prefix, value by variable name)``.
    """
    tf1 = tf_module().compat.v1
    graph, variables, values = graph_with_variables(graph_def, mapping)
    out_dir.mkdir(parents=True, exist_ok=True)
    with graph.as_default(), tf1.Session(graph=graph) as sess:
        if variables:
            sess.run(
                [v.initializer for v in variables.values()],
                {v.initializer.inputs[1]: values[k] for k, v in variables.items()},
            )
        for name in outputs:  # recorded in the .meta for 'model inspect' and 'freeze'
            tf1.add_to_collection("outputs", graph.get_tensor_by_name(tensor_name(name)))
        saver = tf1.train.Saver(
            var_list=variables or None, save_relative_paths=True, max_to_keep=None, allow_empty=True
        )
        prefix = saver.save(sess, str(out_dir / "model.ckpt"), global_step=step)
    return prefix, values


def unfreeze(
    pb: str | Path,
    out_dir: str | Path,
    *,
    outputs: Sequence[str] | None = None,
    step: int = 0,
    verify: bool = True,
    allow_unsafe_ops: bool = False,
) -> dict[str, Any]:
    """Write ``out_dir/model.ckpt-<step>`` (.index, .data, .meta, state file) from a frozen graph.

    Args:
        pb: A frozen ``.pb`` or ``.pbtxt``; its sidecar JSON names the variables if present.
        out_dir: The checkpoint folder to write (created).
        outputs: Output nodes to verify; default: the sidecar's, the OD API names or sinks.
        step: The global step in the prefix.
        verify: Load the new checkpoint back and compare outputs on a probe input.
        allow_unsafe_ops: Accept ops outside the allowlist.

    Returns:
        A report: prefix, variables (name → shape), parameter count, probe difference.
    """

    pb, out_dir = Path(pb), Path(out_dir)
    graph_def = _read_frozen(pb, allow_unsafe_ops)
    side = sidecar_path(pb)
    mapping = find_weight_constants(graph_def, side)
    if not mapping:
        raise ModelError(
            f"found no weight constants in '{pb}' to turn into variables",
            hint="weights are found through the sidecar JSON written by 'model "
            "freeze' or as Conv2D/MatMul/BiasAdd constants",
        )
    if outputs is None and side.is_file():
        outputs = json.loads(side.read_text(encoding="utf-8")).get("outputs") or None
    outs = choose_outputs(graph_def, outputs, str(pb))
    prefix, values = write_checkpoint(graph_def, mapping, outs, out_dir, step=step)
    report: dict[str, Any] = {
        "prefix": prefix,
        "meta": f"{prefix}.meta",
        "variables": {k: list(v.shape) for k, v in sorted(values.items())},
        "parameters": int(sum(v.size for v in values.values())),
        "named_by": "sidecar" if side.is_file() else "graph patterns",
        "max_diff": None,
    }
    if verify:
        report["max_diff"] = _verify(graph_def, outs, prefix, allow_unsafe_ops)
    log.info(
        "unfroze %s: %d variables, %d parameters → %s",
        pb,
        len(values),
        report["parameters"],
        prefix,
    )
    return report


def _read_frozen(pb: Path, allow_unsafe_ops: bool) -> Any:
    """The GraphDef of a frozen ``.pb`` / ``.pbtxt``; another format is refused."""
    fmt = detect_format(pb)
    if fmt not in ("frozen_pb", "pbtxt"):
        raise ModelError(
            f"'{pb}' is a {fmt}, not a frozen graph",
            hint="unfreeze reads a frozen .pb; use 'model convert' for others",
        )
    return read_graph_def(pb, fmt, allow_unsafe_ops=allow_unsafe_ops)


def _verify(graph_def: Any, outputs: list[str], prefix: str, allow_unsafe_ops: bool) -> float:
    tf = tf_module()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    frozen = LoadedGraph(
        graph,
        tf.compat.v1.Session(graph=graph),
        "frozen_pb",
        {p: f"{p}:0" for p in placeholders(graph_def)},
        {o: tensor_name(o) for o in outputs},
    )
    with frozen, load_graph(prefix, outputs=outputs, allow_unsafe_ops=allow_unsafe_ops) as restored:
        feed = probe_feed(frozen)
        return compare_outputs(
            frozen.run(feed), restored.run(feed), f"checkpoint '{prefix}' vs its frozen graph"
        )
