"""The app's own building blocks, assembled for the bench: model, engine, render + sinks.

The bench times the same code the ``run`` command uses (``load_with(ModelOptions)``, ``Engine``,
``run_pipeline``, ``annotate``/``draw_hud``, ``VideoSink``/``JsonlSink``); only the wiring
lives here, so every measurement writes the same outputs the app writes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from detector.config import DEFAULT_THRESHOLD, DetectConfig, OutputConfig
from detector.engine import Engine
from detector.labels import LabelMap, load_label_map
from detector.model.loader import load_model
from detector.model.options import ModelOptions, load_with
from detector.outputs import open_outputs
from detector.pipeline.render import Renderer, RenderOptions
from detector.types import Detections, Frame, FrameResult, SourceInfo, SourceKind

#: ``detect.max_boxes``'s default.
DEFAULT_MAX_BOXES = DetectConfig().max_boxes


def load(options: ModelOptions) -> Any:
    """Load the model as ``run`` does: :func:`detector.model.options.load_with` on
    ``model.backend``, shared by ``options.workers`` inference threads."""

    return load_with(options.sharing(options.workers))


def load_sessions(options: ModelOptions, sessions: int) -> Any:
    """The same graph in TensorFlow with a session per worker, whatever ``model.backend``
    says (the bench's ``pipeline_w2_session_each`` row: ``load_model(sessions=N)``)."""

    kwargs = options.loader_kwargs()
    for tf_has_none in ("workers", "split", "cache_dir"):
        kwargs.pop(tf_has_none)
    kwargs["precision"] = options.session_options().precision
    return load_model(options.path, sessions=sessions, **kwargs)


def engine(
    model: Any, threshold: float = DEFAULT_THRESHOLD, max_boxes: int = DEFAULT_MAX_BOXES
) -> Callable[[Frame], tuple[Detections, float]]:
    """The app's ``Engine`` around ``model`` (all classes, the bench's threshold)."""

    return Engine(model, threshold, None, max_boxes)


def labels_for(path: Path | None) -> LabelMap:
    """The label map at ``path`` (an empty one when no file is given or it is missing)."""

    if path is not None and Path(path).exists():
        return load_label_map(path)
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
