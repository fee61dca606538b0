"""How well boxes follow objects: coverage of reference detections, id switches (for the bench).

Boxes are pixel ``xyxy``. Matching is one-to-one (Hungarian, ``scipy``), same class only.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from detector import boxes
from detector.boxes import MIN_IOU
from detector.types import Detections


def match(a: Detections, b: Detections, min_iou: float = MIN_IOU) -> list[tuple[int, int]]:
    """One-to-one pairs ``(row in a, row in b)`` of the same class with IoU >= ``min_iou``."""
    return boxes.match(a.xyxy, a.class_ids, b.xyxy, b.class_ids, min_iou, optimal=True)


def covered(reference: Detections, shown: Detections, min_iou: float = MIN_IOU) -> int:
    """How many reference detections a shown box covers (same class, IoU >= ``min_iou``)."""
    return len(match(reference, shown, min_iou))


def id_switches(frames: Sequence[Detections], min_iou: float = MIN_IOU) -> int:
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
