"""Do two detectors find the same objects? The parity figures and gate between two models.

Both models are run on the same RGB images; their detections at or above a score threshold
are paired one to one, best overlaps first, when they have the same class and an IoU of at
least ``min_iou``. The ratio is the pairs over the larger of the two counts, so a candidate
that misses objects and one that invents them both lose figures (``compare_found``, the gate).
``found_again`` gives the one-sided figures of a conversion: how many reference detections the
candidate finds again, their median IoU and score difference. Boxes are normalized
``[ymin, xmin, ymax, xmax]`` as models give them; classes are label-map ids.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector import boxes
from detector.boxes import best_overlaps, match
from detector.config import DEFAULT_THRESHOLD

#: The gate a quantized model must pass against the TF graph.
MIN_RATIO = 0.95
MIN_IOU = boxes.MIN_IOU
SCORE_THRESHOLD = DEFAULT_THRESHOLD


@dataclass(frozen=True)
class ParityReport:
    """Figures of a candidate model against a reference model.

    Attributes:
        images: Images compared.
        reference: Reference detections (score ≥ ``threshold``).
        candidate: Candidate detections (score ≥ ``threshold``).
        matched: Pairs of the same class with IoU ≥ ``min_iou``.
        min_ratio: The gate: ``ratio`` must reach it.
        misses: Unpaired detections: ``{"image", "side", "class", "score"}``.
    """

    images: int
    reference: int
    candidate: int
    matched: int
    threshold: float = SCORE_THRESHOLD
    min_iou: float = MIN_IOU
    min_ratio: float = MIN_RATIO
    misses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Matched pairs over the larger count (1.0 when neither found anything)."""
        most = max(self.reference, self.candidate)
        return self.matched / most if most else 1.0

    @property
    def passed(self) -> bool:
        """True when ``ratio`` reaches ``min_ratio``."""
        return self.ratio >= self.min_ratio

    def summary(self) -> str:
        """One line: ``20/21 matched (95.2%) on 12 images; gate ≥ 95% -> pass``."""
        return (
            f"{self.matched}/{max(self.reference, self.candidate)} matched "
            f"({self.ratio:.1%}; reference {self.reference}, candidate {self.candidate} "
            f"detections ≥ {self.threshold:g}, same class, IoU ≥ {self.min_iou:g}) on "
            f"{self.images} images; gate ≥ {self.min_ratio:.0%} -> "
            f"{'pass' if self.passed else 'FAIL'}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures, ``ratio`` and ``passed`` included."""
        return {
            "images": self.images,
            "reference": self.reference,
            "candidate": self.candidate,
            "matched": self.matched,
            "ratio": round(self.ratio, 4),
            "passed": self.passed,
            "threshold": self.threshold,
            "min_iou": self.min_iou,
            "min_ratio": self.min_ratio,
            "misses": self.misses,
        }


def kept(out: tuple[Any, ...], threshold: float = SCORE_THRESHOLD) -> Found:
    """The detections of the first image of a model's output with a score ≥ ``threshold``."""
    boxes, scores, classes, num = (np.asarray(o) for o in out)
    n = int(num.reshape(-1)[0])
    b, s, c = boxes[0, :n], scores[0, :n], np.rint(classes[0, :n]).astype(int)
    keep = s >= threshold
    return Found(b[keep], s[keep], c[keep])


@dataclass(frozen=True)
class Found:
    """One image's detections: ``boxes [N, 4]`` normalized yxyx, ``scores``, ``classes``."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def to_dict(self) -> dict[str, list[Any]]:
        """JSON-ready lists (for a measurement run in another process)."""
        return {
            "boxes": np.round(self.boxes, 5).tolist(),
            "scores": np.round(self.scores, 5).tolist(),
            "classes": self.classes.astype(int).tolist(),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, list[Any]]) -> Found:
        return cls(
            np.asarray(doc["boxes"], np.float64).reshape(-1, 4),
            np.asarray(doc["scores"], np.float64),
            np.asarray(doc["classes"], int),
        )


def compare_found(
    reference: Sequence[Found],
    candidate: Sequence[Found],
    *,
    threshold: float = SCORE_THRESHOLD,
    min_iou: float = MIN_IOU,
    min_ratio: float = MIN_RATIO,
) -> ParityReport:
    """Compare two models' detections image by image (each already cut at ``threshold``)."""
    total_r = total_c = matched = 0
    misses: list[dict[str, Any]] = []
    for k, (ref, got) in enumerate(zip(reference, candidate, strict=True)):
        pairs = match(ref.boxes, ref.classes, got.boxes, got.classes, min_iou)
        total_r += len(ref.scores)
        total_c += len(got.scores)
        matched += len(pairs)
        paired_r = {r for r, _ in pairs}
        paired_c = {c for _, c in pairs}
        for side, found, paired in (("reference", ref, paired_r), ("candidate", got, paired_c)):
            misses += [
                {
                    "image": k,
                    "side": side,
                    "class": int(found.classes[i]),
                    "score": float(found.scores[i]),
                }
                for i in range(len(found.scores))
                if i not in paired
            ]
    return ParityReport(
        len(reference), total_r, total_c, matched, threshold, min_iou, min_ratio, misses
    )


def detect_all(model: Any, images_rgb: Sequence[np.ndarray], threshold: float) -> list[Found]:
    """``model.predict`` on each RGB ``uint8 [H, W, 3]`` image, one at a time."""
    return [kept(model.predict(np.asarray(im)[np.newaxis]), threshold) for im in images_rgb]


def compare_models(
    reference: Any,
    candidate: Any,
    images_rgb: Sequence[np.ndarray],
    *,
    threshold: float = SCORE_THRESHOLD,
    min_iou: float = MIN_IOU,
    min_ratio: float = MIN_RATIO,
) -> ParityReport:
    """Run both models (``predict`` on one RGB ``uint8`` image at a time) and compare.

    Args:
        reference: The model trusted (the TF graph).
        candidate: The model checked (OpenVINO fp32 / bf16 / int8).
        images_rgb: RGB ``uint8 [H, W, 3]`` images, any size.
        threshold: Detections below this score are not compared.
        min_iou: Least IoU for a pair.
        min_ratio: The gate on ``matched / max(reference, candidate)``.
    """
    return compare_found(
        detect_all(reference, images_rgb, threshold),
        detect_all(candidate, images_rgb, threshold),
        threshold=threshold,
        min_iou=min_iou,
        min_ratio=min_ratio,
    )


def found_again(
    reference: Sequence[Found],
    candidate: Sequence[Found],
    min_score: float = SCORE_THRESHOLD,
    min_iou: float = MIN_IOU,
) -> dict[str, Any]:
    """How many reference detections (score ≥ ``min_score``) the candidate finds again.

    Found again = a candidate detection of the same class with IoU ≥ ``min_iou``, not
    necessarily one to one (the best such one gives the IoU and score difference figures).
    """
    total, found, ious, diffs = 0, 0, [], []
    misses: list[dict[str, Any]] = []
    for k, (ref, got) in enumerate(zip(reference, candidate, strict=False)):
        keep = np.asarray(ref.scores) >= min_score
        r_boxes, r_scores, r_classes = ref.boxes[keep], ref.scores[keep], ref.classes[keep]
        overlaps, best = best_overlaps(r_boxes, r_classes, got.boxes, got.classes)
        total += len(r_scores)
        for i, score in enumerate(r_scores):
            if overlaps[i] >= min_iou and best[i] >= 0:
                found += 1
                ious.append(float(overlaps[i]))
                diffs.append(abs(float(got.scores[best[i]]) - float(score)))
            else:
                misses.append({"image": k, "class": int(r_classes[i]), "score": float(score)})
    return {
        "reference": total,
        "found": found,
        "ratio": found / total if total else 1.0,
        "median_iou": statistics.median(ious) if ious else None,
        "median_score_diff": statistics.median(diffs) if diffs else None,
        "max_score_diff": max(diffs) if diffs else None,
        "misses": misses,
    }
