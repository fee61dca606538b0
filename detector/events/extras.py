"""What the event sinks need from outside: optional packages, and secrets from the environment."""

from __future__ import annotations

import importlib
import os
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
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(
            f"{key}: environment variable '{name}' is not set",
            hint=f"export it before the run, or remove {key.rsplit('.', 1)[-1]}",
        )
    return value
