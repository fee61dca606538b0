"""How well boxes follow objects: coverage of reference detections, id switches (for the bench).

Boxes are pixel ``xyxy``. Matching is one-to-one (Hungarian, ``scipy``), same class only.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from detector.types import Detections


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` intersection over union of two sets of ``xyxy`` boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match(a: Detections, b: Detections, min_iou: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one pairs ``(row in a, row in b)`` of the same class with IoU >= ``min_iou``."""
    if len(a) == 0 or len(b) == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    sim = iou_matrix(a.xyxy, b.xyxy) * (a.class_ids[:, None] == b.class_ids[None, :])
    rows, cols = linear_sum_assignment(sim, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if sim[r, c] >= min_iou]


def covered(reference: Detections, shown: Detections, min_iou: float = 0.5) -> int:
    """How many reference detections a shown box covers (same class, IoU >= ``min_iou``)."""
    return len(match(reference, shown, min_iou))


def id_switches(frames: Sequence[Detections], min_iou: float = 0.5) -> int:
    """Times an object kept from one frame to the next changed id.

    With no ground truth, "the same object" is a detection matched one-to-one to one in
    the previous frame (same class, IoU >= ``min_iou``); a switch is such a pair whose
    ids differ, both assigned (a track not confirmed yet, id -1, is not a switch).
    """
    switches = 0
    for prev, cur in pairwise(frames):
        if prev.track_ids is None or cur.track_ids is None:
            raise ValueError("id_switches needs detections with track_ids")
        for i, j in match(prev, cur, min_iou):
            a, b = int(prev.track_ids[i]), int(cur.track_ids[j])
            if a >= 0 and b >= 0 and a != b:
                switches += 1
    return switches
