"""The split model (network thread → post-processing thread) beside the whole graph."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from detector.benchmarks.system import Span, rate
from detector.model.loader import load_model
from detector.model.split_runtime import load_split_model


def split_model(
    path: Path,
    frames_rgb: Sequence[np.ndarray],
    warmup: int,
    tensors: Any = None,
    whole: Any = None,
    **load_kwargs: Any,
) -> dict[str, Any]:
    """Throughput with two batches in flight, per-stage ms, and agreement with the whole graph
    in TensorFlow (``whole``, or one loaded here with the same options)."""

    with ExitStack() as stack:
        model = stack.enter_context(load_split_model(path, tensors=tensors, **load_kwargs))
        for x in frames_rgb[:warmup]:
            model.predict(x)
        todo = list(frames_rgb[warmup:])
        span = Span().start()
        pending = []
        for x in todo:
            pending.append(model.submit(x))
            if len(pending) >= 2:  # keep both stages busy
                pending.pop(0).result(timeout=120)
        for f in pending:
            f.result(timeout=120)
        out: dict[str, Any] = rate(len(todo), span.stop())
        out["network_ms"] = model.network_ms
        out["post_ms"] = model.post_ms
        out["cut"] = list(model.point.tensors)
        out["device"] = model.device
        if whole is None:
            whole = stack.enter_context(load_model(path, tensors=tensors, **load_kwargs))
        x = frames_rgb[-1]
        a, b = model.predict(x), whole.predict(x)
        out["same_outputs"] = bool(
            int(a[3][0]) == int(b[3][0])
            and all(np.allclose(u, v, rtol=1e-4, atol=1e-4) for u, v in zip(a, b, strict=True))
        )
    return out
