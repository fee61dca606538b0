"""The detection service (``detector serve``): detection APIs, health, metrics, run-time sources.

Built on the app's per-source path and the live view's server (:mod:`detector.outputs.web`).
"""

from __future__ import annotations

from detector.service.runner import Service, serve

__all__ = ["Service", "serve"]
