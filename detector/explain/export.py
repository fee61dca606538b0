"""A frozen graph that carries its own explanation outputs (``--explain-outputs``).

Like the Grad-CAM export of the documents this project follows (a frozen graph with
``top_conv`` and ``grad`` outputs), the graph gains, under ``explain/``:

* ``explain/anchor``, ``explain/column`` — int32 scalars (``PlaceholderWithDefault``, 0): the
  anchor and score column to explain (a detection's, see :mod:`detector.explain.anchors`);
* ``explain/logit`` — that anchor's pre-NMS class logit;
* ``explain/feature_map``, ``explain/grad`` — the Grad-CAM layer and the logit's gradient;
* ``explain/fine_map``, ``explain/fine_grad`` — the gradient × activation layer and gradient;
* ``explain/boxes``, ``explain/scores`` — the pre-NMS decoded boxes and scores.

The detection outputs are unchanged and need nothing new fed. The written file is read back
through the allowlist check, and its gradients are compared with gradients built at run time
on a probe image.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import ModelError
from detector.explain.model import EXPORTED, ExplainModel, ShapeProbe, analyse, gradient_ops
from detector.model.graphfile import import_graph_def, read_graph_def, tf_module

log = logging.getLogger(__name__)


def add_explain_outputs(graph_def: Any, *, layer: str | None = None, what: str = "graph") -> Any:
    """A copy of the (checked) ``graph_def`` with the ``explain/`` outputs added.

    Raises:
        ModelError: Already has them, or has no pre-NMS logits or feature maps.
    """

    tf = tf_module()
    if any(n.name.startswith("explain/") for n in graph_def.node):
        raise ModelError(
            f"graph '{what}' already has explanation outputs (explain/*)",
            hint="write them from the graph without them",
        )
    graph = import_graph_def(graph_def, what)
    probe = ShapeProbe(graph)
    try:
        points = analyse(graph_def, probe, layer)
    finally:
        probe.close()
    if not (points.logits and points.gradcam_layer and points.boxes and points.scores):
        raise ModelError(
            f"graph '{what}' has no pre-NMS class scores and feature maps to explain "
            "(needs an SSD with CombinedNonMaxSuppression)",
            hint="drop --explain-outputs; `python main.py explain --method occlusion` works "
            "for any graph",
        )
    layers = [points.gradcam_layer, points.fine_layer or points.gradcam_layer]
    with graph.as_default(), tf.name_scope("explain"):
        anchor = tf.compat.v1.placeholder_with_default(np.int32(0), [], name="anchor")
        column = tf.compat.v1.placeholder_with_default(np.int32(0), [], name="column")
        logit, acts, grads = gradient_ops(graph, points, anchor, column, layers)
        tf.identity(logit, name="logit")
        tf.identity(acts[0], name="feature_map")
        tf.identity(grads[0], name="grad")
        tf.identity(acts[1], name="fine_map")
        tf.identity(grads[1], name="fine_grad")
        tf.identity(graph.get_tensor_by_name(points.boxes), name="boxes")
        tf.identity(graph.get_tensor_by_name(points.scores), name="scores")
    out = graph.as_graph_def()
    names = {n.name for n in out.node}
    missing = [v for v in EXPORTED.values() if v not in names]
    if missing:  # a name scope taken by the graph would shift our names
        raise ModelError(f"could not name the explanation outputs {missing} in '{what}'")
    return out


def write_explain_outputs(
    pb: str | Path,
    out: str | Path | None = None,
    *,
    layer: str | None = None,
    verify: bool = True,
    allow_unsafe_ops: bool = False,
) -> dict[str, Any]:
    """Add the explanation outputs to the frozen graph ``pb``; write to ``out`` (default: in place).

    Returns:
        A report: the file, the layers, the outputs added, and the largest difference between
        the written gradients and run-time ones on a probe image.
    """

    pb = Path(pb)
    out = Path(out) if out is not None else pb
    graph_def = read_graph_def(pb, allow_unsafe_ops=allow_unsafe_ops)
    new = add_explain_outputs(graph_def, layer=layer, what=str(pb))
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_bytes(new.SerializeToString(deterministic=True))
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"cannot write '{out}': {exc.strerror or exc}") from exc
    with ExplainModel(
        out, allow_unsafe_ops=allow_unsafe_ops
    ) as written:  # read back through the allowlist check
        if not written.exported:
            raise ModelError(f"'{out}' was written without its explanation outputs")
        report: dict[str, Any] = {
            "out": str(out),
            "explain_layer": written.points.gradcam_layer,
            "explain_fine_layer": written.points.fine_layer,
            "explain_outputs": [f"{v}:0" for v in EXPORTED.values()],
            "explain_max_diff": None,
        }
    if verify:
        report["explain_max_diff"] = _verify(pb, out, layer, allow_unsafe_ops)
    log.info("explanation outputs added to %s", out)
    return report


def _verify(src: Path, out: Path, layer: str | None, allow_unsafe_ops: bool) -> float:
    """Largest difference (relative to the largest value) between written and run-time
    activations and gradients on a probe image."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    diffs = []
    with ExplainModel(out, allow_unsafe_ops=allow_unsafe_ops) as written:
        fwd = written.forward(image)
        assert fwd.pre_scores is not None
        anchor, column = np.unravel_index(int(np.argmax(fwd.pre_scores)), fwd.pre_scores.shape)
        got = written.gradients(image, int(anchor), int(column))
    with ExplainModel(src, layer=layer, allow_unsafe_ops=allow_unsafe_ops) as fresh:
        want = fresh.gradients(image, int(anchor), int(column))
    for pair_got, pair_want in zip(got, want, strict=True):
        for g, w in zip(pair_got, pair_want, strict=True):
            diffs.append(float(np.abs(g - w).max()) / (float(np.abs(w).max()) + 1e-12))
    if max(diffs) > 1e-4:
        raise ModelError(
            f"explanation outputs of '{out}' differ from run-time gradients by {max(diffs):.3g}"
        )
    return max(diffs)
