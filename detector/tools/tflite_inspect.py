"""Describe a ``.tflite`` file as TensorFlow's own tools do: op names, tensors, quantization.

Builtin operators carry TFLite's schema names (``FULLY_CONNECTED``, not ``BUILTIN_9``), read
from the schema module TensorFlow ships; every input and output states its quantization
(per-tensor scale and zero point, or the per-channel arrays and their axis); with
``all_tensors`` every tensor of the file is listed the same way.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

from detector.tflite.reader import read_tflite

_SHOWN = 16  # per-channel parameters listed in full up to this many


@cache
def _builtin_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {
        int(v): k
        for k, v in vars(schema.BuiltinOperator).items()
        if not k.startswith("_") and isinstance(v, int)
    }


def op_name(name: str) -> str:
    """``BUILTIN_9`` → ``FULLY_CONNECTED``; other names unchanged."""
    if name.startswith("BUILTIN_") and name[8:].isdigit():
        return _builtin_names().get(int(name[8:]), name)
    return name


def quantization(quant: Any) -> dict[str, Any] | None:
    """A tensor's quantization as TF's ``get_tensor_details`` shows it, or None."""
    if quant is None or not quant.scale.size:
        return None
    scale, zero = quant.scale.ravel(), quant.zero_point.ravel()
    if scale.size == 1:
        return {"scale": float(scale[0]), "zero_point": int(zero[0])}
    return {
        "per_channel": int(scale.size),
        "axis": int(quant.axis),
        "scale": [float(s) for s in scale[:_SHOWN]],
        "zero_point": [int(z) for z in zero[:_SHOWN]],
    }


def describe_tensor(model: Any, index: int) -> dict[str, Any]:
    t = model.tensors[index]
    out: dict[str, Any] = {
        "index": index,
        "name": t.name,
        "shape": list(t.shape),
        "dtype": str(t.dtype),
    }
    quant = quantization(t.quant)
    if quant is not None:
        out["quantization"] = quant
    return out


def inspect_tflite(path: Path, *, all_tensors: bool = False) -> dict[str, Any]:
    """A ``.tflite``: version, inputs and outputs with quantization, op histogram by schema
    name, parameters; every tensor with ``all_tensors``."""

    model = read_tflite(path)
    info: dict[str, Any] = {
        "format": "tflite",
        "path": str(path),
        "bytes": path.stat().st_size,
        "version": model.version,
        "description": model.description,
        "inputs": [describe_tensor(model, i) for i in model.inputs],
        "outputs": [describe_tensor(model, i) for i in model.outputs],
        "ops": dict(Counter(op_name(op.name) for op in model.operators).most_common()),
        "tensors": len(model.tensors),
        "parameters": int(sum(t.data.size for t in model.tensors if t.data is not None)),
    }
    if all_tensors:
        info["all_tensors"] = [describe_tensor(model, i) for i in range(len(model.tensors))]
    return info
