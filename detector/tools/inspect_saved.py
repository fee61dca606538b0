"""Describe a SavedModel (TF1 or TF2) from its protos: what ``saved_model_cli show --all`` shows.

Per MetaGraph: tags, signatures with inputs and outputs (dtype, shape, tensor), the init
op signature (``__saved_model_init_op``, run at load time; labelled, never shown as a model
input or output), the ops used, the safety verdict; for TF2 files the object graph's
functions with their input and output specs (``saved_model_cli`` loads the model — runs
it — to show those; here they are decoded from the proto), and every variable by its own
name, object path and checkpoint key. Nothing is imported or run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detector.model.graphfile import tf_module
from detector.model.objckpt import checkpoint_entries, find_entry
from detector.tools.tensors import dtype_name, shape_of, tensor_value

#: The signature key TF2 uses for the op run once at load time (initialising tables).
INIT_OP_SIGNATURE = "__saved_model_init_op"


def _tensor_info(info: Any) -> dict[str, Any]:
    kind = info.WhichOneof("encoding")
    name = info.name if kind == "name" else f"({kind})"
    return {"name": name, "dtype": dtype_name(info.dtype), "shape": shape_of(info.tensor_shape)}


def signatures(meta: Any) -> dict[str, dict[str, Any]]:
    """Every SignatureDef of a MetaGraph; the init op one carries ``"init_op": True``."""
    return {
        key: {
            "method": sig.method_name,
            "init_op": key == INIT_OP_SIGNATURE,
            "inputs": {k: _tensor_info(v) for k, v in sorted(sig.inputs.items())},
            "outputs": {k: _tensor_info(v) for k, v in sorted(sig.outputs.items())},
        }
        for key, sig in sorted(meta.signature_def.items())
    }


def _spec_text(value: Any) -> Any:
    """A decoded structure of TensorSpecs as JSON-able text, nesting kept."""
    if isinstance(value, dict):
        return {str(k): _spec_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_spec_text(v) for v in value]
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        shape = value.shape.as_list() if value.shape.rank is not None else None
        return {
            "name": getattr(value, "name", None),
            "dtype": value.dtype.name,
            "shape": shape,
        }
    return repr(value)


def functions(meta: Any) -> dict[str, list[dict[str, Any]]]:
    """The root object's functions (TF2): name → each concrete function's specs."""
    from tensorflow.python.saved_model import nested_structure_coder

    if not meta.HasField("object_graph_def"):
        return {}
    graph = meta.object_graph_def
    out: dict[str, list[dict[str, Any]]] = {}
    for child in graph.nodes[0].children if graph.nodes else []:
        node = graph.nodes[child.node_id]
        if node.WhichOneof("kind") != "function":
            continue
        options = []
        for name in node.function.concrete_functions:
            concrete = graph.concrete_functions.get(name)
            if concrete is None:
                continue
            entry: dict[str, Any] = {"function": name}
            try:
                args = nested_structure_coder.decode_proto(concrete.canonicalized_input_signature)
                entry["inputs"] = _spec_text(args)
                outs = nested_structure_coder.decode_proto(concrete.output_signature)
                entry["outputs"] = _spec_text(outs)
            except Exception as exc:  # a spec type this TF cannot decode: say so, go on
                entry["undecoded"] = f"{type(exc).__name__}: {exc}"
            options.append(entry)
        out[child.local_name] = options
    return out


def variables(folder: Path, tensor: str | None) -> dict[str, Any]:
    """The SavedModel's variables by name (the object graph's, deduplicated), and a value."""
    index = folder / "variables" / "variables.index"
    if not index.is_file():
        return {"variables": {}, "parameters": 0}
    reader = tf_module().train.load_checkpoint(str(folder / "variables" / "variables"))
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    seen: dict[str, dict[str, Any]] = {}
    entries = checkpoint_entries(reader)
    for e in entries:
        label = e.name or e.path
        if label in seen:  # the same variable listed under two object paths
            seen[label]["keys"].append(e.key)
            continue
        seen[label] = {
            "shape": list(shapes[e.key]),
            "dtype": dtypes[e.key].name,
            "path": e.path,
            "keys": [e.key],
        }
    result: dict[str, Any] = {
        "variables": {k: v["shape"] for k, v in seen.items()},
        "dtypes": {k: v["dtype"] for k, v in seen.items()},
        "variable_keys": {k: v["keys"] for k, v in seen.items()},
        "parameters": int(
            sum(
                np.prod(v["shape"], dtype=np.int64) for v in seen.values() if v["dtype"] != "string"
            )
        ),
    }
    if tensor is not None:
        entry = find_entry(entries, tensor, f"SavedModel '{folder}'")
        result["tensor"] = {
            "name": entry.name or entry.path,
            "key": entry.key,
            **tensor_value(reader.get_tensor(entry.key)),
        }
    return result
