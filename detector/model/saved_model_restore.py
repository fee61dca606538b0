"""Check a SavedModel's variables were restored, else freeze its signature through TF2's loader.

The TF1 loader (``tf.compat.v1.saved_model.loader.load``) restores what the SavedModel's
saver names. Two kinds of files leave it short: Keras 3 ``model.export`` also writes
variable handles that nothing reads (harmless: only what the signatures read is checked),
and Keras 3 models written by ``tf.saved_model.save`` restore only through the object graph.
For those, the file (already through the op allowlist) is loaded as TensorFlow itself loads
it, ``tf.saved_model.load``, and the signature is frozen
(``convert_variables_to_constants_v2``) into a graph the toolkit runs like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detector.errors import ModelError
from detector.model.session import import_tf

INIT_OP_SIGNATURE = "__saved_model_init_op"


def _signature_ancestors(graph: Any, meta: Any) -> list[Any]:
    """The ops the signatures' outputs read (data and control inputs), iteratively."""
    roots = [
        t.name
        for key, sig in meta.signature_def.items()
        if key != INIT_OP_SIGNATURE
        for t in sig.outputs.values()
        if t.name
    ]
    seen: dict[str, Any] = {}
    stack = [graph.get_operation_by_name(r.lstrip("^").split(":")[0]) for r in roots]
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen[op.name] = op
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return list(seen.values())


def uninitialised(session: Any, meta: Any) -> list[str]:
    """Variable handles the signatures read that loading left uninitialised."""
    from tensorflow.python.ops import resource_variable_ops

    graph = session.graph
    handles = [op for op in _signature_ancestors(graph, meta) if op.type == "VarHandleOp"]
    if not handles:
        return []
    with graph.as_default():
        checks = [resource_variable_ops.var_is_initialized_op(h.outputs[0]) for h in handles]
    flags = session.run(checks)
    return sorted(h.name for h, ok in zip(handles, flags, strict=True) if not ok)


def frozen_signature(
    path: str | Path, signature: str, left: list[str]
) -> tuple[Any, dict[str, str], dict[str, str]]:
    """``(graph_def, inputs, outputs)`` of a signature frozen through ``tf.saved_model.load``.

    Args:
        path: The SavedModel folder (checked against the allowlist by the caller).
        signature: The signature key.
        left: The variables the TF1 loader left uninitialised (quoted if this fails too).

    Returns:
        The frozen GraphDef and its inputs and outputs: signature key → tensor name.

    Raises:
        ModelError: TensorFlow's own loader cannot load or freeze it either.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    tf = import_tf()
    try:
        loaded = tf.saved_model.load(str(path))
        function = loaded.signatures[signature]
        frozen = convert_variables_to_constants_v2(function)
    except Exception as exc:
        shown = ", ".join(left[:8]) + (f" and {len(left) - 8} more" if len(left) > 8 else "")
        text = str(exc).strip().splitlines()
        raise ModelError(
            f"SavedModel '{path}': the graph loader leaves {len(left)} variable(s) "
            f"uninitialised ({shown}) and TensorFlow's object loader fails too: "
            f"{type(exc).__name__}: {text[0] if text else ''}",
            hint="its variables/ folder may be incomplete: copy or export it again",
        ) from exc
    specs = function.structured_input_signature[1]
    placeholders = [t for t in frozen.inputs if t.dtype.name != "resource"]
    by_name = {t.name.split(":")[0]: t.name for t in placeholders}
    inputs = {
        key: by_name.get(spec.name or key, placeholders[i].name if i < len(placeholders) else "")
        for i, (key, spec) in enumerate(sorted(specs.items()))
    }
    keys = sorted(function.structured_outputs)  # tf.nest orders a dict's values by key
    outputs = {key: t.name for key, t in zip(keys, frozen.outputs, strict=True)}
    return frozen.graph.as_graph_def(), inputs, outputs
