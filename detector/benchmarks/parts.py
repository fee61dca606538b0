"""The app's own building blocks, assembled for the bench: model, engine, render + sinks.

The bench times the same code the ``run`` command uses (``load_backend_model``, ``Engine``,
``run_pipeline``, ``annotate``/``draw_hud``, ``VideoSink``/``JsonlSink``); only the wiring
lives here, so every measurement writes the same outputs the app writes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from detector.model.options import ModelOptions
from detector.types import Detections, Frame, FrameResult


def load(options: ModelOptions, *, sessions: int = 1) -> Any:
    """Load the model as ``run`` does: :func:`~detector.model.backends.load_backend_model`
    with the run's options (``model.backend``, device, threads, precision), for
    ``options.workers`` concurrent callers."""
    from detector.model.backends import load_backend_model

    return load_backend_model(options.sharing(options.workers), sessions=sessions)


def engine(
    model: Any, threshold: float = 0.5, max_boxes: int = 100
) -> Callable[[Frame], tuple[Detections, float]]:
    """The app's ``Engine`` around ``model`` (all classes, the bench's threshold)."""
    from detector.engine import Engine

    return Engine(model, threshold, None, max_boxes)


def labels_for(options: ModelOptions) -> Any:
    """The label map of ``options`` (an empty one when no file is given)."""
    from detector.labels import LabelMap, load_label_map

    if options.labels is not None and Path(options.labels).exists():
        return load_label_map(options.labels)
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
        from detector.config import OutputConfig
        from detector.outputs import open_outputs
        from detector.pipeline.render import Renderer, RenderOptions
        from detector.types import SourceInfo, SourceKind

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
