"""The detection service (``detector serve``): detection APIs, health, metrics, run-time sources.

:mod:`~detector.service.mount` adds the routes to any run's web server (a plain run with
``--serve`` too); :mod:`~detector.service.runner` is the long-lived service built on a
:class:`~detector.Detector`. This package imports nothing until a name is used (FastAPI, and
the layers below the service, load with the module that needs them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["Service", "serve"]

if TYPE_CHECKING:
    from detector.service.runner import Service, serve


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'detector.service' has no attribute {name!r}")
    return getattr(importlib.import_module("detector.service.runner"), name)
