"""The one exception family users see: what failed, the value or path, and a hint.

Each error carries the process exit code the CLI uses for it (1 runtime, 2 usage or
config). Errors also subclass the builtin they resemble, so callers that only know
Python's own exceptions still catch them (``SourceError`` is an ``OSError``). What users
read never shows a password: :func:`redact` is the one mask, for logs, names and records.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detector.types import RunStats


_CREDENTIALS = re.compile(r"(://[^/:@\s]+):[^/@\s]*@")


def redact(text: str) -> str:
    """``scheme://user:password@host`` → ``scheme://user:***@host`` (for logs, names, files)."""
    return _CREDENTIALS.sub(r"\1:***@", text)


class DetectorError(Exception):
    """Base of every error this package raises on purpose.

    Args:
        message: What failed, quoting the value or path involved.
        hint: What the user can do next (valid choices, the closest match, a command).
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class ConfigError(DetectorError, ValueError):
    """A bad config file, key, value or command-line flag (exit code 2)."""

    exit_code = 2


class SourceError(DetectorError, OSError):
    """A capture source cannot be opened or read."""


class SinkError(DetectorError, OSError):
    """An output (window, video, images, JSON lines) cannot be opened or written."""


class ModelError(DetectorError):
    """A model path, format, tensor name or graph cannot be used."""


class UnsafeGraphError(ModelError):
    """A graph holds ops outside the allowlist (file, network, Python callbacks, ...)."""


class CheckpointError(ModelError):
    """A checkpoint prefix, folder or state file is missing, ambiguous or inconsistent."""


class FetchError(DetectorError):
    """Set-up could not fetch or verify the default model or the sample media."""


class StageError(DetectorError):
    """A pipeline stage failed; names the stage and the frame it was working on.

    Args:
        stage: The stage's name (``capture``, ``inference``, ``output``).
        frame_index: The frame being processed when it failed, if any.
        cause: The original exception (also chained as ``__cause__``).
        stats: The run's numbers up to the failure (``RunStats``), when the pipeline knows them.
    """

    def __init__(
        self,
        stage: str,
        frame_index: int | None,
        cause: BaseException,
        stats: RunStats | None = None,
    ) -> None:
        where = f" on frame {frame_index}" if frame_index is not None else ""
        hint = cause.hint if isinstance(cause, DetectorError) else None
        detail = (
            cause.message
            if isinstance(cause, DetectorError)
            else f"{type(cause).__name__}: {cause}"
        )
        super().__init__(f"{stage} stage failed{where}: {detail}", hint=hint)
        self.stage = stage
        self.frame_index = frame_index
        self.cause = cause
        self.stats = stats
        if isinstance(cause, DetectorError):
            self.exit_code = cause.exit_code


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run after a clean shutdown; carries the run's numbers.

    A ``KeyboardInterrupt``, so code that only knows the builtin still sees an interrupt.
    """

    def __init__(self, stats: RunStats | None = None) -> None:
        super().__init__()
        self.stats = stats
