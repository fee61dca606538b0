"""How a model is loaded and run: one frozen, picklable ``ModelOptions`` built once from the config.

The app, the Ray actors, the bench and explain all load through these options (see
:func:`detector.model.backends.load_backend_model`), so ``model.backend``, the device, the
thread counts and the precision mean the same everywhere. Importing this module never
imports TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.model.backends import load_backend_model
from detector.model.loader import TensorNames
from detector.model.session import SessionOptions

if TYPE_CHECKING:
    from detector.config import Config, ModelConfig


@dataclass(frozen=True)
class ModelOptions:
    """Everything that decides how a detector is loaded (plain values: Ray ships it to actors).

    Attributes:
        path: Frozen ``.pb``/``.pbtxt``, SavedModel folder or checkpoint (folder or prefix).
        labels: Label map file, or ``None`` (``class N`` labels).
        backend: ``tf`` or ``openvino`` (``model.backend``).
        device: ``auto``, ``cpu`` or ``gpu``.
        precision: ``auto``, ``bf16``, ``fp32`` (``int8``: openvino only).
        workers: Inference threads sharing the model (openvino: that many infer requests).
        intra_op_threads: Threads inside one op (0: TensorFlow's default, one per core).
        inter_op_threads: Ops side by side (0: TF's default; -1: in the calling thread).
        tensors: Input and output tensor names.
        signature: The SavedModel signature.
        split: Network and post-processing as two sub-graphs in two threads (tf only).
        allow_memory_growth: Grow GPU memory as needed.
        allow_unsafe_ops: Skip the op allowlist (trusted files only).
        init_missing: Checkpoints: variables the checkpoint lacks keep their initial values.
        cache_dir: The openvino backend's converted-model cache (``None``: beside the graph).
    """

    path: Path
    labels: Path | None = None
    backend: str = "tf"
    device: str = "auto"
    precision: str = "auto"
    workers: int = 1
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    tensors: TensorNames = TensorNames()
    signature: str = "serving_default"
    split: bool = False
    allow_memory_growth: bool = True
    allow_unsafe_ops: bool = False
    init_missing: bool = False
    cache_dir: Path | None = None

    @classmethod
    def from_config(cls, config: Config) -> ModelOptions:
        """The ``model.*`` keys as options (``workers``: ``model.workers``)."""
        return cls.from_model(config.model)

    @classmethod
    def from_model(cls, mc: ModelConfig) -> ModelOptions:
        """The ``model:`` section as options."""
        return cls(
            path=Path(mc.path),
            labels=Path(mc.labels) if mc.labels is not None else None,
            backend=mc.backend,
            device=mc.device,
            precision=mc.precision,
            workers=mc.workers,
            intra_op_threads=mc.intra_op_threads,
            inter_op_threads=mc.inter_op_threads,
            tensors=TensorNames(
                mc.input_tensor, mc.boxes_tensor, mc.scores_tensor, mc.classes_tensor, mc.num_tensor
            ),
            signature=mc.signature,
            split=mc.split,
            allow_memory_growth=mc.allow_memory_growth,
            allow_unsafe_ops=mc.allow_unsafe_ops,
            init_missing=mc.init_missing,
            cache_dir=Path(mc.cache_dir) if mc.cache_dir is not None else None,
        )

    def with_(self, **changes: Any) -> ModelOptions:
        """A copy with ``changes`` (field names as keywords)."""
        return replace(self, **changes)

    def sharing(self, workers: int) -> ModelOptions:
        """For ``workers`` threads sharing one model in this process: ``intra_op_threads`` 0
        becomes the cores shared among them.

        TensorFlow's own default (one thread per core in every concurrent ``Session.run``)
        oversubscribes the cores when several workers run at once: on 2 cores, 2 workers ran
        the sample video at 45 FPS with TF's default and at 90 FPS with one thread each.
        """
        threads = self.intra_op_threads
        if not threads and workers > 1:
            threads = max(1, (os.cpu_count() or 1) // workers)
        return replace(self, workers=workers, intra_op_threads=threads)

    def on_actor(self, cpus: float) -> ModelOptions:
        """For one Ray actor holding ``cpus`` reserved CPUs: one worker, and for
        ``intra_op_threads`` 0 one op thread per reserved CPU."""
        threads = self.intra_op_threads or max(1, int(cpus))
        return replace(self, workers=1, intra_op_threads=threads)

    def session_options(self) -> SessionOptions:
        """The TensorFlow ``Session`` options of these settings (device, threads, precision)."""
        precision = self.precision if self.precision in ("auto", "bf16", "fp32") else "auto"
        return SessionOptions(
            self.device,
            self.allow_memory_growth,
            self.intra_op_threads,
            self.inter_op_threads,
            precision,
        )

    def loader_kwargs(self) -> dict[str, Any]:
        """Keywords of :func:`~detector.model.backends.load_backend_model` besides the backend
        and the path."""
        return {
            "workers": self.workers,
            "split": self.split,
            "signature": self.signature,
            "tensors": self.tensors,
            "device": self.device,
            "allow_memory_growth": self.allow_memory_growth,
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "allow_unsafe_ops": self.allow_unsafe_ops,
            "precision": self.precision,
            "cache_dir": self.cache_dir,
            "init_missing": self.init_missing,
        }

    def describe(self) -> dict[str, Any]:
        """The options as JSON-ready values (paths as text), for ``run.json`` and the bench."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, TensorNames):
                value = dict(value.items())
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        return out

    @classmethod
    def from_description(cls, doc: dict[str, Any]) -> ModelOptions:
        """The options :meth:`describe` wrote (a bench worker gets them as JSON)."""
        values = dict(doc)
        for name in ("path", "labels", "cache_dir"):
            if values.get(name) is not None:
                values[name] = Path(values[name])
        values["tensors"] = TensorNames(**values.get("tensors", {}))
        return cls(**values)


def load_with(options: ModelOptions) -> Any:
    """Load the model ``options`` describe on their backend (a context manager: ``with``
    closes it): the app, the Ray actors, the public API and the service load it this way."""
    return load_backend_model(options.backend, options.path, **options.loader_kwargs())
