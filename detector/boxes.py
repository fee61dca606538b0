"""Box geometry and matching: areas, IoU, normalized-to-pixel boxes and one-to-one pairing.

Pure NumPy. A box is four numbers ``(lo0, lo1, hi0, hi1)``: pixel ``xyxy`` as the app keeps
them, or the TF OD API's normalized ``[ymin, xmin, ymax, xmax]``; areas and IoU read both
alike as long as the two sets compared use the same order. Classes are label-map ids.
"""

from __future__ import annotations

import numpy as np

#: The IoU two boxes need to count as the same object, everywhere it is not configured.
MIN_IOU = 0.5


def area(boxes: np.ndarray) -> np.ndarray:
    """Area of each box of ``[..., 4]`` (0 for an empty or inverted box)."""
    b = np.asarray(boxes, np.float64)
    sides = np.clip(b[..., 2:] - b[..., :2], 0.0, None)
    return np.asarray(sides[..., 0] * sides[..., 1])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` ``[N, 4]`` with every box of ``b`` ``[M, 4]`` → ``[N, M]``.

    A pair whose union is empty has IoU 0.
    """
    a = np.asarray(a, np.float64).reshape(-1, 1, 4)
    b = np.asarray(b, np.float64).reshape(1, -1, 4)
    lo = np.maximum(a[..., :2], b[..., :2])
    hi = np.minimum(a[..., 2:], b[..., 2:])
    sides = np.clip(hi - lo, 0.0, None)
    inter = sides[..., 0] * sides[..., 1]
    union = area(a) + area(b) - inter
    return np.asarray(np.divide(inter, union, out=np.zeros_like(inter), where=union > 0))


def class_iou(
    a: np.ndarray, a_classes: np.ndarray, b: np.ndarray, b_classes: np.ndarray
) -> np.ndarray:
    """``iou_matrix(a, b)`` with 0 wherever the two boxes' classes differ."""
    ious = iou_matrix(a, b)
    same = np.asarray(a_classes).reshape(-1, 1) == np.asarray(b_classes).reshape(1, -1)
    return np.where(same, ious, 0.0)


def pair_greedy(ious: np.ndarray, min_iou: float = MIN_IOU) -> list[tuple[int, int]]:
    """One-to-one pairs ``(row, column)`` of ``ious`` ≥ ``min_iou``, best overlap first."""
    pairs: list[tuple[int, int]] = []
    if ious.size == 0:
        return pairs
    used_r: set[int] = set()
    used_c: set[int] = set()
    for flat in np.argsort(-ious, axis=None, kind="stable"):
        r, c = divmod(int(flat), ious.shape[1])
        if ious[r, c] < min_iou:
            break
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return pairs


def pair_optimal(ious: np.ndarray, min_iou: float = MIN_IOU) -> list[tuple[int, int]]:
    """One-to-one pairs ``(row, column)`` of largest total IoU (Hungarian), each ≥ ``min_iou``."""
    if ious.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment  # scipy only where optimal pairs are asked

    rows, cols = linear_sum_assignment(ious, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if ious[r, c] >= min_iou]


def match(
    a: np.ndarray,
    a_classes: np.ndarray,
    b: np.ndarray,
    b_classes: np.ndarray,
    min_iou: float = MIN_IOU,
    *,
    optimal: bool = False,
) -> list[tuple[int, int]]:
    """One-to-one pairs ``(index in a, index in b)``: same class, IoU ≥ ``min_iou``.

    Args:
        a, b: Boxes ``[N, 4]`` and ``[M, 4]``, both in the same order.
        a_classes, b_classes: Their class ids.
        min_iou: Least IoU of a pair.
        optimal: Largest total IoU (Hungarian, needs ``scipy``) instead of best overlap first.
    """
    ious = class_iou(a, a_classes, b, b_classes)
    return pair_optimal(ious, min_iou) if optimal else pair_greedy(ious, min_iou)


def best_overlaps(
    a: np.ndarray, a_classes: np.ndarray, b: np.ndarray, b_classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each box of ``a``: the best same-class IoU in ``b`` and that box's index (-1: none)."""
    ious = class_iou(a, a_classes, b, b_classes)
    if ious.shape[1] == 0:
        return np.zeros(ious.shape[0]), np.full(ious.shape[0], -1)
    best = ious.argmax(axis=1)
    value = ious[np.arange(ious.shape[0]), best]
    return value, np.where(value > 0, best, -1)


def normalized_to_xyxy(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalized ``[ymin, xmin, ymax, xmax]`` ``[N, 4]`` → pixel ``xyxy`` float32, clipped to
    the image."""
    b = np.clip(np.asarray(boxes, np.float32).reshape(-1, 4), 0.0, 1.0)
    return np.stack(
        [b[:, 1] * width, b[:, 0] * height, b[:, 3] * width, b[:, 2] * height], axis=1
    ).astype(np.float32)
