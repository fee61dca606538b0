"""Read an SSD graph's post-processing settings once, with TensorFlow, at conversion time.

The post-processing half of a frozen graph (what :func:`detector.model.split.find_split`
leaves after the network) is run in a TF session on chosen inputs: zero encodings give the
anchors, unit encodings the centre-size scale factors, large ones the encoding clamps; zero,
unit and extreme logits tell sigmoid / softmax / none, the logit scale and the score clamps.
The ``CombinedNonMaxSuppression`` node's own inputs and attributes give the IoU, score
threshold and limits. Values probed are snapped to the graph's constants when one is within
round-off, so what is cached is what the graph holds. Then the NumPy version
(:class:`SsdPostprocess`) is checked against the TF one on random and real network outputs:
anything that does not reproduce the graph is refused with a one-line reason, and the model
keeps TensorFlow for its post-processing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from detector.model.backends.nms_graph import NmsEntry, Unsupported, classic_limits, nms_entry
from detector.model.backends.ssd_post import NmsSettings, SsdPostprocess
from detector.model.session import import_tf

log = logging.getLogger(__name__)

_PROBE = 50.0
#: The largest differences still counted as the graph's own output (float32 round-off).
SCORE_TOLERANCE = 1e-5
BOX_TOLERANCE = 1e-5


class _Probe:
    """A TF session on the post-processing graph, fed encodings and logits."""

    def __init__(self, prep: Any, sample: tuple[np.ndarray, np.ndarray]) -> None:
        roles = post_roles(prep)
        self.entry = entry_of(prep)
        self.tf = import_tf()
        self.graph = self.tf.Graph()
        with self.graph.as_default():
            self.tf.compat.v1.import_graph_def(prep.post, name="")
        self.session = self.tf.compat.v1.Session(graph=self.graph)
        self.nms = self.graph.get_operation_by_name(self.entry.node) if self.entry.node else None
        self.nms_def = prep.post
        self.boxes_in = self.graph.get_tensor_by_name(self.entry.boxes)
        self.scores_in = self.graph.get_tensor_by_name(self.entry.scores)
        self.inputs = [self.graph.get_tensor_by_name(n) for n in prep.post_inputs]
        self.enc_index, self.logit_index = (list(prep.cut).index(r) for r in roles)
        self.outputs = [self.graph.get_tensor_by_name(t) for t in prep.outputs]
        # The cut's placeholders carry no shape: take it from a real network output.
        self.enc_shape = [1, *np.shape(sample[0])[1:]]
        self.logit_shape = [1, *np.shape(sample[1])[1:]]

    def run(self, fetches: Any, enc: np.ndarray, logits: np.ndarray) -> Any:
        feed = {
            self.inputs[self.enc_index]: enc.reshape([len(enc), *self.enc_shape[1:]]),
            self.inputs[self.logit_index]: logits.reshape([len(logits), *self.logit_shape[1:]]),
        }
        return self.session.run(fetches, feed)

    def constant(self, index: int) -> Any:
        """A ``CombinedNonMaxSuppression`` input that depends on no network output, evaluated."""
        assert self.nms is not None
        tensor = self.nms.inputs[index]
        if {t.op.name for t in self.inputs} & _ancestors(self.nms_def, tensor.name):
            raise Unsupported(f"NMS input {tensor.name} depends on the network outputs")
        return self.session.run(tensor)


def post_roles(prep: Any) -> tuple[str, str]:
    """The cut tensors holding the box encodings and the class logits, in that order.

    Raises:
        Unsupported: Not two network tensors, one feeding the NMS boxes, one its scores.
    """
    entry = entry_of(prep)
    feeds = [_ancestors(prep.post, t) for t in (entry.boxes, entry.scores)]
    names = [p.split(":")[0] for p in prep.post_inputs]
    enc = [prep.cut[i] for i, n in enumerate(names) if n in feeds[0] and n not in feeds[1]]
    logit = [prep.cut[i] for i, n in enumerate(names) if n in feeds[1] and n not in feeds[0]]
    if len(enc) != 1 or len(logit) != 1:
        raise Unsupported("cannot tell the box encodings from the class logits")
    return enc[0], logit[0]


def entry_of(prep: Any) -> NmsEntry:
    """Where the post-processing's NMS starts (``CombinedNonMaxSuppression`` or the classic
    per-class loop); see :func:`detector.model.backends.nms_graph.nms_entry`.

    Raises:
        Unsupported: Neither kind, or not two network tensors in.
    """
    if len(prep.post_inputs) != 2:
        raise Unsupported(
            f"post-processing reads {len(prep.post_inputs)} network tensors "
            f"({', '.join(prep.cut)}); the NumPy version takes box encodings and class logits"
        )
    feeds = {p.split(":")[0]: _descendants(prep.post, p) for p in prep.post_inputs}
    return nms_entry(prep.post, feeds)


def _descendants(graph_def: Any, tensor: str) -> set[str]:
    """Names of the nodes computed from a tensor of a ``GraphDef`` (its node included)."""
    users: dict[str, list[str]] = {}
    for n in graph_def.node:
        for i in n.input:
            users.setdefault(i.lstrip("^").split(":")[0], []).append(n.name)
    return _reach(users, tensor)


def _ancestors(graph_def: Any, tensor: str) -> set[str]:
    """Names of the nodes a tensor of a ``GraphDef`` is computed from (itself included)."""
    inputs = {n.name: [i.lstrip("^").split(":")[0] for i in n.input] for n in graph_def.node}
    return _reach(inputs, tensor)


def _reach(edges: dict[str, list[str]], tensor: str) -> set[str]:
    """The node of ``tensor`` and every node ``edges`` lead to from it."""
    seen: set[str] = set()
    stack = [tensor.lstrip("^").split(":")[0]]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(edges.get(name, []))
    return seen


def read_ssd_post(
    prep: Any, network_outputs: Sequence[tuple[np.ndarray, np.ndarray]]
) -> SsdPostprocess:
    """The graph's post-processing as a checked :class:`SsdPostprocess`.

    Args:
        prep: A ``PreparedGraph`` (the graph cut into network and post-processing).
        network_outputs: Real ``(encodings, logits)`` pairs (batch 1) to check it on.

    Raises:
        Unsupported: With a one-line reason.
    """
    if not network_outputs:
        raise Unsupported("no network outputs to check the post-processing on")
    probe = _Probe(prep, network_outputs[0])
    try:
        post = _read(probe, prep)
        _check(probe, post, network_outputs)
    finally:
        probe.session.close()
    return post


def _read(probe: _Probe, prep: Any) -> SsdPostprocess:
    n_anchors = int(np.prod(probe.enc_shape[1:])) // 4
    n_logit = int(np.prod(probe.logit_shape[1:])) // n_anchors
    boxes_in, scores_in = probe.boxes_in, probe.scores_in
    box_value, score_value = probe.run(
        [boxes_in, scores_in],
        np.zeros((1, n_anchors, 4), np.float32),
        np.zeros((1, n_anchors, n_logit), np.float32),
    )
    box_shape = list(np.shape(box_value))
    if len(box_shape) != 4 or box_shape[1:] != [n_anchors, 1, 4]:
        raise Unsupported(f"NMS boxes have shape {box_shape}; only one box per anchor is read")
    consts = _graph_constants(prep)

    def boxes_for(value: float) -> np.ndarray:
        enc = np.full((1, n_anchors, 4), value, np.float32)
        out = probe.run(boxes_in, enc, np.zeros((1, n_anchors, n_logit), np.float32))
        return np.asarray(out, np.float64).reshape(n_anchors, 4)

    zero = boxes_for(0.0)
    anchors = np.stack(
        [
            (zero[:, 0] + zero[:, 2]) / 2,
            (zero[:, 1] + zero[:, 3]) / 2,
            zero[:, 2] - zero[:, 0],
            zero[:, 3] - zero[:, 1],
        ],
        axis=1,
    )
    if (anchors[:, 2:] <= 0).any():
        raise Unsupported("zero box encodings do not give positive anchor sizes")
    scales = _scales(boxes_for(1.0), anchors, consts)
    clip = _encoding_clip(boxes_for(_PROBE), boxes_for(-_PROBE), anchors, scales, consts)
    score_fn, logit_scale, score_clip = _scores(probe, scores_in, n_anchors, n_logit, consts)
    background = n_logit - int(np.shape(score_value)[-1])
    post = SsdPostprocess(
        anchors=anchors.astype(np.float32),
        scales=scales,
        nms=_combined_nms(probe, n_anchors, n_logit) if probe.nms else _classic_nms(probe, prep),
        score_fn=score_fn,
        logit_scale=logit_scale,
        score_clip=score_clip,
        encoding_clip=clip,
        background=background,
    )
    if probe.nms is None:  # the classic loop's classes: found by running both
        offset = _classic_class_offset(probe, post, n_anchors, n_logit)
        post = replace(post, nms=replace(post.nms, class_offset=offset))
    return post


def _combined_nms(probe: _Probe, n_anchors: int, n_logit: int) -> NmsSettings:
    """``CombinedNonMaxSuppression``'s constant inputs and attributes."""
    assert probe.nms is not None
    attrs = {k: probe.nms.get_attr(k) for k in ("clip_boxes", "pad_per_class")}
    if attrs["pad_per_class"]:
        raise Unsupported("CombinedNonMaxSuppression pads per class")
    return NmsSettings(
        iou_threshold=float(probe.constant(4)),
        score_threshold=float(probe.constant(5)),
        max_per_class=int(probe.constant(2)),
        max_total=int(probe.constant(3)),
        clip_boxes=bool(attrs["clip_boxes"]),
        class_offset=_class_offset(probe, n_anchors, n_logit),
    )


def _classic_nms(probe: _Probe, prep: Any) -> NmsSettings:
    """The classic loop's limits (its per-class ops' constants; the total limit is the
    width the outputs are padded to), boxes clipped to the window before suppression."""
    limits = classic_limits(prep.post)
    zeros = (np.zeros(probe.enc_shape, np.float32), np.zeros(probe.logit_shape, np.float32))
    width = int(np.shape(probe.run(probe.outputs[1], *zeros))[-1])
    return NmsSettings(
        iou_threshold=float(limits["iou_threshold"]),
        score_threshold=float(limits["score_threshold"]),
        max_per_class=int(limits["max_per_class"]),
        max_total=width,
        clip_boxes=False,
        class_offset=0.0,
        clip_before=True,
    )


def _classic_class_offset(
    probe: _Probe, post: SsdPostprocess, n_anchors: int, n_logit: int
) -> float:
    """What the classic graph adds to the class column: its class minus NumPy's on the rows
    both give (same score and box), on random outputs scored below any cap (few ties)."""
    rng = np.random.default_rng(1)
    enc = rng.normal(0, 1, (1, n_anchors, 4)).astype(np.float32)
    logits = rng.normal(-5, 2, (1, n_anchors, n_logit)).astype(np.float32)
    want = probe.run(probe.outputs, enc, logits)
    got = post.run(enc, logits)

    def rows(out: Sequence[Any]) -> dict[tuple[float, ...], float]:
        n = int(np.asarray(out[3]).reshape(-1)[0])
        boxes, scores, classes = (np.asarray(out[i])[0, :n] for i in range(3))
        return {
            (round(float(sc), 5), *np.round(bx, 4).tolist()): float(c)
            for bx, sc, c in zip(boxes, scores, classes, strict=True)
        }

    mine = rows(got)
    offsets = {c - mine[key] for key, c in rows(want).items() if key in mine}
    if len(offsets) != 1:
        raise Unsupported("detection_classes is not the NMS class plus a constant")
    return offsets.pop()


def _graph_constants(prep: Any) -> np.ndarray:
    """Every scalar float constant of the post-processing graph (to snap probed values to)."""

    tf = import_tf()
    values = []
    for node in prep.post.node:
        if node.op == "Const" and node.attr["dtype"].type == tf.float32.as_datatype_enum:
            value = tf.make_ndarray(node.attr["value"].tensor)
            if value.size == 1:
                values.append(float(value.reshape(-1)[0]))
    return np.asarray(values, np.float64)


def _snap(value: float, consts: np.ndarray, rel: float = 1e-4) -> float:
    """``value``, or the graph constant ``c`` (or ``1/c``) within ``rel`` of it."""
    for candidate in (*consts, *(1.0 / c for c in consts if c)):
        if abs(candidate - value) <= rel * max(abs(value), 1e-6):
            return float(candidate)
    return float(value)


def _scales(
    one: np.ndarray, anchors: np.ndarray, consts: np.ndarray
) -> tuple[float, float, float, float]:
    yc = (one[:, 0] + one[:, 2]) / 2
    xc = (one[:, 1] + one[:, 3]) / 2
    h, w = one[:, 2] - one[:, 0], one[:, 3] - one[:, 1]
    with np.errstate(divide="ignore"):
        est = [
            np.median(anchors[:, 2] / (yc - anchors[:, 0])),
            np.median(anchors[:, 3] / (xc - anchors[:, 1])),
            np.median(1.0 / np.log(h / anchors[:, 2])),
            np.median(1.0 / np.log(w / anchors[:, 3])),
        ]
    if not all(np.isfinite(e) and e > 0 for e in est):
        raise Unsupported("box decoding is not centre-size (no finite scale factors)")
    y, x, h, w = (_snap(float(e), consts) for e in est)
    return y, x, h, w


def _encoding_clip(
    high: np.ndarray,
    low: np.ndarray,
    anchors: np.ndarray,
    scales: tuple[float, ...],
    consts: np.ndarray,
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Per-column ``(lo, hi)`` the encodings are clamped to, when the probes show one."""

    def effective(box: np.ndarray) -> list[float]:
        yc, xc = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
        h, w = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return [
                float(np.median((yc - anchors[:, 0]) * scales[0] / anchors[:, 2])),
                float(np.median((xc - anchors[:, 1]) * scales[1] / anchors[:, 3])),
                float(np.median(scales[2] * np.log(h / anchors[:, 2]))),
                float(np.median(scales[3] * np.log(w / anchors[:, 3]))),
            ]

    hi, lo = effective(high), effective(low)
    if all(abs(v - _PROBE) < 1e-2 for v in hi) and all(abs(v + _PROBE) < 1e-2 for v in lo):
        return None
    hi = [np.inf if abs(v - _PROBE) < 1e-2 else _snap(v, consts, 1e-3) for v in hi]
    lo = [-np.inf if abs(v + _PROBE) < 1e-2 else _snap(v, consts, 1e-3) for v in lo]
    if not all(np.isfinite(v) or abs(v) == np.inf for v in (*hi, *lo)):
        raise Unsupported("box encodings are clamped in a way the probes cannot read")
    return tuple(lo), tuple(hi)


def _scores(
    probe: _Probe, scores_in: Any, n_anchors: int, n_logit: int, consts: np.ndarray
) -> tuple[str, float, tuple[float, float] | None]:
    """Score function, logit scale and the clamp on the converted scores."""
    enc = np.zeros((1, n_anchors, 4), np.float32)

    def scores_for(value: float) -> np.ndarray:
        logits = np.full((1, n_anchors, n_logit), value, np.float32)
        return np.asarray(probe.run(scores_in, enc, logits), np.float64).reshape(-1)

    at_zero = float(np.median(scores_for(0.0)))
    if abs(at_zero - 0.5) < 1e-6:
        fn = "sigmoid"
        s1 = float(np.median(scores_for(1.0)))
        scale = _snap(float(np.log(s1 / (1.0 - s1))), consts, 1e-4)
    elif abs(at_zero - 1.0 / n_logit) < 1e-6:
        return "softmax", 1.0, None
    elif abs(at_zero) < 1e-7 and abs(float(np.median(scores_for(0.25))) - 0.25) < 1e-6:
        fn, scale = "identity", 1.0
    else:
        raise Unsupported(
            f"class scores are neither sigmoid, softmax nor the logits (0 -> {at_zero:g})"
        )
    hi = float(np.float32(scores_for(_PROBE).max()))
    lo = float(np.float32(scores_for(-_PROBE).min()))
    return fn, scale, (lo, hi)


def _class_offset(probe: _Probe, n_anchors: int, n_logit: int) -> float:
    """What the graph adds to the NMS class index to make ``detection_classes``."""
    assert probe.nms is not None
    rng = np.random.default_rng(1)
    enc = rng.normal(0, 1, (1, n_anchors, 4)).astype(np.float32)
    logits = rng.normal(-2, 3, (1, n_anchors, n_logit)).astype(np.float32)
    nms_classes, classes, num = probe.run(
        [probe.nms.outputs[2], probe.outputs[2], probe.outputs[3]], enc, logits
    )
    n = int(np.asarray(num).reshape(-1)[0])
    if n == 0:
        return 1.0
    offsets = np.unique(np.asarray(classes)[0, :n] - np.asarray(nms_classes)[0, :n])
    if len(offsets) != 1:
        raise Unsupported("detection_classes is not the NMS class plus a constant")
    return float(offsets[0])


def _check(
    probe: _Probe, post: SsdPostprocess, network_outputs: Sequence[tuple[np.ndarray, np.ndarray]]
) -> None:
    """Refuse ``post`` unless it gives the graph's own detections on every input."""
    rng = np.random.default_rng(0)
    n, c = post.num_anchors, int(np.prod(probe.logit_shape[1:])) // post.num_anchors
    inputs = list(network_outputs) + [
        (
            rng.normal(0, 1.5, (1, n, 4)).astype(np.float32),
            # scores spread below a uint8 graph's cap (0.996): ties there are kept apart
            rng.normal(-5, 2, (1, n, c)).astype(np.float32),
        )
        for _ in range(3)
    ]
    for k, (enc, logits) in enumerate(inputs):
        want = probe.run(probe.outputs, enc, logits)
        got = post.run(enc, logits)
        problem = compare_outputs(want, got)
        if problem:
            raise Unsupported(
                f"the NumPy post-processing differs from the graph's ({problem}, input {k})"
            )


def compare_outputs(want: Sequence[Any], got: Sequence[Any]) -> str:
    """'' when two ``(boxes, scores, classes, num)`` agree row for row, else what differs.

    Rows of equal score may come in any order (TF's kernel sorts them with an unstable
    sort): inside such a group they are compared in (class, box) order.
    """
    num_w, num_g = (np.asarray(v[3]).reshape(-1) for v in (want, got))
    if not np.array_equal(num_w, num_g):
        return f"{num_g.tolist()} detections, the graph {num_w.tolist()}"
    for b, count in enumerate(num_w.astype(int)):
        rows_w, rows_g = (_rows(v, b, count) for v in (want, got))
        score_diff = np.abs(rows_w[:, 0] - rows_g[:, 0]).max(initial=0)
        if score_diff > SCORE_TOLERANCE:
            return f"scores differ by {score_diff:.2g}"
        if not np.array_equal(rows_w[:, 1], rows_g[:, 1]):
            return "classes differ"
        box_diff = np.abs(rows_w[:, 2:] - rows_g[:, 2:]).max(initial=0)
        if box_diff > BOX_TOLERANCE:
            return f"boxes differ by {box_diff:.2g}"
    return ""


def _rows(out: Sequence[Any], b: int, count: int) -> np.ndarray:
    """``[count, 6]`` rows (score, class, box) of image ``b``, ties in a fixed order."""
    boxes, scores, classes = (np.asarray(out[i], np.float64) for i in range(3))
    rows = np.column_stack([scores[b, :count], classes[b, :count], boxes[b, :count]])
    order = np.lexsort((*rows[:, 5:1:-1].T, rows[:, 1], -rows[:, 0]))
    return rows[order]
