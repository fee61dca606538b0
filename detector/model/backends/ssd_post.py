"""SSD post-processing in NumPy: centre-size box decoding and TF's ``CombinedNonMaxSuppression``.

What a TF Object Detection API SSD graph does after its network, without TensorFlow: score
conversion (sigmoid, softmax or none, clamped as the graph clamps it), background columns
dropped, per-class greedy non-max suppression with the graph's IoU, score threshold and
per-class / total limits, boxes clipped to ``[0, 1]``, classes shifted to label-map ids. The
settings (anchors included) are read from the graph once, at conversion time
(:mod:`detector.model.backends.ssd_graph`), and cached beside the converted network.

It reproduces TF's kernel: float32 throughout, IoU computed as TF computes it (corners
normalized with min/max, 0 for an empty box, a box suppressed when its IoU with a kept box
of its class is *above* the threshold), candidates strictly above the score threshold, and
only the candidates that can reach the output are decoded: scores are filtered first (in
logit space for a sigmoid), and suppression walks the best candidates until the output is full.
Anchors are ``[yc, xc, h, w]``; boxes come out normalized ``[ymin, xmin, ymax, xmax]``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import ModelError

_F32 = np.float32
#: Bump when the saved file's meaning changes.
POST_FORMAT = 1
SCORE_FUNCTIONS = ("sigmoid", "softmax", "identity")


@dataclass(frozen=True)
class NmsSettings:
    """``CombinedNonMaxSuppression``'s inputs and attributes, as the graph holds them."""

    iou_threshold: float
    score_threshold: float
    max_per_class: int
    max_total: int
    clip_boxes: bool = True
    class_offset: float = 1.0
    #: The classic OD API export: boxes clipped to ``[0, 1]`` and the ones left without area
    #: dropped *before* suppression (IoU on the clipped boxes).
    clip_before: bool = False


@dataclass(frozen=True)
class SsdPostprocess:
    """One graph's post-processing settings; ``run`` turns network outputs into detections.

    Attributes:
        anchors: float32 ``[N, 4]`` ``yc, xc, h, w`` (normalized).
        scales: ``(y, x, h, w)`` centre-size scale factors (10, 10, 5, 5 for the OD API SSDs).
        nms: The suppression settings.
        score_fn: ``sigmoid``, ``softmax`` or ``identity`` over the class logits.
        logit_scale: Logits are multiplied by this before ``score_fn`` (OD API ``logit_scale``).
        score_clip: ``(lo, hi)`` the converted scores are clamped to (``None``: not clamped).
        encoding_clip: ``(lo, hi)`` per encoding column the box encodings are clamped to.
        background: Leading score columns dropped (1: the OD API background class).
    """

    anchors: np.ndarray = field(repr=False)
    scales: tuple[float, float, float, float]
    nms: NmsSettings
    score_fn: str = "sigmoid"
    logit_scale: float = 1.0
    score_clip: tuple[float, float] | None = None
    encoding_clip: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    background: int = 1

    def __post_init__(self) -> None:
        if self.score_fn not in SCORE_FUNCTIONS:
            raise ModelError(f"unknown score function {self.score_fn!r}")
        if self.anchors.ndim != 2 or self.anchors.shape[1] != 4:
            raise ModelError(f"anchors must be [N, 4]; got {self.anchors.shape}")

    @property
    def num_anchors(self) -> int:
        return int(self.anchors.shape[0])

    def run(
        self, encodings: np.ndarray, logits: np.ndarray, min_score: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Network outputs of a batch → the TF OD API outputs, as the graph gives them.

        Args:
            encodings: Box encodings, ``B * N * 4`` values (``[B, N, 4]`` or ``[B, N, 1, 4]``).
            logits: Class logits ``[B, N, C]`` (``C`` with the background columns).
            min_score: Keep only detections scoring at least this (``None``: the graph's
                own threshold). The rows kept are exactly the graph's rows above it: a
                detection's fate depends only on better-scored ones.

        Returns:
            ``(boxes [B, K, 4], scores [B, K], classes [B, K], num [B])`` float32, ``K`` the
            graph's total limit, rows past ``num`` zero.
        """
        batch = int(logits.shape[0])
        enc = np.asarray(encodings, _F32).reshape(batch, self.num_anchors, 4)
        lg = np.asarray(logits, _F32).reshape(batch, self.num_anchors, -1)
        k = self.nms.max_total
        boxes = np.zeros((batch, k, 4), _F32)
        scores = np.zeros((batch, k), _F32)
        classes = np.zeros((batch, k), _F32)
        num = np.zeros((batch,), _F32)
        for b in range(batch):
            bx, sc, cl = self._one(enc[b], lg[b], min_score)
            n = len(sc)
            boxes[b, :n], scores[b, :n], classes[b, :n], num[b] = bx, sc, cl, n
        return boxes, scores, classes, num

    def _one(
        self, enc: np.ndarray, logits: np.ndarray, min_score: float | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One image: candidates, then suppression over the best until the output is full."""
        floor = _F32(self.nms.score_threshold)
        anchor, column, score = self.candidates(logits, floor, min_score)
        order = np.argsort(-score, kind="stable")
        total, count = self.nms.max_total, len(order)
        depth = min(count, 4 * total)
        while True:
            if depth < count:  # every candidate tied with the last one taken comes too
                cut = score[order[depth - 1]]
                depth = int(np.count_nonzero(score >= cut))
            take = order[:depth]
            boxes = self.decode(enc[anchor[take]], anchor[take])
            if self.nms.clip_before:
                take, boxes = _clip_to_window(take, boxes)
            kept = _suppress(boxes, column[take], _F32(self.nms.iou_threshold))
            kept = _per_class_limit(kept, column[take], self.nms.max_per_class)
            if len(kept) >= total or depth >= count:
                break
            depth = min(count, depth * 2)
        kept = kept[:total]
        out = boxes[kept]
        if self.nms.clip_boxes:
            out = np.clip(out, _F32(0.0), _F32(1.0))
        cls = column[take][kept].astype(_F32) + _F32(self.nms.class_offset)
        return out, score[take][kept], cls

    def candidates(
        self, logits: np.ndarray, floor: np.float32, min_score: float | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(anchor, class column, score)`` of every score above the threshold(s)."""
        keep_at = None if min_score is None else _F32(min_score)
        if self.score_fn == "softmax":
            z = logits * _F32(self.logit_scale)
            z = np.exp(z - z.max(axis=1, keepdims=True))
            probs = (z / z.sum(axis=1, keepdims=True))[:, self.background :]
            anchor, column = np.nonzero(probs > floor)
            score = self._clip(probs[anchor, column])
        else:
            # one pass over the contiguous logits, then only the candidates are converted
            width = logits.shape[1]
            flat = np.flatnonzero(logits > self._raw_floor(max(floor, keep_at or floor)))
            anchor, column = np.divmod(flat, width)
            keep = column >= self.background
            anchor, column = anchor[keep], column[keep] - self.background
            score = self._convert(logits.reshape(-1)[flat[keep]])
        keep = score > floor
        if keep_at is not None:
            keep &= score >= keep_at
        return anchor[keep], column[keep], score[keep]

    def _raw_floor(self, threshold: np.float32) -> np.float32:
        """A logit below which no score can pass ``threshold`` (with a safety margin)."""
        if self.score_fn == "identity":
            return _F32(np.nextafter(threshold, -np.inf))
        t = float(np.clip(threshold, 1e-30, 1 - 1e-7))
        return _F32((np.log(t / (1.0 - t)) - 1e-3) / self.logit_scale)

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        if self.score_fn == "sigmoid":
            raw = _F32(1.0) / (_F32(1.0) + np.exp(-(raw * _F32(self.logit_scale))))
        return self._clip(raw.astype(_F32))

    def _clip(self, scores: np.ndarray) -> np.ndarray:
        if self.score_clip is None:
            return scores
        lo, hi = _F32(self.score_clip[0]), _F32(self.score_clip[1])
        clipped: np.ndarray = np.minimum(np.maximum(scores, lo), hi)
        return clipped

    def decode(self, enc: np.ndarray, anchor: np.ndarray) -> np.ndarray:
        """Centre-size decoding of ``[K, 4]`` encodings on anchors ``anchor`` → ``[K, 4]`` yxyx."""
        return decode_centre_size(enc, self.anchors[anchor], self.scales, self.encoding_clip)

    # ------------------------------------------------------------------ cache file

    def save(self, path: Path) -> None:
        """Write the anchors and settings to ``path`` (``.npz``), atomically."""
        settings = {k: v for k, v in asdict(self).items() if k != "anchors"}
        tmp = path.with_name(path.name + ".tmp.npz")
        doc = json.dumps({"format": POST_FORMAT, **settings})
        np.savez(tmp, anchors=self.anchors, settings=doc)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SsdPostprocess:
        """Read what ``save`` wrote.

        Raises:
            ModelError: Missing, unreadable or of another format.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                anchors = np.asarray(data["anchors"], _F32)
                doc: dict[str, Any] = json.loads(str(data["settings"]))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(
                f"cannot read the cached post-processing '{path}': {exc}",
                hint="delete the .openvino cache folder and load again",
            ) from exc
        if doc.pop("format", None) != POST_FORMAT:
            raise ModelError(f"'{path}' holds another post-processing format")
        clip = doc.get("encoding_clip")
        return cls(
            anchors=anchors,
            scales=tuple(doc["scales"]),
            nms=NmsSettings(**doc["nms"]),
            score_fn=doc["score_fn"],
            logit_scale=float(doc["logit_scale"]),
            score_clip=tuple(doc["score_clip"]) if doc.get("score_clip") else None,
            encoding_clip=(tuple(clip[0]), tuple(clip[1])) if clip else None,
            background=int(doc["background"]),
        )


def decode_centre_size(
    enc: np.ndarray,
    anchors: np.ndarray,
    scales: tuple[float, float, float, float],
    clip: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> np.ndarray:
    """Centre-size decoding: ``[..., 4]`` (ty, tx, th, tw) on ``[..., 4]`` (yc, xc, h, w) anchors.

    ``yc = ty / y_scale * ha + ya``, ``h = exp(th / h_scale) * ha`` (and the same for x, w);
    out come ``[..., 4]`` float32 ``ymin, xmin, ymax, xmax``. ``clip`` clamps the encodings
    first (per column ``lo``, ``hi``), as graphs made from uint8 models do.
    """
    e = np.asarray(enc, _F32)
    if clip is not None:
        e = np.minimum(np.maximum(e, np.asarray(clip[0], _F32)), np.asarray(clip[1], _F32))
    a = np.asarray(anchors, _F32)
    ya, xa, ha, wa = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    inv = [_F32(1.0 / s) for s in scales]
    yc = e[..., 0] * inv[0] * ha + ya
    xc = e[..., 1] * inv[1] * wa + xa
    half_h = _F32(0.5) * np.exp(e[..., 2] * inv[2]) * ha
    half_w = _F32(0.5) * np.exp(e[..., 3] * inv[3]) * wa
    return np.stack([yc - half_h, xc - half_w, yc + half_h, xc + half_w], axis=-1)


def _clip_to_window(take: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes clipped to ``[0, 1]``; the ones left with no area (or flipped) dropped, as the
    classic export's ``ClipToWindow`` does (``area > 0``)."""
    clipped = np.minimum(np.maximum(boxes, _F32(0.0)), _F32(1.0))
    area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = area > _F32(0.0)
    return take[keep], clipped[keep]


def _suppress(boxes: np.ndarray, classes: np.ndarray, iou_threshold: np.float32) -> np.ndarray:
    """Greedy per-class NMS over score-sorted ``boxes``; the kept positions, in order."""
    first, second = _same_class_pairs(classes)
    over = iou_pairs(boxes, first, second) > iou_threshold
    first, second = first[over], second[over]
    if not len(first):
        return np.arange(len(boxes))
    order = np.lexsort((second, first))
    dead = [False] * len(boxes)
    # Pairs come in order of the better box: a box suppresses only while it is itself kept.
    for a, b in zip(first[order].tolist(), second[order].tolist(), strict=True):
        if not dead[a]:
            dead[b] = True
    return np.flatnonzero(~np.asarray(dead))


def _same_class_pairs(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``(i, j)``, ``i < j``, of positions holding the same class."""
    count = len(classes)
    by_class = np.argsort(classes, kind="stable")  # keeps score order inside a class
    sorted_classes = classes[by_class]
    starts = np.flatnonzero(np.r_[True, sorted_classes[1:] != sorted_classes[:-1]])
    sizes = np.diff(np.r_[starts, count])
    later = np.repeat(starts + sizes, sizes) - np.arange(count) - 1
    first = np.repeat(np.arange(count), later)
    offset = np.arange(int(later.sum())) - np.repeat(np.cumsum(later) - later, later)
    return by_class[first], by_class[first + 1 + offset]


def iou_pairs(boxes: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """IoU of ``boxes[first]`` with ``boxes[second]`` exactly as TF's NMS kernel computes it."""
    b = np.asarray(boxes, _F32)
    y0, y1 = np.minimum(b[:, 0], b[:, 2]), np.maximum(b[:, 0], b[:, 2])
    x0, x1 = np.minimum(b[:, 1], b[:, 3]), np.maximum(b[:, 1], b[:, 3])
    area = (y1 - y0) * (x1 - x0)
    zero = _F32(0.0)
    ih = np.maximum(np.minimum(y1[first], y1[second]) - np.maximum(y0[first], y0[second]), zero)
    iw = np.maximum(np.minimum(x1[first], x1[second]) - np.maximum(x0[first], x0[second]), zero)
    inter = ih * iw
    with np.errstate(divide="ignore", invalid="ignore"):
        iou: np.ndarray = inter / (area[first] + area[second] - inter)
    iou[(area[first] <= zero) | (area[second] <= zero)] = zero
    return iou


def _per_class_limit(kept: np.ndarray, classes: np.ndarray, limit: int) -> np.ndarray:
    """The first ``limit`` kept positions of each class (TF stops a class there)."""
    if len(kept) <= limit:
        return kept
    cls = classes[kept]
    order = np.argsort(cls, kind="stable")
    rank = np.empty(len(kept), np.int64)
    starts = np.flatnonzero(np.r_[True, cls[order][1:] != cls[order][:-1]])
    sizes = np.diff(np.r_[starts, len(kept)])
    rank[order] = np.arange(len(kept)) - np.repeat(starts, sizes)
    return kept[rank < limit]
