"""Frozen data passed between stages: Frame, Detections, FrameResult, SourceInfo.

Conventions, fixed here once for the whole app:

* images are BGR ``uint8`` arrays of shape ``(H, W, 3)``;
* boxes are pixel ``xyxy`` floats ``(x1, y1, x2, y2)``, top-left origin;
* class ids are label-map ids (1-based, COCO ids for the default model);
* times are monotonic seconds (``time.monotonic()``) unless a name says ``_ms``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from detector.boxes import normalized_to_xyxy

SUPERVISION_PIN = "supervision==0.31.2"


class TextEnum(str, Enum):
    """An enum of strings shown as their value (``str()``, f-strings, logs, JSON)."""

    def __str__(self) -> str:
        return str(self.value)


class SourceKind(TextEnum):
    """What a source is: it decides live vs lossless reading, naming and messages."""

    CAMERA = "camera"
    VIDEO = "video"
    STREAM = "stream"
    IMAGES = "images"


@dataclass(frozen=True)
class SourceInfo:
    """What a capture source is and what it delivers.

    Attributes:
        uri: The path, URL or camera index the user gave, as a string.
        kind: Camera, video file, network stream or images.
        live: True when frames arrive in real time (camera, network stream): the
            pipeline keeps the newest frame and counts drops; files never drop.
        width: Frame width in pixels, if known before the first frame.
        height: Frame height in pixels, if known before the first frame.
        fps: Nominal frame rate, if the source reports one.
        frame_count: Number of frames, if known (video files, image folders).
    """

    uri: str
    kind: SourceKind
    live: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frame_count: int | None = None


@dataclass(frozen=True)
class Frame:
    """One captured image.

    Attributes:
        index: 0-based position in the source (for live sources: capture order).
        timestamp_s: Monotonic time at capture.
        image: BGR ``uint8`` array ``(H, W, 3)``.
        name: A name for outputs: the file name for image folders, else ``None``.
    """

    index: int
    timestamp_s: float
    image: np.ndarray = field(repr=False)
    name: str | None = None

    def __post_init__(self) -> None:
        img = self.image
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f"Frame.image must be BGR uint8 (H, W, 3); got {img.dtype} {img.shape}"
            )

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class Detections:
    """Detections of one image as parallel arrays.

    Attributes:
        xyxy: ``(N, 4)`` float32 pixel boxes ``x1, y1, x2, y2``.
        scores: ``(N,)`` float32 confidences in ``[0, 1]``.
        class_ids: ``(N,)`` int32 label-map ids (1-based).
        track_ids: ``(N,)`` int32 persistent object ids from a tracker (1-based; ``-1``
            for a row the tracker has not given an id yet), or ``None`` when no tracker ran.
        labels: ``(N,)`` class names (str array), or ``None`` when no label map was applied
            (see :meth:`named`; the public API's results always have them).
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    track_ids: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        class_ids = np.asarray(self.class_ids, dtype=np.int32).reshape(-1)
        if not len(xyxy) == len(scores) == len(class_ids):
            raise ValueError(
                "Detections arrays differ in length: "
                f"xyxy {len(xyxy)}, scores {len(scores)}, class_ids {len(class_ids)}"
            )
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_ids", class_ids)
        if self.track_ids is not None:
            track_ids = np.asarray(self.track_ids, dtype=np.int32).reshape(-1)
            if len(track_ids) != len(scores):
                raise ValueError(
                    f"Detections.track_ids has {len(track_ids)} rows for {len(scores)} detections"
                )
            object.__setattr__(self, "track_ids", track_ids)
        if self.labels is not None:
            labels = np.asarray(self.labels, dtype=str).reshape(-1)
            if len(labels) != len(scores):
                raise ValueError(
                    f"Detections.labels has {len(labels)} rows for {len(scores)} detections"
                )
            object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    @classmethod
    def from_tf_normalized(
        cls,
        boxes: np.ndarray,
        scores: np.ndarray,
        classes: np.ndarray,
        num: int | None,
        width: int,
        height: int,
    ) -> Detections:
        """Build from TF OD API outputs of one image.

        Args:
            boxes: ``(K, 4)`` normalized ``[ymin, xmin, ymax, xmax]``.
            scores: ``(K,)`` scores.
            classes: ``(K,)`` class ids as floats (TF OD API) or ints.
            num: ``num_detections``: how many leading rows are valid (``None``: all).
            width: Image width in pixels.
            height: Image height in pixels.
        """
        n = len(scores) if num is None else int(num)
        xyxy = normalized_to_xyxy(np.asarray(boxes)[:n], width, height)
        return cls(xyxy, np.asarray(scores)[:n], np.rint(np.asarray(classes)[:n]).astype(np.int32))

    def select(self, mask: np.ndarray) -> Detections:
        """Rows where ``mask`` (boolean or index array) selects."""
        ids = self.track_ids[mask] if self.track_ids is not None else None
        names = self.labels[mask] if self.labels is not None else None
        return Detections(self.xyxy[mask], self.scores[mask], self.class_ids[mask], ids, names)

    def named(self, name: Callable[[int], str]) -> Detections:
        """The same rows with ``labels`` set: ``name(class_id)`` for each (e.g.
        ``LabelMap.name``, which says ``class N`` for an id the map does not know)."""
        labels = np.array([name(int(c)) for c in self.class_ids], dtype=str)
        return Detections(self.xyxy, self.scores, self.class_ids, self.track_ids, labels)

    def to_supervision(self) -> Any:
        """These detections as a ``supervision.Detections`` (``xyxy``, ``confidence``,
        ``class_id``, ``tracker_id``; ``data["class_name"]`` when labels are set).

        supervision is an optional extra (``track``); it is imported here, on first use.

        Raises:
            ImportError: supervision is not installed; the message says how to install it.
        """
        try:
            import supervision as sv
        except ImportError as exc:
            raise ImportError(
                f"Detections.to_supervision needs the 'supervision' package ({exc}); "
                f"install it with: python -m pip install '{SUPERVISION_PIN}' "
                "(the 'track' extra: pip install 'detector[track]')"
            ) from exc
        data: dict[str, Any] = {} if self.labels is None else {"class_name": self.labels}
        return sv.Detections(
            xyxy=self.xyxy.astype(np.float32),
            confidence=self.scores,
            class_id=self.class_ids.astype(int),
            tracker_id=self.track_ids.astype(int) if self.track_ids is not None else None,
            data=data,
        )

    def filter(
        self,
        min_score: float = 0.0,
        class_ids: frozenset[int] | None = None,
        max_count: int | None = None,
    ) -> Detections:
        """Keep rows scoring at least ``min_score``, in ``class_ids`` if given, best first."""
        keep = self.scores >= min_score
        if class_ids is not None:
            keep &= np.isin(self.class_ids, np.fromiter(class_ids, np.int32, len(class_ids)))
        idx = np.flatnonzero(keep)
        idx = idx[np.argsort(-self.scores[idx], kind="stable")]
        if max_count is not None:
            idx = idx[:max_count]
        return self.select(idx)


@dataclass(frozen=True)
class FrameResult:
    """A frame and its detections, always together.

    Attributes:
        frame: The captured frame.
        detections: Detections to show for this frame.
        fresh: True when the model ran on this very frame; False when the boxes are
            carried from an earlier frame (``detect_every`` > 1).
        detected_index: Index of the frame the model ran on to produce ``detections``.
        inference_ms: Model time for that run (``None`` for carried boxes).
    """

    frame: Frame
    detections: Detections
    fresh: bool
    detected_index: int
    inference_ms: float | None = None


@dataclass(frozen=True)
class RunStats:
    """The numbers of one pipeline run.

    Attributes:
        frames_read: Frames the source delivered.
        frames_processed: Frames handed to the output stage (``consume``).
        frames_dropped: Frames a live source's keep-newest channel discarded.
        frames_skipped: Unreadable items the source skipped (image folders).
        inferences: Model runs (fewer than frames with ``detect_every`` > 1).
        inference_ms_mean: Mean model time per run in ms, warm-up excluded when more
            runs exist (``None`` with no run).
        inference_ms_p50: Median model time per run in ms (same samples).
        fps: Output frames per second after the warm-up frames.
        elapsed_s: Wall time of the whole run in seconds.
        interrupted: True when the run ended by Ctrl-C (or a signal turned into it).
        latency_ms_p50: Median capture-to-output latency in ms (capture time to the end
            of ``consume``), warm-up excluded.
        latency_ms_p95: 95th percentile of the same.
        counts: With zones or lines: their final counts per class, ``{"lines": {name: {"in":
            {class: n}, "out": {...}}}, "zones": {name: {"entered": ..., "left": ...,
            "loitered": ..., "occupancy": ...}}}``; else ``None``.
    """

    frames_read: int
    frames_processed: int
    frames_dropped: int
    frames_skipped: int
    inferences: int
    inference_ms_mean: float | None
    inference_ms_p50: float | None
    fps: float
    elapsed_s: float
    interrupted: bool
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    counts: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict (floats rounded to 3 decimals)."""
        out: dict[str, object] = {}
        for key, value in asdict(self).items():
            out[key] = round(value, 3) if isinstance(value, float) else value
        return out
