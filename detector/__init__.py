"""detector: real-time object detection on TensorFlow frozen graphs.

The whole loop, as ``python main.py`` runs it::

    from detector.app import run_app
    from detector.config import load_config

    stats = run_app(load_config("configs/video.yml", {"source.uri": "clip.mp4"}))
    print(stats.fps)

Underneath: ``sources`` (camera, video, stream, images) -> ``pipeline`` (capture and
inference threads) -> ``engine`` (a ``model`` from ``detector.model.loader``) -> ``render``
-> ``outputs`` (video, images, JSON lines, window). Importing this package never imports
TensorFlow; only :mod:`detector.model`, :mod:`detector.tflite` and :mod:`detector.tools`
do, and only inside the functions that need it.
"""

from __future__ import annotations

__version__ = "0.3.0"
