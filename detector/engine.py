"""One frame in, filtered pixel-box ``Detections`` out: the pipeline's ``detect`` callable.

The only place where a model's output becomes ``Detections``: BGR frames are turned into the
RGB batch of one the model wants, normalized ``[ymin, xmin, ymax, xmax]`` boxes become pixel
``xyxy`` (via ``Detections.from_tf_normalized``), and the score threshold, class filter and
box limit are applied.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import cv2
import numpy as np

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
        threshold: float = 0.5,
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

    def __call__(self, frame: Frame) -> tuple[Detections, float]:
        """Detect objects in one frame.

        Args:
            frame: A frame with a BGR ``uint8 (H, W, 3)`` image.

        Returns:
            ``(detections, inference_ms)``: detections in pixel ``xyxy`` of ``frame``,
            filtered and sorted best first; the model's own time in milliseconds (colour
            conversion and filtering excluded).
        """
        rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
        if self._input_size is not None and rgb.shape[:2] != self._input_size:
            h, w = self._input_size
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
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
