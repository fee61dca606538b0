"""Boxes moved by the pixels between two frames: sparse optical flow (Lucas-Kanade) per box.

Between two model runs the tracker's constant-velocity guess drifts off people who turn,
stop or sway; the frames themselves say where each box went. For every box, up to
``max_points`` corners are picked inside it on the previous frame, followed into the current
frame by pyramidal Lucas-Kanade (one OpenCV call for all boxes), and the box is shifted by
their median motion (robust to the background corners a box always holds). A box with too
few followed points is reported as not moved, for the caller's fallback.

Images are single-channel ``uint8`` (grey); boxes pixel ``xyxy``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FlowOptions:
    """Sparse-flow settings.

    Attributes:
        max_points: Corners picked inside each box.
        min_points: Followed corners a box needs to be moved by them.
        window_px: Lucas-Kanade search window (square), pixels.
        levels: Pyramid levels above the image (each halves it): larger motions are found.
        quality: Corner quality relative to the box's best corner (OpenCV's ``qualityLevel``).
        min_distance_px: Minimum distance between picked corners, pixels.
    """

    max_points: int = 20
    min_points: int = 3
    window_px: int = 15
    levels: int = 2
    quality: float = 0.01
    min_distance_px: float = 3.0


class BoxFlow:
    """Moves boxes from one grey frame to the next by the median flow of their corners."""

    def __init__(self, options: FlowOptions | None = None) -> None:
        self.options = options if options is not None else FlowOptions()
        self._criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03)

    def shift(
        self, previous: np.ndarray, current: np.ndarray, xyxy: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Where the boxes ``xyxy`` of ``previous`` are in ``current``.

        Args:
            previous: Grey ``uint8`` ``(H, W)`` frame the boxes are on.
            current: Grey ``uint8`` ``(H, W)`` next frame, same size.
            xyxy: ``(N, 4)`` pixel boxes on ``previous``.

        Returns:
            ``(moved, found)``: the ``(N, 4)`` float32 boxes shifted by their median flow,
            and an ``(N,)`` bool array, False where too few corners were followed (that box
            is returned unmoved).
        """
        o = self.options
        boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
        moved = boxes.copy()
        found = np.zeros(len(boxes), bool)
        if len(boxes) == 0 or previous.shape != current.shape:
            return moved, found
        h, w = previous.shape[:2]
        points: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        for j, box in enumerate(boxes):
            x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
            x2, y2 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
            if x2 - x1 < 2 * o.min_distance_px or y2 - y1 < 2 * o.min_distance_px:
                continue
            corners = cv2.goodFeaturesToTrack(
                previous[y1:y2, x1:x2], o.max_points, o.quality, o.min_distance_px
            )
            if corners is None or len(corners) < o.min_points:
                continue
            points.append(corners.reshape(-1, 2) + np.array([x1, y1], np.float32))
            owners.append(np.full(len(corners), j))
        if not points:
            return moved, found
        p0 = np.concatenate(points).astype(np.float32).reshape(-1, 1, 2)
        owner = np.concatenate(owners)
        p1, status, _err = cv2.calcOpticalFlowPyrLK(
            previous,
            current,
            p0,
            p0.copy(),  # output buffer (no initial guess: OPTFLOW_USE_INITIAL_FLOW unset)
            winSize=(o.window_px, o.window_px),
            maxLevel=o.levels,
            criteria=self._criteria,
        )
        ok = status.reshape(-1) == 1
        motion = (p1 - p0).reshape(-1, 2)
        for j in np.unique(owner):
            mine = (owner == j) & ok
            if int(mine.sum()) < o.min_points:
                continue
            dx, dy = np.median(motion[mine], axis=0)
            moved[j] += np.array([dx, dy, dx, dy], np.float32)
            found[j] = True
        return moved, found
