"""The Ray engine: files spread over a Ray cluster (or local cores), cameras on workers of theirs.

The driver lists the work (image paths, or video frame ranges) and runs it on a pool of actors
(plain actors for image files, Ray Data for video ranges) that each load the model once through
the project's loader and run the same :class:`detector.engine.Engine`, and the driver puts the
results back in order and writes the same outputs as the local engine. Cameras and streams each
run in a long-lived actor that Ray restarts (:mod:`detector.distributed.live_run`). Importing
this package does not import Ray: Ray is an optional extra, imported when a Ray run starts
(:func:`detector.distributed.session.import_ray`).
"""

from __future__ import annotations

from detector.distributed.options import ModelSpec, RayOptions

__all__ = ["ModelSpec", "RayOptions"]
