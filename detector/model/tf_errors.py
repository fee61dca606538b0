"""Turn TensorFlow's exceptions into the error family's sentence: the message, never its traces.

TensorFlow appends the Python stack that built an op to its errors ("Original stack trace
for 'dense/kernel': File ..."), sometimes hundreds of lines. Users get the first line, the
operation it names and a hint; the full exception stays chained for ``--debug``.
"""

from __future__ import annotations

import re

from detector.errors import DetectorError, ModelError

_TRACE = re.compile(r"\n\s*(Original stack trace|Stack trace|Traceback|\[\[)", re.S)


def first_line(exc: BaseException) -> str:
    """An exception's message without TensorFlow's appended traces: its first line."""
    text = _TRACE.split(str(exc).strip(), maxsplit=1)[0].strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_tensorflow_error(exc: BaseException) -> bool:
    """Whether TensorFlow (or protobuf under it) raised ``exc``."""
    module = type(exc).__module__ or ""
    return module.startswith(("tensorflow", "google.protobuf", "keras")) or bool(
        _TRACE.search(str(exc))
    )


def as_model_error(exc: BaseException, what: str) -> DetectorError:
    """``exc`` as a :class:`ModelError` naming ``what`` (DetectorErrors pass unchanged)."""
    if isinstance(exc, DetectorError):
        return exc
    return ModelError(
        f"{what} failed in TensorFlow: {type(exc).__name__}: {first_line(exc)}",
        hint="run again with --debug for TensorFlow's full message",
    )
