"""Check a converted model against its source: a probe input for any graph, outputs compared.

Graphs are loaded by :func:`detector.model.graphfile.load_graph` (the one reader).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from detector.errors import ModelError
from detector.model.graphfile import LoadedGraph

log = logging.getLogger(__name__)


def probe_feed(loaded: LoadedGraph, seed: int = 0) -> dict[str, np.ndarray]:
    """A deterministic input for every placeholder: unknown batch 1, other unknown dims 32.

    Raises:
        ModelError: An input's dtype cannot be probed (strings, resources).
    """
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for key, name in loaded.inputs.items():
        t = loaded.graph.get_tensor_by_name(name)
        dims = t.shape.as_list() if t.shape.rank is not None else [1]
        shape = [d if d is not None else (1 if i == 0 else 32) for i, d in enumerate(dims)]
        dtype = t.dtype.as_numpy_dtype
        if t.dtype.is_floating:
            feed[key] = rng.uniform(0.0, 1.0, shape).astype(dtype)
        elif t.dtype.is_integer:
            high = 256 if t.dtype.name == "uint8" else 4
            feed[key] = rng.integers(0, high, shape).astype(dtype)
        elif t.dtype.is_bool:
            feed[key] = rng.integers(0, 2, shape).astype(bool)
        else:
            raise ModelError(
                f"cannot make a probe input for '{name}' of type {t.dtype.name}",
                hint="pass --no-verify to skip the output comparison",
            )
    return feed


def compare_outputs(
    expected: Mapping[str, np.ndarray],
    got: Mapping[str, np.ndarray],
    what: str,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> float:
    """Raise unless every output matches; return the largest absolute difference."""
    worst = 0.0
    if set(expected) != set(got):
        raise ModelError(f"{what}: outputs differ in names: {sorted(expected)} vs {sorted(got)}")
    for key in expected:
        a, b = np.asarray(expected[key]), np.asarray(got[key])
        if a.shape != b.shape:
            raise ModelError(f"{what}: output '{key}' has shape {b.shape}, expected {a.shape}")
        if a.dtype.kind in "fc":
            diff = float(np.max(np.abs(a - b))) if a.size else 0.0
            if not np.allclose(a, b, rtol=rtol, atol=atol):
                raise ModelError(f"{what}: output '{key}' differs by up to {diff:g}")
            worst = max(worst, diff)
        elif not np.array_equal(a, b):
            raise ModelError(f"{what}: output '{key}' differs")
    return worst
