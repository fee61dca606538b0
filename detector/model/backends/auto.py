"""``backend: auto``: pick the fastest backend that gives the graph's own detections, and say why.

On a GPU (or with ``model.device: gpu``) TensorFlow runs the graph, as it always has. On the
CPU the ``openvino`` backend is taken when its extra is installed, the graph converts, its
post-processing runs in NumPy, and the converted model passes the parity gate against the TF
graph (:mod:`detector.model.backends.parity`) on first use; the verdict is cached beside the
IR, so later runs decide from files alone, without TensorFlow. The precision is int8 when a
quantized model made with ``model quantize`` passed its own gate, else bf16 where the CPU has
it natively, else fp32. Anything else falls back to ``tf`` with a one-line reason.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from detector.errors import DetectorError
from detector.model.backends.extra import openvino_available
from detector.model.backends.ircache import (
    cache_root,
    ir_path,
    passing_int8_ir,
    read_json,
    write_json,
)
from detector.model.backends.openvino import (
    cached_graph,
    check_images,
    converted_graph,
    load_openvino_model,
    resolve_precision,
)
from detector.model.backends.parity import compare_models
from detector.model.formats import detect_format
from detector.model.loader import TensorNames, load_model

log = logging.getLogger(__name__)

#: Device files present when an NVIDIA (or WSL) GPU is usable; no TensorFlow needed to look.
GPU_DEVICE_FILES = ("/dev/nvidia0", "/dev/dxg")


@dataclass(frozen=True)
class BackendChoice:
    """What ``auto`` chose: the backend, its precision, and why (for the log and run.json)."""

    backend: str
    precision: str
    reason: str
    requested: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gpu_present() -> bool:
    """True when a GPU device file is there (a GPU TensorFlow could use)."""
    return any(os.path.exists(p) for p in GPU_DEVICE_FILES)


def choose_backend(
    path: str | Path,
    *,
    precision: str = "auto",
    device: str = "auto",
    split: bool = False,
    tensors: Any = None,
    allow_unsafe_ops: bool = False,
    cache_dir: str | Path | None = None,
) -> BackendChoice:
    """Decide ``tf`` or ``openvino`` (and the precision) for a model; never raises for a graph.

    Converting and gating happen here on first use (seconds; TensorFlow is loaded then);
    afterwards the cached verdict decides.
    """
    tf_precision = precision if precision in ("auto", "bf16", "fp32") else "auto"

    def tf(reason: str) -> BackendChoice:
        return BackendChoice("tf", tf_precision, reason)

    if device == "gpu" or (device == "auto" and gpu_present()):
        return tf("a GPU is there: TensorFlow runs the graph on it")
    if split:
        return tf("model.split runs the two halves in TensorFlow")
    if not openvino_available():
        return tf("the openvino extra is not installed")

    try:
        fmt = detect_format(path)
    except DetectorError as exc:
        return tf(f"cannot read the model: {exc}")
    if fmt not in ("frozen_pb", "pbtxt"):
        return tf(f"the openvino backend runs frozen graphs; this is a {fmt}")
    try:
        return _openvino_choice(path, precision, tensors, allow_unsafe_ops, cache_dir)
    except DetectorError as exc:
        return tf(f"the openvino backend cannot take this graph: {_one_line(str(exc))}")


def _openvino_choice(
    path: str | Path,
    precision: str,
    tensors: Any,
    allow_unsafe_ops: bool,
    cache_dir: str | Path | None,
) -> BackendChoice:
    graph, root, _, _ = converted_graph(
        path, tensors, allow_unsafe_ops=allow_unsafe_ops, cache_dir=cache_dir
    )
    if not graph.post_file:
        return BackendChoice(
            "tf",
            "auto",
            f"the post-processing needs TensorFlow: {_one_line(graph.post_reason or '?')}",
        )
    chosen = precision
    int8_note = ""
    if precision in ("auto", "int8"):
        try:
            passing_int8_ir(root, graph)
            chosen = "int8"
        except DetectorError:
            if precision == "int8":
                raise
            chosen = resolve_precision("auto")
            int8_note = "; no int8 model yet (python main.py model quantize)"
    if chosen == "int8":
        return BackendChoice("openvino", "int8", "a quantized model passed its parity gate")
    verdict = gate_verdict(
        graph,
        root,
        chosen,
        verdict_path(root, graph, chosen),
        tensors=tensors,
        allow_unsafe_ops=allow_unsafe_ops,
    )
    if not verdict.get("passed"):
        return BackendChoice(
            "tf", "auto", f"openvino {chosen} fails the parity gate: {verdict.get('summary')}"
        )
    return BackendChoice(
        "openvino",
        chosen,
        f"CPU: openvino {chosen} passed its parity gate ({verdict.get('summary')}){int8_note}",
    )


def gate_verdict(
    graph: Any,
    root: Path,
    precision: str,
    verdict_path: Path,
    *,
    tensors: Any = None,
    allow_unsafe_ops: bool = False,
) -> dict[str, Any]:
    """The cached parity verdict of the converted graph at ``precision``; run once if missing."""

    cached = read_json(verdict_path)
    if cached is not None and cached.get("graph_sha256") == graph.sha256:
        return cached

    images = check_images()
    log.info(
        "backend auto: checking openvino %s against the TF graph on %d images",
        precision,
        len(images),
    )
    report = compare_with_tf(
        graph.path,
        images,
        precision=precision,
        tensors=tensors,
        allow_unsafe_ops=allow_unsafe_ops,
        cache_dir=root,
    )
    doc = {
        "graph_sha256": graph.sha256,
        "precision": precision,
        "passed": report.passed,
        "summary": f"{report.matched}/{max(report.reference, report.candidate)} detections "
        f"matched on {report.images} images, gate {report.min_ratio:.0%}",
        "parity": report.to_dict(),
    }
    write_json(verdict_path, doc)
    return doc


def compare_with_tf(
    path: str | Path,
    images_rgb: Any,
    *,
    precision: str,
    tensors: Any = None,
    allow_unsafe_ops: bool = False,
    cache_dir: str | Path | None = None,
    ir: str | Path | None = None,
    **gate: Any,
) -> Any:
    """The parity report of the openvino model (``ir``: a candidate IR) against the TF graph.

    ``gate``: ``threshold``, ``min_iou``, ``min_ratio`` of
    :func:`detector.model.backends.parity.compare_models`.
    """
    tensors = tensors if tensors is not None else TensorNames()
    with (
        load_model(
            path,
            tensors=tensors,
            device="cpu",
            precision="fp32",
            allow_unsafe_ops=allow_unsafe_ops,
        ) as reference,
        load_openvino_model(
            path,
            tensors=tensors,
            precision=precision,
            allow_unsafe_ops=allow_unsafe_ops,
            cache_dir=cache_dir,
            ir=ir,
        ) as candidate,
    ):
        return compare_models(reference, candidate, images_rgb, **gate)


def is_decided(
    path: str | Path, *, tensors: Any = None, cache_dir: str | Path | None = None
) -> bool:
    """True when ``auto`` can decide for this frozen graph from the cache alone (no TF)."""

    root = cache_root(Path(path), cache_dir)
    graph, _ = cached_graph(Path(path), tensors, root)
    if graph is None:
        return False
    return not graph.post_file or verdict_path(root, graph, resolve_precision("auto")).is_file()


def verdict_path(root: Path, graph: Any, precision: str) -> Path:
    """Where the parity verdict of a converted graph at ``precision`` is cached."""

    return ir_path(root, graph, f"gate-{precision}").with_suffix(".json")


def _one_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]
