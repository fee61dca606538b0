"""The optional OpenVINO extra: its pins, and the one import that says how to install it."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from detector.errors import ConfigError
from detector.pipeline.signals import stop_requested

#: The pinned optional extra that brings the ``openvino`` backend (pyproject ``openvino``).
OPENVINO_PINS = ("openvino==2026.4.1", "nncf==3.4.0")
INSTALL_HINT = (
    "install the optional extra: .venv/bin/python -m pip install "
    + " ".join(f"'{p}'" for p in OPENVINO_PINS)
    + " (the pyproject extra 'openvino'; bash .ci/setup installs it)"
)


class MissingExtraError(ConfigError, ImportError):
    """An optional backend's package is not installed (exit code 2, names the install command)."""


def openvino_available() -> bool:
    """True when the ``openvino`` package can be imported (without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def decline_telemetry() -> None:
    """Say no, for this process, to the usage telemetry OpenVINO's converter and NNCF send
    when no consent file says otherwise (the user's home is left as it is)."""
    try:
        from openvino_telemetry.utils import opt_in_checker
    except ImportError:  # not installed: nothing sends
        return
    checker: Any = opt_in_checker.OptInChecker
    declined = opt_in_checker.ConsentCheckResult.DECLINED
    checker.check = lambda self, *args, **kwargs: declined


def require(module: str) -> Any:
    """Import an optional backend package, or say how to install it.

    Args:
        module: ``openvino`` or ``nncf``.

    Raises:
        MissingExtraError: The package is not installed (exit code 2).
        KeyboardInterrupt: A stop signal arrived during the import (a C extension turns it
            into ``ImportError: initialization failed``).
    """
    try:
        decline_telemetry()
        return importlib.import_module(module)
    except ImportError as exc:
        if stop_requested():  # Ctrl-C / SIGTERM inside the extension's start-up, not a bad install
            raise KeyboardInterrupt from exc
        raise MissingExtraError(
            f"the openvino backend needs the Python package {module!r}, which is not "
            f"installed ({exc})",
            hint=INSTALL_HINT,
        ) from exc
