"""Map each kept detection back to the anchor (and score column) that produced it.

``CombinedNonMaxSuppression`` copies its kept boxes and scores from its inputs: a detection's
score is exactly one pre-NMS score, and its box is that anchor's decoded box (clipped to
``[0, 1]``). The anchor is found by matching both, so two anchors with the same score but
different boxes are never confused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.errors import ModelError

#: Largest score + box difference still counted as the same row (float32 round-off).
MATCH_TOLERANCE = 1e-3


@dataclass(frozen=True)
class AnchorMatch:
    """Where a detection came from.

    Attributes:
        anchor: Row of the pre-NMS boxes / scores.
        column: Column of the pre-NMS scores (class id - 1 for the TF OD API).
        error: Score + largest box-coordinate difference of the match.
    """

    anchor: int
    column: int
    error: float


def match_anchor(
    box_norm: np.ndarray,
    score: float,
    class_id: int,
    pre_boxes: np.ndarray,
    pre_scores: np.ndarray,
) -> AnchorMatch:
    """The anchor and score column of one detection.

    Args:
        box_norm: The detection's normalized ``[ymin, xmin, ymax, xmax]``.
        score: Its score.
        class_id: Its label-map id (the TF OD API reports score column + 1).
        pre_boxes: ``[N, 4]`` (or ``[N, q, 4]``) pre-NMS decoded boxes of the image.
        pre_scores: ``[N, C]`` pre-NMS scores of the image.

    Raises:
        ModelError: No anchor gives this box and score (the graph does not keep NMS inputs).
    """
    boxes = np.asarray(pre_boxes, np.float32)
    if boxes.ndim == 3:
        boxes = boxes[:, 0 if boxes.shape[1] == 1 else class_id - 1]
    boxes = np.clip(boxes, 0.0, 1.0)
    scores = np.asarray(pre_scores, np.float32)
    box_err = np.abs(boxes - np.clip(np.asarray(box_norm, np.float32), 0.0, 1.0)).max(axis=1)
    best: AnchorMatch | None = None
    columns = [c for c in (class_id - 1, class_id) if 0 <= c < scores.shape[1]]
    for column in columns or range(scores.shape[1]):
        err = np.abs(scores[:, column] - np.float32(score)) + box_err
        anchor = int(np.argmin(err))
        if best is None or err[anchor] < best.error:
            best = AnchorMatch(anchor, column, float(err[anchor]))
    if best is None or best.error > MATCH_TOLERANCE:
        raise ModelError(
            f"cannot map the detection (class {class_id}, score {score:.3f}) to an anchor: "
            f"no pre-NMS box and score match it (closest differs by "
            f"{best.error if best else float('nan'):.3g})",
            hint="use --method occlusion, which needs no anchor",
        )
    return best
