"""Describe Keras 3 files and pull their weights: layers, weights (shapes, dtypes), inputs, outputs.

A ``.keras`` archive whose config is made of Keras' own classes is rebuilt (Keras'
``safe_mode``; nothing from the file runs) to name every weight by its variable path
(``d1/kernel``) and give the model's input and output shapes. A config that names code
(``Lambda``, custom classes) is still described from its JSON and its HDF5 weights, with
the refusal in ``safety``; a ``.weights.h5`` is described from its HDF5 layout alone.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import ModelError
from detector.model.keras_config import refusal
from detector.model.keras_file import KerasArchive, open_keras, rebuild
from detector.model.keras_weights import list_weights, open_h5, read_array
from detector.tools.tensors import tensor_value

#: What a weights-only file needs, said wherever one is used.
WEIGHTS_ONLY_HINT = (
    "a .weights.h5 holds weights only, no architecture: keep the model's .keras file "
    "(model.save('model.keras')), or pass the code that builds it: --model my_model.py:build "
    "(your function returning the Keras model; the weights are loaded into it)"
)


def _spec(tensor: Any) -> dict[str, Any]:
    shape = [None if d is None else int(d) for d in tensor.shape]
    return {"name": getattr(tensor, "name", None), "dtype": str(tensor.dtype), "shape": shape}


def _rebuilt_summary(model: Any) -> dict[str, Any]:
    weights = {v.path: [int(d) for d in v.shape] for v in model.weights}
    return {
        "named_by": "model rebuilt from config.json (safe mode)",
        "inputs": [_spec(t) for t in model.inputs],
        "outputs": [_spec(t) for t in model.outputs],
        "variables": weights,
        "dtypes": {v.path: str(v.dtype) for v in model.weights},
        "trainable": [v.path for v in model.trainable_weights],
        "parameters": int(sum(np.prod(s, dtype=np.int64) for s in weights.values())),
    }


def _h5_summary(h5_path: Path) -> dict[str, Any]:
    with open_h5(h5_path) as h5:
        weights = list_weights(h5)
    return {
        "named_by": "HDF5 layout (layer/index)",
        "variables": {w.name: list(w.shape) for w in weights},
        "dtypes": {w.name: w.dtype for w in weights},
        "variable_keys": {w.name: [w.key] for w in weights},
        "parameters": int(sum(np.prod(w.shape, dtype=np.int64) for w in weights)),
    }


def _archive_info(archive: KerasArchive) -> dict[str, Any]:
    review = archive.review
    return {
        "format": "keras",
        "path": str(archive.path),
        "bytes": archive.path.stat().st_size,
        "model_class": review.model_class,
        "keras_version": archive.metadata.get("keras_version"),
        "date_saved": archive.metadata.get("date_saved"),
        "members": archive.members,
        "layers": review.layers,
        "safety": "ok" if not review.refused else _refused_text(archive),
    }


def _refused_text(archive: KerasArchive) -> str:
    return refusal(archive.review, f"Keras archive '{archive.path}'").message


def inspect_keras(path: Path, tensor: str | None) -> dict[str, Any]:
    """A ``.keras`` archive: config (layers, class), metadata, weights, inputs and outputs."""
    with open_keras(path) as archive:
        info = _archive_info(archive)
        if archive.review.refused:
            info.update(_h5_summary(archive.weights))
            values = None
        else:
            model = rebuild(archive)
            info.update(_rebuilt_summary(model))
            values = {v.path: v for v in model.weights}
        if tensor is not None:
            info["tensor"] = _tensor(tensor, values, archive.weights)
    return info


def inspect_keras_weights(path: Path, tensor: str | None) -> dict[str, Any]:
    """A ``.weights.h5``: every weight by layer and index, and what converting it needs."""
    with open_h5(path) as h5:
        legacy = "model_config" in h5.attrs or "layer_names" in h5.attrs
    info: dict[str, Any] = {
        "format": "keras_weights",
        "path": str(path),
        "bytes": path.stat().st_size,
        "layout": "Keras 2 (tf.keras) HDF5" if legacy else "Keras 3 .weights.h5",
        **_h5_summary(path),
        "warnings": [WEIGHTS_ONLY_HINT],
    }
    if tensor is not None:
        info["tensor"] = _tensor(tensor, None, path)
    return info


def _tensor(wanted: str, variables: dict[str, Any] | None, h5_path: Path) -> dict[str, Any]:
    if variables is not None and wanted in variables:
        return {"name": wanted, **tensor_value(np.asarray(variables[wanted].numpy()))}
    with open_h5(h5_path) as h5:
        weights = list_weights(h5)
        found = next((w for w in weights if wanted in (w.name, w.key)), None)
        if found is None:
            names = list(variables or {}) + [w.name for w in weights]
            raise ModelError(
                f"no weight {wanted!r} in '{h5_path}'",
                hint=f"closest: {difflib.get_close_matches(wanted, names, n=5)}",
            )
        return {"name": found.name, "key": found.key, **tensor_value(read_array(h5, found))}


def keras_weights(path: Path, fmt: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Name → array of a Keras file, for ``export-weights``: variable paths when the model
    can be rebuilt safely, else the HDF5 layout's ``layer/index`` names."""
    if fmt == "keras":
        with open_keras(path) as archive:
            if not archive.review.refused:
                model = rebuild(archive)
                out = {v.path: np.asarray(v.numpy()) for v in model.weights}
                return out, _details(out, "variable paths (model rebuilt, safe mode)")
            return _h5_arrays(archive.weights, "HDF5 layout: the config names code")
    return _h5_arrays(path, "HDF5 layout (a weights-only file)")


def _h5_arrays(h5_path: Path, named_by: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with open_h5(h5_path) as h5:
        out = {w.name: read_array(h5, w) for w in list_weights(h5)}
    return out, _details(out, named_by)


def _details(weights: dict[str, np.ndarray], named_by: str) -> dict[str, Any]:
    kinds = {k: "scalar" if a.ndim == 0 else "array" for k, a in weights.items()}
    counts: dict[str, int] = {}
    for kind in kinds.values():
        counts[kind] = counts.get(kind, 0) + 1
    return {"kinds": counts, "weight_kinds": kinds, "named_by": named_by}
