"""Act on what is seen: filters, zones and lines on tracked objects, events and their sinks.

The parts, one job per module: ``spec`` (the config values), ``filters`` (per-class
thresholds, box area, ignore masks), ``zones`` (supervision's ``PolygonZone`` / ``LineZone``
with inertia, loitering and per-class counts), ``lifecycle`` (an object's ``new`` → updates →
``end``), ``stage`` (all of it on each tracked frame), and the sinks: ``jsonl``, ``mqtt``,
``webhook``, ``snapshots``, ``clips``, each behind a bounded queue and a worker thread.
Importing this package is light: supervision, paho-mqtt, httpx and PyAV load when used.
"""

from __future__ import annotations

import importlib
from typing import Any

from detector.errors import ConfigError


def require(module: str, key: str, pin: str) -> Any:
    """Import the optional ``module`` a config ``key`` needs, or a ``ConfigError`` naming the
    pinned package (the ``events`` extra) to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{key} needs the '{pin.split('==')[0]}' package, which cannot be imported ({exc})",
            hint=f"run `bash .ci/setup`, or `.venv/bin/python -m pip install '{pin}'` "
            "(the 'events' extra)",
        ) from None


def env_secret(key: str, name: str) -> str:
    """The value of environment variable ``name`` (a password or token the config ``key``
    names), or a ``ConfigError`` when it is not set. Never logged."""
    import os

    value = os.environ.get(name)
    if value is None:
        raise ConfigError(
            f"{key}: environment variable '{name}' is not set",
            hint=f"export it before the run, or remove {key.rsplit('.', 1)[-1]}",
        )
    return value
