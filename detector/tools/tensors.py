"""Protobuf dtypes and shapes, and tensor values, as JSON-able text for the inspect reports."""

from __future__ import annotations

from typing import Any

import numpy as np

from detector.model.graphfile import tf_module

_FULL_VALUES = 10_000  # larger tensors are summarised


def dtype_name(enum: int) -> str:
    """A DataType enum's name; ``DT_INVALID`` (an init op's output) is ``"invalid"``."""
    if enum == 0:
        return "invalid"
    return str(tf_module().dtypes.as_dtype(enum).name)


def shape_of(proto: Any) -> list[int | None] | None:
    if proto.unknown_rank:
        return None
    return [d.size if d.size >= 0 else None for d in proto.dim]


def tensor_value(value: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"shape": list(value.shape), "dtype": str(value.dtype)}
    if value.dtype.kind in "OSU":
        out["values"] = [
            v.decode(errors="replace") if isinstance(v, bytes) else str(v)
            for v in value.ravel()[:100]
        ]
    elif value.size <= _FULL_VALUES:
        out["values"] = value.tolist()
    else:
        out.update(
            min=float(value.min()),
            max=float(value.max()),
            mean=float(value.mean()),
            first=value.ravel()[:20].tolist(),
        )
    return out
