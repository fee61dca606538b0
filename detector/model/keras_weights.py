"""Read the weights of a Keras HDF5 file (``.weights.h5``, or the one inside a ``.keras``) as data.

Keras 3 stores each layer's variables as datasets ``<group>/vars/0``, ``1``, ... with the
layer's name in the ``vars`` group's ``name`` attribute; Keras 2 (``tf.keras``) files keep
``layer_names`` / ``weight_names`` attributes instead. Both are walked iteratively (an HDF5
file can link a group into itself), each dataset's size is checked before it is read
(:mod:`detector.model.sizes`), and nothing in the file is executed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from detector.errors import ModelError
from detector.model.sizes import check_allocation

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Deepest group nesting walked (Keras nests a model a few levels deep).
MAX_DEPTH = 64


@dataclass(frozen=True)
class H5Weight:
    """One stored weight.

    Attributes:
        key: The dataset's path in the file (``layers/dense/vars/0``).
        layer: The layer's name (``d1``), from the file's attributes.
        name: ``layer/index`` (Keras 3, ``d1/0``) or the stored weight name (Keras 2,
            ``d1/kernel``); replaced by the variable's path when the model is rebuilt.
        shape: The dataset's shape.
        dtype: Its NumPy dtype name.
    """

    key: str
    layer: str
    name: str
    shape: tuple[int, ...]
    dtype: str


def has_hdf5_magic(head: bytes) -> bool:
    """Whether the first bytes are an HDF5 signature (at offset 0: no user block)."""
    return head[:8] == HDF5_MAGIC


def open_h5(path: Path) -> Any:
    """``h5py.File`` read-only, or a clear error for a damaged file."""

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ModelError(
            f"cannot read HDF5 file '{path}': {exc}", hint="the file is truncated or damaged"
        ) from exc


def h5_kind(h5: Any) -> str | None:
    """``keras3`` (``vars`` groups), ``keras2`` (``layer_names``), or None (other HDF5)."""
    if "layer_names" in h5.attrs or (
        "model_weights" in h5 and "layer_names" in h5["model_weights"].attrs
    ):
        return "keras2"
    if "layers" in h5 or "vars" in h5:
        return "keras3"
    return None


def _walk(h5: Any) -> list[tuple[str, Any]]:
    """Every dataset as ``(path, dataset)``, iteratively, each object once."""

    seen: set[int] = set()
    out: list[tuple[str, Any]] = []
    stack: list[tuple[str, Any, int]] = [("", h5, 0)]
    while stack:
        prefix, group, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ModelError(
                f"HDF5 file '{h5.filename}' nests groups over {MAX_DEPTH} deep at '{prefix}'",
                hint="the file is damaged or not a Keras weights file",
            )
        for key in sorted(group.keys(), reverse=True):
            obj = group.get(key, getlink=False)
            path = f"{prefix}/{key}" if prefix else key
            addr = h5py.h5o.get_info(obj.id).addr if obj is not None else -1
            if obj is None or addr in seen:
                continue
            seen.add(addr)
            if isinstance(obj, h5py.Dataset):
                out.append((path, obj))
            elif isinstance(obj, h5py.Group):
                stack.append((path, obj, depth + 1))
    return sorted(out, key=lambda kv: _natural(kv[0]))


def _natural(path: str) -> list[Any]:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.split("/")]


def _keras3_name(h5: Any, path: str) -> tuple[str, str]:
    """``(layer, name)`` for a Keras 3 dataset ``.../<group>/vars/<i>``."""
    parts = path.split("/")
    if len(parts) >= 2 and parts[-2] == "vars":
        owner = "/".join(parts[:-1])
        name = h5[owner].attrs.get("name", parts[-3] if len(parts) >= 3 else "model")
        layer = name.decode() if isinstance(name, bytes) else str(name)
        return layer, f"{layer}/{parts[-1]}"
    return parts[0], path


def list_weights(h5: Any) -> list[H5Weight]:
    """Every weight of a Keras HDF5 file, in the file's order (layers, then index)."""
    kind = h5_kind(h5)
    out = []
    for path, ds in _walk(h5):
        if path.startswith(("optimizer/", "model_weights/optimizer")):
            continue
        if kind == "keras2":
            parts = path.split("/")
            layer = parts[1] if parts[0] == "model_weights" and len(parts) > 1 else parts[0]
            name = "/".join(parts[2:] if parts[0] == "model_weights" else parts[1:])
            name = name.removesuffix(":0")
        else:
            layer, name = _keras3_name(h5, path)
        out.append(H5Weight(path, layer, name, tuple(int(d) for d in ds.shape), ds.dtype.name))
    return out


def read_array(h5: Any, weight: H5Weight) -> np.ndarray:
    """A weight's values, after checking the memory it needs against what is free."""
    ds = h5[weight.key]
    nbytes = int(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize
    check_allocation(
        nbytes, f"weight '{weight.key}' of '{h5.filename}'", stored=ds.id.get_storage_size()
    )
    return np.asarray(ds[()])
