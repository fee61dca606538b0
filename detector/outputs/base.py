"""The output protocol: a sink takes each annotated frame and is finalized on every exit path.

Every sink is a context manager with ``write(result, annotated)`` and an idempotent
``close()``, so an output is finalized on every exit path (end of stream, q, Ctrl-C, an
error). ``annotated`` is the frame as drawn: BGR ``uint8`` ``(H, W, 3)``.
"""

from __future__ import annotations

import logging
from types import TracebackType

import numpy as np

from detector.errors import SinkError
from detector.types import FrameResult

log = logging.getLogger(__name__)


class Sink:
    """Base: context manager whose exit closes; close errors never hide the original error."""

    closed = False

    def write(self, result: FrameResult, annotated: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except Exception as close_exc:
            if exc_type is None:
                raise
            # The first error is what the user reads; this one is a consequence (often the
            # same full disk): one line, the traceback only with --verbose.
            log.warning(
                "closing %s after an error failed too: %s",
                type(self).__name__,
                close_exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )

    def _check_open(self) -> None:
        if self.closed:
            raise SinkError(f"{type(self).__name__} is closed")


def check_image(annotated: np.ndarray) -> None:
    if annotated.dtype != np.uint8 or annotated.ndim != 3 or annotated.shape[2] != 3:
        raise SinkError(
            f"expected a BGR uint8 (H, W, 3) image, got {annotated.dtype} {annotated.shape}"
        )
