"""TensorFlow for the app: a quiet import, the device choice and the ``Session`` options.

TensorFlow is imported here, inside functions, so ``import detector`` stays free of it.
Its C++ start-up lines (oneDNN, CUDA probing) bypass ``TF_CPP_MIN_LOG_LEVEL``, so the import
and the first device query run with the process's stderr parked in a temporary file; what
was written there goes to the debug log, or to the error message when the import fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from detector.errors import ModelError
from detector.pipeline.signals import stop_requested

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "gpu")

_lock = threading.Lock()
_tf: Any = None
_gpus: list[Any] | None = None


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Send file descriptor 2 to a temporary file; yield a list that receives its lines."""
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): capture nothing
        yield lines
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())


def import_tf() -> Any:
    """Import TensorFlow once, with its start-up chatter moved to the debug log.

    Returns:
        The ``tensorflow`` module.

    Raises:
        ModelError: TensorFlow is not installed or fails to import.
    """
    global _tf
    with _lock:
        if _tf is not None:
            return _tf
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with captured_stderr() as lines:
            try:
                import tensorflow as tf
            except Exception as exc:
                tf = None
                error = exc
        if tf is None:
            if stop_requested():  # Ctrl-C / SIGTERM during the import, not a broken install
                raise KeyboardInterrupt from error
            detail = "\n".join(lines[-10:])
            raise ModelError(
                f"cannot import TensorFlow: {type(error).__name__}: {error}"
                + (f"\n{detail}" if detail else ""),
                hint="install the requirements: .venv/bin/pip install -r requirements.txt",
            ) from error
        for line in lines:
            log.debug("tensorflow: %s", line)
        tf.get_logger().setLevel(logging.ERROR)
        _tf = tf
        return tf


def visible_gpus() -> list[Any]:
    """The GPUs TensorFlow sees (probed once; the CUDA probe's stderr lines go to debug)."""
    global _gpus
    tf = import_tf()
    with _lock:
        if _gpus is None:
            with captured_stderr() as lines:
                gpus = tf.config.list_physical_devices("GPU")
            for line in lines:
                log.debug("tensorflow: %s", line)
            _gpus = list(gpus)
        return _gpus


@dataclass(frozen=True)
class SessionOptions:
    """How to run a graph.

    Attributes:
        device: ``auto`` (a GPU when TensorFlow sees one, else the CPU), ``cpu`` or ``gpu``.
        allow_memory_growth: Let TensorFlow grow GPU memory as needed instead of taking it all.
        intra_op_threads: Threads inside one op (0: TensorFlow's default, one per core).
        inter_op_threads: Ops run side by side (0: TensorFlow's default; -1: every op
            runs in the thread that called ``Session.run``, no thread hand-offs, so
            concurrent callers each use their own core).
        precision: ``auto`` (bfloat16 mixed precision on a CPU with native bfloat16
            instructions, else float32), ``bf16`` or ``fp32``. oneDNN's bfloat16 rewrite
            runs the convolutions in bfloat16 with float32 accumulation: about 30% less CPU
            a frame for the default SSD on AVX512-BF16 CPUs, detections unchanged (see
            docs/PERFORMANCE.md). GPU sessions ignore it.
    """

    device: str = "auto"
    allow_memory_growth: bool = True
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    precision: str = "auto"


def resolve_device(device: str) -> str:
    """Turn ``auto``/``cpu``/``gpu`` into the device that will be used: ``cpu`` or ``gpu``.

    Raises:
        ModelError: An unknown name, or ``gpu`` asked for when TensorFlow sees none.
    """
    if device not in DEVICES:
        raise ModelError(
            f"unknown model.device {device!r}", hint=f"use one of {', '.join(DEVICES)}"
        )
    if device == "cpu":
        return "cpu"
    gpus = visible_gpus()
    if gpus:
        return "gpu"
    if device == "gpu":
        raise ModelError(
            "model.device is 'gpu' but TensorFlow sees no GPU",
            hint="use device: auto (falls back to the CPU) or cpu; check the CUDA install",
        )
    return "cpu"


PRECISIONS = ("auto", "bf16", "fp32")


def cpu_has_bf16() -> bool:
    """True when this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str) -> str:
    """Turn ``auto``/``bf16``/``fp32`` into the precision a CPU session uses.

    ``auto`` means bf16 only where it is native and oneDNN is on (bfloat16 emulated on
    older CPUs is slower than float32).

    Raises:
        ModelError: An unknown name.
    """
    if precision not in PRECISIONS:
        raise ModelError(
            f"unknown model precision {precision!r}", hint=f"use one of {', '.join(PRECISIONS)}"
        )
    if precision != "auto":
        return precision
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")
    return "bf16" if onednn and cpu_has_bf16() else "fp32"


def session_config(options: SessionOptions, used_device: str) -> Any:
    """A ``tf.compat.v1.ConfigProto`` for ``used_device`` (``cpu`` or ``gpu``)."""
    tf = import_tf()
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=max(0, int(options.intra_op_threads)),
        # negative: run every op in the caller's thread (ConfigProto's own convention)
        inter_op_parallelism_threads=max(-1, int(options.inter_op_threads)),
        # Ops without a GPU kernel (NMS, some casts) fall back to the CPU instead of failing.
        allow_soft_placement=True,
    )
    if used_device == "cpu":
        config.device_count["GPU"] = 0
        if resolve_precision(options.precision) == "bf16":
            from tensorflow.core.protobuf import rewriter_config_pb2

            config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
                rewriter_config_pb2.RewriterConfig.ON
            )
    else:
        config.gpu_options.allow_growth = bool(options.allow_memory_growth)
    return config


def new_session(graph: Any, options: SessionOptions) -> tuple[Any, str]:
    """Open a ``tf.compat.v1.Session`` on ``graph``.

    Returns:
        ``(session, used_device)`` where ``used_device`` is ``cpu`` or ``gpu``.
    """
    tf = import_tf()
    used = resolve_device(options.device)
    session = tf.compat.v1.Session(graph=graph, config=session_config(options, used))
    return session, used


def describe_device(used_device: str) -> str:
    """A readable name for the log: the GPU's name when one is used."""
    if used_device != "gpu":
        threads = os.cpu_count() or 1
        return f"CPU ({threads} cores)"
    gpus = visible_gpus()
    return f"GPU {gpus[0].name}" if gpus else "GPU"
