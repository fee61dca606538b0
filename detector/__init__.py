"""detector: real-time object detection on TensorFlow frozen graphs.

The public API (details: docs/API.md)::

    import detector

    model = detector.Detector()                     # the default SSD; or Detector("frozen.pb")
    dets = model.predict(bgr_image)                 # Detections: xyxy, scores, class_ids, labels
    for result in model.stream("clip.mp4"):         # a FrameResult per frame, in order
        ...
    stats = detector.run(source="clip.mp4", coco=True)   # the whole app, as `detector run`
    detector.serve(model, port=8080)                # the HTTP service on that model

Importing this package is cheap: the names above load on first use, and TensorFlow only
when a model loads (inside :mod:`detector.model`, :mod:`detector.tflite`,
:mod:`detector.tools` and :mod:`detector.explain`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

# public name -> the module that defines it (imported on first access)
_LAZY = {
    "Detector": "detector.api",
    "ResultStream": "detector.api",
    "run": "detector.api",
    "Detections": "detector.types",
    "Frame": "detector.types",
    "FrameResult": "detector.types",
    "SourceInfo": "detector.types",
    "RunStats": "detector.types",
    "Config": "detector.config",
    "load_config": "detector.config",
    "DetectorError": "detector.errors",
    "ConfigError": "detector.errors",
    "ModelError": "detector.errors",
    "SourceError": "detector.errors",
    "serve": "detector.service.runner",  # the detection service (FastAPI, loaded on first use)
}

__all__ = [
    "Config",
    "ConfigError",
    "Detections",
    "Detector",
    "DetectorError",
    "Frame",
    "FrameResult",
    "ModelError",
    "ResultStream",
    "RunStats",
    "SourceError",
    "SourceInfo",
    "__version__",
    "load_config",
    "run",
    "serve",
]

if TYPE_CHECKING:
    from detector.api import Detector, ResultStream, run
    from detector.config import Config, load_config
    from detector.errors import ConfigError, DetectorError, ModelError, SourceError
    from detector.service.runner import serve
    from detector.types import Detections, Frame, FrameResult, RunStats, SourceInfo


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'detector' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
