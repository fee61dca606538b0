"""One frame in, filtered pixel-box ``Detections`` out: the pipeline's ``detect`` callable.

The only place where a model's output becomes ``Detections``: BGR frames are turned into the
RGB batch of one the model wants, normalized ``[ymin, xmin, ymax, xmax]`` boxes become pixel
``xyxy`` (via ``Detections.from_tf_normalized``), and the score threshold, class filter and
box limit are applied.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import cv2
import numpy as np

from detector.config import DEFAULT_THRESHOLD
from detector.types import Detections, Frame


class Predictor(Protocol):
    """What the engine needs of a model (``DetectionModel``, ``SplitModel``)."""

    def predict(self, images_rgb: np.ndarray) -> tuple[Any, Any, Any, Any]: ...


class Engine:
    """Runs a detector on single frames; thread-safe when the model is (``Session.run`` is).

    Args:
        model: A loaded model: RGB ``uint8 [B, H, W, 3]`` → ``(boxes, scores, classes, num)``
            in the TF OD API convention (normalized ``[ymin, xmin, ymax, xmax]`` boxes).
        threshold: Minimum score in ``[0, 1]`` to keep a detection.
        class_ids: Label-map ids to keep; ``None`` keeps every class.
        max_boxes: Most detections kept per frame, best scores first.
    """

    def __init__(
        self,
        model: Predictor,
        threshold: float = DEFAULT_THRESHOLD,
        class_ids: frozenset[int] | None = None,
        max_boxes: int | None = 100,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1]; got {threshold}")
        self.model = model
        self.threshold = float(threshold)
        self.class_ids = frozenset(class_ids) if class_ids is not None else None
        self.max_boxes = max_boxes
        # A model with a fixed input size (e.g. [1, 300, 300, 3]) gets resized frames;
        # its boxes are normalized, so they map back to the frame unchanged.
        self._input_size: tuple[int, int] | None = getattr(model, "input_size", None)
        # A model that can leave out rows below the threshold (NumPy SSD post-processing)
        # is told it: the rows it keeps are exactly the ones the filter below would keep.
        self._predict_kw: dict[str, Any] = (
            {"min_score": self.threshold} if getattr(model, "takes_min_score", False) else {}
        )

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(height, width)`` the model's input is fixed to, or None."""
        return self._input_size

    def __call__(self, frame: Frame) -> tuple[Detections, float]:
        """Detect objects in one frame.

        Args:
            frame: A frame with a BGR ``uint8 (H, W, 3)`` image.

        Returns:
            ``(detections, inference_ms)``: detections in pixel ``xyxy`` of ``frame``,
            filtered and sorted best first; the model's own time in milliseconds (colour
            conversion and filtering excluded).
        """
        rgb = _rgb_at(frame.image, self._input_size)
        t0 = time.perf_counter()
        boxes, scores, classes, num = self.model.predict(rgb[np.newaxis], **self._predict_kw)
        inference_ms = (time.perf_counter() - t0) * 1e3
        detections = Detections.from_tf_normalized(
            np.asarray(boxes)[0],
            np.asarray(scores)[0],
            np.asarray(classes)[0],
            int(np.asarray(num).reshape(-1)[0]),
            frame.width,
            frame.height,
        )
        return detections.filter(self.threshold, self.class_ids, self.max_boxes), inference_ms

    def detect_batch(
        self, images_bgr: Sequence[np.ndarray], side: int = 0
    ) -> tuple[list[Detections], float]:
        """Detect objects in several BGR images with one model call.

        Args:
            images_bgr: BGR ``uint8 (H, W, 3)`` images; with ``side`` 0 they must share one
                size (a batch is one tensor).
            side: Resize each image to ``side`` x ``side`` first (0: keep sizes). A model
                with a fixed input size gets that size instead.

        Returns:
            ``(detections, inference_ms)``: per image, pixel ``xyxy`` detections of that
            image, best first, limited to ``max_boxes`` but *not* filtered by score or class
            (callers with their own threshold filter them); the one model call's milliseconds.
        """
        size = self._input_size or ((side, side) if side > 0 else None)
        batch = []
        for image in images_bgr:
            batch.append(_rgb_at(image, size))
        t0 = time.perf_counter()
        boxes, scores, classes, num = self.model.predict(np.stack(batch))
        inference_ms = (time.perf_counter() - t0) * 1e3
        nums = np.asarray(num).reshape(-1)
        out = [
            Detections.from_tf_normalized(
                np.asarray(boxes)[i],
                np.asarray(scores)[i],
                np.asarray(classes)[i],
                int(nums[i]),
                image.shape[1],
                image.shape[0],
            ).filter(0.0, None, self.max_boxes)
            for i, image in enumerate(images_bgr)
        ]
        return out, inference_ms


def _rgb_at(bgr: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """``bgr`` as RGB, resized to ``size`` ``(height, width)`` when given. Resized first: the
    colour swap then touches the network's pixels only (the same result, as both act on each
    channel alone)."""
    if size is not None and bgr.shape[:2] != size:
        bgr = cv2.resize(bgr, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
