"""The app's own building blocks, assembled for the bench: model, engine, render + sinks.

The bench times the same code the ``run`` command uses (``load_model``, ``Engine``,
``run_pipeline``, ``annotate``/``draw_hud``, ``VideoSink``/``JsonlSink``); only the wiring
lives here, so every measurement writes the same outputs the app writes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from detector.config import DEFAULT_THRESHOLD, OutputConfig
from detector.engine import Engine
from detector.labels import LabelMap, load_label_map
from detector.model.loader import load_model
from detector.outputs import open_outputs
from detector.pipeline.render import Renderer, RenderOptions
from detector.types import Detections, Frame, FrameResult, SourceInfo, SourceKind

if TYPE_CHECKING:
    from detector.config import Config


@dataclass(frozen=True)
class ModelSettings:
    """How the bench loads and runs the model (defaults come from the config file).

    Attributes:
        path: Model path (frozen .pb, SavedModel dir, checkpoint dir).
        labels: Label map path, or ``None`` for ``class N`` labels.
        tflite: The original ``.tflite`` for the TFLite column, or ``None`` to skip it.
        intra_op_threads: Threads inside one op (0: TF's default, one per core).
        inter_op_threads: Ops in parallel (0: TF's default).
        workers: Inference workers in the pipeline (file sources).
        threshold: Score threshold for drawn / written detections.
        max_boxes: At most this many boxes per frame.
        extra: Further keyword options for ``load_model`` (e.g. graph optimisation flags).
    """

    path: Path
    labels: Path | None = None
    tflite: Path | None = None
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    workers: int = 1
    threshold: float = DEFAULT_THRESHOLD
    max_boxes: int = 100
    extra: dict[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> ModelSettings:
        return replace(self, **changes)

    @classmethod
    def from_config(cls, config: Config, tflite: Path | None) -> ModelSettings:
        """The settings a ``run`` with ``config`` would use."""
        m = config.model
        return cls(
            path=m.path,
            labels=m.labels,
            tflite=tflite,
            intra_op_threads=m.intra_op_threads,
            inter_op_threads=m.inter_op_threads,
            workers=m.workers,
            threshold=config.detect.threshold,
            max_boxes=config.detect.max_boxes,
            extra={"precision": m.precision},
        )


def load(settings: ModelSettings, **overrides: Any) -> Any:
    """Load the model through the app's loader (``detector.model.loader.load_model``)."""

    kwargs: dict[str, Any] = {
        "device": "auto",
        "allow_memory_growth": True,
        "intra_op_threads": settings.intra_op_threads,
        "inter_op_threads": settings.inter_op_threads,
        **settings.extra,
    }
    kwargs.update(overrides)
    return load_model(settings.path, **kwargs)


def engine(model: Any, settings: ModelSettings) -> Callable[[Frame], tuple[Detections, float]]:
    """The app's ``Engine`` around ``model`` (all classes, the bench's threshold)."""

    return Engine(model, settings.threshold, None, settings.max_boxes)


def labels_for(settings: ModelSettings) -> Any:
    """The label map of ``settings`` (an empty one when no file is given)."""

    if settings.labels is not None and Path(settings.labels).exists():
        return load_label_map(settings.labels)
    return LabelMap({})


class Outputs:
    """The run's own render stage and outputs (annotated video and JSON lines), as ``run`` opens
    them: :func:`detector.outputs.open_outputs` and :class:`detector.pipeline.render.Renderer`.

    ``consume(result)`` is the renderer (annotate in place, HUD, every sink); ``on_output``
    (optional) is called after each frame is in every sink; ``web_feed`` adds the web
    view's sink (``--serve``) for that feed.
    """

    def __init__(
        self,
        out_dir: Path,
        fps: float,
        labels: Any,
        source_uri: str,
        *,
        video: bool = True,
        jsonl: bool = True,
        hud: bool = True,
        video_codec: str = "h264",
        on_output: Callable[[FrameResult], None] | None = None,
        web_feed: Any = None,
    ) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self._stack = ExitStack()
        info = SourceInfo(source_uri, SourceKind.VIDEO, False, fps=fps)
        config = OutputConfig(
            dir=out_dir, video=video, jsonl=jsonl, hud=hud, video_codec=video_codec, progress="off"
        )
        sinks = open_outputs(config, out_dir, labels, info, self._stack, web_feed=web_feed)
        self.consume = Renderer(
            labels, list(sinks.values()), RenderOptions(hud=hud), on_output=on_output
        )

    @property
    def written(self) -> int:
        return self.consume.frames

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rgb_batch(image_bgr: np.ndarray) -> np.ndarray:
    """``[1, H, W, 3]`` RGB view of a BGR image, as the engine feeds the model."""
    return np.ascontiguousarray(image_bgr[None, :, :, ::-1])
