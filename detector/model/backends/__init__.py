"""The inference backends a model can run on, and the one check that an optional one is there.

``tf`` runs the whole graph in a TensorFlow session (``detector.model.loader``); ``openvino``
runs the graph's network part in OpenVINO and its box decoding + non-max suppression in
NumPy (``detector.model.backends.openvino``), with no TensorFlow once the graph is converted;
``auto`` (the default) picks one of them per model and says why
(``detector.model.backends.auto``). Every model has the ``Predictor`` surface of
``detector.engine`` (``predict``, ``warm_up``, ``close``, ``input_size``, ``precision``,
``load_s``) and a ``backend_choice``, so every source, sink, tracker and engine works with
any. OpenVINO and NNCF are an optional extra: nothing here imports them until asked.
"""

from __future__ import annotations

import logging
from typing import Any

from detector.config import choices
from detector.errors import ConfigError
from detector.model.backends.auto import BackendChoice, choose_backend
from detector.model.backends.extra import (
    INSTALL_HINT,
    OPENVINO_PINS,
    MissingExtraError,
    openvino_available,
    require,
)
from detector.model.backends.openvino import load_openvino_model
from detector.model.loader import TensorNames, load_model
from detector.model.split_runtime import load_split_model

__all__ = [
    "BACKENDS",
    "INSTALL_HINT",
    "OPENVINO_PINS",
    "PRECISIONS",
    "MissingExtraError",
    "check_backend",
    "load_backend_model",
    "openvino_available",
    "require",
]

log = logging.getLogger(__name__)

#: Backend names, the default first: the config's ``model.backend`` choices (one definition).
BACKENDS = choices("model.backend")
#: Precisions each backend accepts (``auto``: bf16 where the CPU has it natively, else fp32).
PRECISIONS = {
    "auto": ("auto", "bf16", "fp32", "int8"),
    "tf": ("auto", "bf16", "fp32"),
    "openvino": ("auto", "bf16", "fp32", "int8"),
}


def check_backend(backend: str, precision: str = "auto") -> None:
    """Refuse an unknown backend, or a precision the backend does not have.

    Raises:
        ConfigError: With the valid choices.
    """
    if backend not in BACKENDS:
        raise ConfigError(
            f"unknown model.backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}"
        )
    if precision not in PRECISIONS[backend]:
        raise ConfigError(
            f"model.precision {precision!r} is not available with backend {backend!r}",
            hint=f"use one of {', '.join(PRECISIONS[backend])}"
            + ("; int8 needs backend openvino (--backend openvino)" if precision == "int8" else ""),
        )


def load_backend_model(
    backend: str,
    path: Any,
    *,
    workers: int = 1,
    split: bool = False,
    signature: str = "serving_default",
    tensors: Any = None,
    device: str = "auto",
    allow_memory_growth: bool = True,
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    allow_unsafe_ops: bool = False,
    precision: str = "auto",
    cache_dir: Any = None,
    init_missing: bool = False,
) -> Any:
    """Load a model on a backend: the one place that picks the loader.

    ``tf``: the whole graph in one session (``load_model``), or network and post-processing
    in two threads with ``split``. ``openvino``: the network in OpenVINO with ``workers``
    infer requests of ``intra_op_threads`` threads each, the post-processing in NumPy.
    ``auto``: one of them, chosen by :func:`detector.model.backends.auto.choose_backend`
    (logged, and kept as the model's ``backend_choice``).

    Raises:
        ConfigError: Unknown backend, a precision or option the backend does not have.
        MissingExtraError: ``openvino`` without its extra installed (exit 2).
    """
    check_backend(backend, precision)
    options: dict[str, Any] = dict(
        workers=workers,
        split=split,
        signature=signature,
        tensors=tensors,
        device=device,
        allow_memory_growth=allow_memory_growth,
        intra_op_threads=intra_op_threads,
        inter_op_threads=inter_op_threads,
        allow_unsafe_ops=allow_unsafe_ops,
        cache_dir=cache_dir,
        init_missing=init_missing,
    )
    if backend == "auto":
        choice = _choose(path, precision, options)
        model = _load(choice.backend, path, precision=choice.precision, **options)
    else:
        model = _load(backend, path, precision=precision, **options)
        choice = BackendChoice(backend, model.precision, "model.backend names it", backend)
    model.backend_choice = choice
    return model


def _choose(path: Any, precision: str, options: dict[str, Any]) -> BackendChoice:
    """``auto``'s choice for this model and these load options, logged."""
    keys = ("device", "split", "tensors", "allow_unsafe_ops", "cache_dir")
    choice = choose_backend(path, precision=precision, **{k: options[k] for k in keys})
    log.info("backend auto: %s %s (%s)", choice.backend, choice.precision, choice.reason)
    return choice


def _load(
    backend: str,
    path: Any,
    *,
    workers: int,
    split: bool,
    signature: str,
    tensors: Any,
    device: str,
    allow_memory_growth: bool,
    intra_op_threads: int,
    inter_op_threads: int,
    allow_unsafe_ops: bool,
    precision: str,
    cache_dir: Any,
    init_missing: bool,
) -> Any:
    """Load on a named backend (``tf`` or ``openvino``)."""
    if backend == "openvino":
        if split:
            raise ConfigError(
                "model.split and backend openvino do not go together: the openvino backend "
                "already runs the network apart from the post-processing",
                hint="set model.split: false (or use --backend tf)",
            )
        if device == "gpu":
            raise ConfigError(
                "the openvino backend runs on the CPU; model.device is 'gpu'",
                hint="set model.device: auto or cpu, or use --backend tf",
            )

        return load_openvino_model(
            path,
            tensors=tensors,
            precision=precision,
            streams=max(1, workers),
            threads_per_stream=max(1, intra_op_threads),
            allow_unsafe_ops=allow_unsafe_ops,
            cache_dir=cache_dir,
        )

    common: dict[str, Any] = dict(
        tensors=tensors if tensors is not None else TensorNames(),
        device=device,
        allow_memory_growth=allow_memory_growth,
        intra_op_threads=intra_op_threads,
        inter_op_threads=inter_op_threads,
        allow_unsafe_ops=allow_unsafe_ops,
        precision=precision,
    )
    if split:  # network and SSD post-processing as two sub-graphs in two threads
        return load_split_model(path, **common)
    return load_model(path, signature=signature, init_missing=init_missing, **common)
