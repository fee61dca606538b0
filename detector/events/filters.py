"""Detection filters applied before tracking, zones and every output: per-class score floors,
box area limits and ignore masks.

``detect.thresholds`` gives a class its own minimum score (the engine runs at the lowest of
all, this filter restores each class's floor); ``detect.min_area`` / ``max_area`` bound the
box area in pixels, or as a fraction of the frame when the value is at most 1; a detection
whose bottom centre falls inside an ``detect.ignore`` polygon is dropped. Boxes are pixel
``xyxy``; images BGR ``uint8``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import cv2
import numpy as np

from detector.events.spec import MaskSpec, pixels
from detector.types import Detections, FrameResult


class DetectionFilter:
    """Drops detections by class score floor, box area and ignore mask.

    Args:
        floor: The minimum score of classes without their own (the engine's usual threshold).
        class_floors: Class id → minimum score.
        min_area: Smallest box area kept: pixels, or a fraction of the frame when <= 1.
        max_area: Largest box area kept, likewise (None: no limit).
        masks: Ignore polygons with the class ids they apply to (None: every class).

    Attributes:
        dropped: Detections dropped per reason (``score``, ``area``, ``mask``).
    """

    def __init__(
        self,
        floor: float = 0.0,
        class_floors: Mapping[int, float] | None = None,
        min_area: float | None = None,
        max_area: float | None = None,
        masks: Sequence[tuple[MaskSpec, frozenset[int] | None]] = (),
    ) -> None:
        self.floor = floor
        self.class_floors = dict(class_floors or {})
        self.min_area = min_area
        self.max_area = max_area
        self.masks = list(masks)
        self.dropped: Counter[str] = Counter()
        self._size: tuple[int, int] | None = None
        self._rasters: list[tuple[np.ndarray, frozenset[int] | None]] = []

    @property
    def active(self) -> bool:
        """False when it would keep everything the engine gives."""
        return bool(self.class_floors or self.min_area or self.max_area is not None or self.masks)

    def _raster(self, width: int, height: int) -> None:
        self._size = (width, height)
        self._rasters = []
        for spec, classes in self.masks:
            img = np.zeros((height, width), np.uint8)
            cv2.fillPoly(img, [np.array(pixels(spec.polygon, width, height), np.int32)], 1)
            self._rasters.append((img.astype(bool), classes))

    def _area_px(self, limit: float, width: int, height: int) -> float:
        return limit * width * height if limit <= 1.0 else limit

    def apply(self, d: Detections, width: int, height: int) -> Detections:
        """The rows of ``d`` that pass, in order."""
        if not len(d) or not self.active:
            return d
        floors = np.full(len(d), self.floor, np.float32)
        for cid, f in self.class_floors.items():
            floors[d.class_ids == cid] = f
        keep = d.scores >= floors
        self.dropped["score"] += int((~keep).sum())
        area = (d.xyxy[:, 2] - d.xyxy[:, 0]) * (d.xyxy[:, 3] - d.xyxy[:, 1])
        ok = np.ones(len(d), bool)
        if self.min_area:
            ok &= area >= self._area_px(self.min_area, width, height)
        if self.max_area is not None:
            ok &= area <= self._area_px(self.max_area, width, height)
        self.dropped["area"] += int((keep & ~ok).sum())
        keep &= ok
        if self.masks:
            if self._size != (width, height):
                self._raster(width, height)
            x = np.clip(((d.xyxy[:, 0] + d.xyxy[:, 2]) / 2).astype(int), 0, width - 1)
            y = np.clip(d.xyxy[:, 3].astype(int), 0, height - 1)
            masked = np.zeros(len(d), bool)
            for raster, classes in self._rasters:
                hit = raster[y, x]
                if classes is not None:
                    hit &= np.isin(d.class_ids, list(classes))
                masked |= hit
            self.dropped["mask"] += int((keep & masked).sum())
            keep &= ~masked
        return d if keep.all() else d.select(keep)

    def __call__(self, result: FrameResult) -> FrameResult:
        f = result.frame
        kept = self.apply(result.detections, f.width, f.height)
        return result if kept is result.detections else replace(result, detections=kept)

    def wrap(self, consume: Callable[[FrameResult], bool]) -> Callable[[FrameResult], bool]:
        """``consume`` with this filter in front of it."""

        def filtered(result: FrameResult) -> bool:
            return consume(self(result))

        return filtered

    def summary(self) -> dict[str, int]:
        """Dropped detections per reason, for ``run.json``."""
        return {k: self.dropped.get(k, 0) for k in ("score", "area", "mask")}
