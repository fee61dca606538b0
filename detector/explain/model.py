"""The TensorFlow side of explain: a checked frozen graph, its detections and gradients.

The graph is read through :mod:`detector.model.graphfile` (parsed, checked against the op
allowlist, then imported); gradient ops are added to the imported graph in graph mode with
``tf.gradients`` — of the pre-NMS class logit of one anchor (``CombinedNonMaxSuppression``
has no gradient), selected by two scalar placeholders, so one graph serves every detection.
A graph written with ``--explain-outputs`` (:mod:`detector.explain.export`) already holds
those ops under ``explain/``; they are used as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.config import OD_INPUT, OD_OUTPUTS
from detector.errors import ModelError
from detector.explain.graph import (
    ExplainPoints,
    check_layer,
    choose_layers,
    combined_nms_inputs,
    feature_maps,
    find_logits,
    head_maps,
    parse_ref,
)
from detector.model.formats import detect_format
from detector.model.graphfile import import_graph_def, read_graph_def
from detector.model.session import SessionOptions, new_session
from detector.model.split import find_split
from detector.types import Detections

log = logging.getLogger(__name__)

#: Node names of the explanation outputs a graph written with ``--explain-outputs`` carries.
EXPORTED = {
    "anchor": "explain/anchor",
    "column": "explain/column",
    "logit": "explain/logit",
    "feature_map": "explain/feature_map",
    "grad": "explain/grad",
    "fine_map": "explain/fine_map",
    "fine_grad": "explain/fine_grad",
    "boxes": "explain/boxes",
    "scores": "explain/scores",
}
#: Probe size used to measure feature-map shapes a graph leaves unknown.
_PROBE_HW = (300, 300)


@dataclass(frozen=True)
class Forward:
    """One image through the detector.

    Attributes:
        detections: Kept detections, pixel ``xyxy``, best first (all of ``num_detections``).
        boxes_norm: Their normalized ``[ymin, xmin, ymax, xmax]``, same order.
        pre_boxes: ``[N, (q,) 4]`` pre-NMS decoded boxes, or ``None``.
        pre_scores: ``[N, C]`` pre-NMS scores, or ``None``.
    """

    detections: Detections
    boxes_norm: np.ndarray
    pre_boxes: np.ndarray | None
    pre_scores: np.ndarray | None


def analyse(graph_def: Any, shape_of: Any, layer: str | None = None) -> ExplainPoints:
    """Find the explanation tensors of an SSD graph (see :mod:`detector.explain.graph`).

    Args:
        graph_def: The checked GraphDef.
        shape_of: ``tensor name → shape tuple`` (``None`` entries where unknown).
        layer: A tensor or node name to use as the Grad-CAM layer instead of the automatic one.
    """

    nms = combined_nms_inputs(graph_def)
    try:
        split = find_split(graph_def)
    except ModelError as exc:
        log.info("no SSD split in this graph (%s): occlusion only", exc.message)
        return ExplainPoints(
            None, None, None, 0, check_layer(graph_def, layer) if layer else None, None
        )
    boxes, scores = nms if nms else (None, None)
    logits, offset = find_logits(graph_def, scores, shape_of) if scores else (None, 0)
    maps = feature_maps(graph_def, split.network_nodes)
    heads = head_maps(graph_def, split)
    gradcam_layer, fine_layer, ranked = choose_layers(maps, heads, shape_of)
    if layer:
        gradcam_layer = check_layer(graph_def, layer)
    return ExplainPoints(boxes, scores, logits, offset, gradcam_layer, fine_layer, ranked)


def gradient_ops(
    graph: Any, points: ExplainPoints, anchor: Any, column: Any, layers: Sequence[str]
) -> tuple[Any, list[Any], list[Any]]:
    """Add ``logit = logits[anchor, column + offset]`` and its gradients w.r.t. ``layers``.

    Returns:
        ``(logit, activations, gradients)`` tensors (in the current name scope).

    Raises:
        ModelError: The logit does not depend on a layer (no gradient path).
    """
    import tensorflow as tf

    if points.logits is None:
        raise ModelError(
            "this graph has no pre-NMS class scores to differentiate (no "
            "CombinedNonMaxSuppression found)",
            hint="use --method occlusion, which works for any graph",
        )
    logits = graph.get_tensor_by_name(points.logits)
    flat = tf.reshape(logits, tf.stack([-1, tf.shape(logits)[-1]]))
    logit = tf.identity(flat[anchor, column + points.offset], name="logit_value")
    acts = [graph.get_tensor_by_name(t) for t in layers]
    grads = tf.gradients(logit, acts)
    for name, grad in zip(layers, grads, strict=True):
        if grad is None:
            raise ModelError(
                f"the class logit does not depend on layer {name!r}: no gradient",
                hint="name a layer between the image and the SSD heads with --layer",
            )
    return logit, acts, list(grads)


class ShapeProbe:
    """``tensor name → shape``: static where known, else measured once on a grey probe image.

    Args:
        graph: The imported graph.
        session: A session on it (one is made, and closed by :meth:`close`, when ``None``).
    """

    def __init__(self, graph: Any, session: Any | None = None) -> None:
        self.graph = graph
        self._session = session
        self._own = session is None
        self._cache: dict[str, tuple[int | None, ...] | None] = {}

    def __call__(self, tensor: str) -> tuple[int | None, ...] | None:
        if tensor not in self._cache:
            try:
                shape = self.graph.get_tensor_by_name(tensor).shape
            except (KeyError, ValueError):
                return None
            dims = tuple(shape.as_list()) if shape.rank is not None else None
            if dims is None or (len(dims) == 4 and (dims[1] is None or dims[2] is None)):
                if self._session is None:
                    import tensorflow as tf

                    self._session = tf.compat.v1.Session(graph=self.graph)
                probe = np.full((1, *_PROBE_HW, 3), 128, np.uint8)
                value = self._session.run(tensor, {OD_INPUT: probe})
                dims = tuple(int(d) for d in np.shape(value))
            self._cache[tensor] = dims
        return self._cache[tensor]

    def close(self) -> None:
        if self._own and self._session is not None:
            self._session.close()


class ExplainModel:
    """A frozen SSD graph ready to explain its detections.

    Args:
        path: A frozen ``.pb`` / ``.pbtxt`` (checked against the op allowlist first).
        layer: Grad-CAM layer (tensor or node name); default: chosen from the graph.
        allow_unsafe_ops: Accept ops outside the allowlist (trusted files only).
        session: The session's device, threads and precision, as the app runs the model
            (:meth:`detector.model.options.ModelOptions.session_options`); default: TF's own.

    Raises:
        ModelError: Not a frozen graph, not a TF OD API detector, or an unknown layer.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        layer: str | None = None,
        allow_unsafe_ops: bool = False,
        session: SessionOptions | None = None,
    ) -> None:
        self.path = Path(path)
        fmt = detect_format(self.path)
        if fmt not in ("frozen_pb", "pbtxt"):
            raise ModelError(
                f"explain reads frozen graphs; '{self.path}' is a {fmt}",
                hint=f"convert it first: python main.py model convert '{self.path}' -o model.pb",
            )
        self.graph_def = read_graph_def(self.path, fmt, allow_unsafe_ops=allow_unsafe_ops)
        names = {n.name for n in self.graph_def.node}
        missing = [t for t in (OD_INPUT, *OD_OUTPUTS) if parse_ref(t)[0] not in names]
        if missing:
            raise ModelError(
                f"graph '{self.path}' lacks the TF Object Detection API tensors {missing}",
                hint="explain needs image_tensor -> detection_boxes/scores/classes/num_detections",
            )
        self.graph = import_graph_def(self.graph_def, self.path)
        self.session, self.device = new_session(
            self.graph, session or SessionOptions(device="auto", precision="fp32")
        )
        self.shape_of = ShapeProbe(self.graph, self.session)
        self.exported = all(EXPORTED[k] in names for k in EXPORTED)
        if self.exported and (layer is None or self._exported_layer("feature_map") == layer):
            self.points = self._exported_points()
            self._anchor = self.graph.get_tensor_by_name(EXPORTED["anchor"] + ":0")
            self._column = self.graph.get_tensor_by_name(EXPORTED["column"] + ":0")
            self._acts = [
                self.graph.get_tensor_by_name(EXPORTED[k] + ":0")
                for k in ("feature_map", "fine_map")
            ]
            self._grads = [
                self.graph.get_tensor_by_name(EXPORTED[k] + ":0") for k in ("grad", "fine_grad")
            ]
            log.info("using the graph's own explanation outputs (explain/*)")
        else:
            self.exported = False
            self.points = analyse(self.graph_def, self.shape_of, layer)
            self._acts, self._grads = [], []
        self._input = self.graph.get_tensor_by_name(OD_INPUT)
        self._outputs = [self.graph.get_tensor_by_name(t) for t in OD_OUTPUTS]
        self._batch_ok: bool | None = None
        log.info(
            "explain: logits %s (offset %d), Grad-CAM layer %s, gradient x activation layer %s",
            self.points.logits,
            self.points.offset,
            self.points.gradcam_layer,
            self.points.fine_layer,
        )

    # -- graph facts ---------------------------------------------------------------------

    def _exported_layer(self, key: str) -> str:
        node = next(n for n in self.graph_def.node if n.name == EXPORTED[key])
        return parse_ref(node.input[0])[0] + ":" + str(parse_ref(node.input[0])[1])

    def _exported_points(self) -> ExplainPoints:
        return ExplainPoints(
            EXPORTED["boxes"] + ":0",
            EXPORTED["scores"] + ":0",
            EXPORTED["logit"] + ":0",
            0,
            self._exported_layer("feature_map"),
            self._exported_layer("fine_map"),
        )

    @property
    def can_differentiate(self) -> bool:
        return self.points.logits is not None and self.points.gradcam_layer is not None

    # -- runs ----------------------------------------------------------------------------

    def forward(self, image_rgb: np.ndarray) -> Forward:
        """Detections of one RGB ``uint8 (H, W, 3)`` image, with the pre-NMS boxes and scores."""
        height, width = image_rgb.shape[:2]
        fetch = list(self._outputs)
        if self.points.boxes and self.points.scores:
            fetch += [
                self.graph.get_tensor_by_name(t) for t in (self.points.boxes, self.points.scores)
            ]
        out = self.session.run(fetch, {self._input: image_rgb[None]})
        boxes, scores, classes, num = (o[0] for o in out[:4])
        n = int(num)
        dets = Detections.from_tf_normalized(boxes, scores, classes, n, width, height)
        pre_boxes = out[4][0] if len(out) > 4 else None
        pre_scores = out[5][0] if len(out) > 5 else None
        return Forward(dets, np.asarray(boxes[:n], np.float32), pre_boxes, pre_scores)

    def prepare_gradients(self) -> tuple[list[Any], list[Any]]:
        if not self._grads:
            import tensorflow as tf

            if not self.can_differentiate:
                raise ModelError(
                    f"graph '{self.path}' has no pre-NMS class logits or feature maps to "
                    "differentiate",
                    hint="use --method occlusion, which works for any graph",
                )
            layers = [
                self.points.gradcam_layer,
                self.points.fine_layer or self.points.gradcam_layer,
            ]
            with self.graph.as_default(), tf.name_scope("explain_runtime"):
                self._anchor = tf.compat.v1.placeholder(tf.int32, [], name="anchor")
                self._column = tf.compat.v1.placeholder(tf.int32, [], name="column")
                _, self._acts, self._grads = gradient_ops(
                    self.graph,
                    self.points,
                    self._anchor,
                    self._column,
                    layers,  # type: ignore[arg-type]
                )
        return self._acts, self._grads

    def gradients(
        self, image_rgb: np.ndarray, anchor: int, column: int, which: Sequence[int] = (0, 1)
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(activation, gradient)`` of the Grad-CAM layer (0) and the fine layer (1).

        The logit is the pre-NMS logit of ``anchor`` for score column ``column``.
        """
        acts, grads = self.prepare_gradients()
        fetch = [t for i in which for t in (acts[i], grads[i])]
        out = self.session.run(
            fetch, {self._input: image_rgb[None], self._anchor: anchor, self._column: column}
        )
        return [(out[2 * k], out[2 * k + 1]) for k in range(len(which))]

    def pre_scores(self, images_rgb: np.ndarray) -> np.ndarray:
        """``[B, N, C]`` pre-NMS scores of a batch (run one by one if the graph wants batch 1)."""
        assert self.points.scores is not None
        tensor = self.graph.get_tensor_by_name(self.points.scores)
        scores: np.ndarray = self._batched(tensor, images_rgb)
        return scores

    def final_outputs(self, images_rgb: np.ndarray) -> list[np.ndarray]:
        """The four TF OD API outputs of a batch."""
        return self._batched(self._outputs, images_rgb)  # type: ignore[no-any-return]

    def _batched(self, fetch: Any, images: np.ndarray) -> Any:
        if self._batch_ok is not False and len(images) > 1:
            try:
                out = self.session.run(fetch, {self._input: images})
                self._batch_ok = True
                return out
            except Exception as exc:  # a graph built for batch 1: one image at a time
                log.debug("batched run failed (%s); running images one by one", exc)
                self._batch_ok = False
        outs = [
            self.session.run(fetch, {self._input: images[i : i + 1]}) for i in range(len(images))
        ]
        if isinstance(fetch, list):
            return [np.concatenate([o[k] for o in outs]) for k in range(len(fetch))]
        return np.concatenate(outs)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ExplainModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
