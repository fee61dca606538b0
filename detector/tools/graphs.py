"""Load any model file into a TF1 session (checked first), and run it on a probe input.

Every toolkit command goes through :func:`load_graph`: the format is found by structure,
the graph is checked against the op allowlist before it is imported, and a checkpoint's
variables are restored from ``tf.train.load_checkpoint`` values fed to each variable's
initializer, never by running the ``.meta``'s own ``save/restore_all``. A SavedModel's
variables are restored by its restore function after :func:`check_saved_model` has checked
that it only reads checkpoints and assigns variables.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import CheckpointError, ModelError

log = logging.getLogger(__name__)

#: The TF Object Detection API outputs, used when a command is given no outputs.
OD_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
_NOT_OUTPUTS = frozenset({
    "Const", "NoOp", "Assign", "AssignVariableOp", "AssignAdd", "AssignSub", "VarHandleOp",
    "VariableV2", "Variable", "VarIsInitializedOp", "IsVariableInitialized", "SaveV2", "RestoreV2",
    "MergeV2Checkpoints", "Placeholder", "PlaceholderWithDefault", "ApplyGradientDescent",
    "ResourceApplyGradientDescent", "Assert",
})
VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})


def tf_module() -> Any:
    """TensorFlow, imported on first use (``import detector`` never imports it).

    Imported as the app does it: start-up chatter and the CUDA probe's lines go to the debug
    log, and TensorFlow's own Python warnings (deprecations of the ``compat.v1`` API this
    toolkit is built on) are kept out of the output.
    """
    from detector.model.session import import_tf, visible_gpus

    tf = import_tf()
    visible_gpus()
    return tf


def node_name(name: str) -> str:
    """``'^a/b:1'`` → ``'a/b'``."""
    return name.lstrip("^").split(":")[0]


def tensor_name(name: str) -> str:
    """``'a/b'`` → ``'a/b:0'``; names with an output index are kept."""
    return name if ":" in name else f"{name}:0"


@dataclass
class LoadedGraph:
    """A graph in a live session, with its inputs and outputs by logical name.

    Attributes:
        graph: The ``tf.Graph``.
        session: A ``tf.compat.v1.Session`` with every variable restored.
        fmt: The format it was loaded from (see :func:`detect_format`).
        inputs: Logical name (node name, or SavedModel signature key) → tensor name.
        outputs: Logical name → tensor name.
        variables: Variable op name → the op's variable object, if any.
        step: The checkpoint's global step, if known.
    """

    graph: Any
    session: Any
    fmt: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    variables: dict[str, Any] = field(default_factory=dict)
    step: int | None = None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> LoadedGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run every output, feeding inputs by logical name."""
        tensors = {k: self.graph.get_tensor_by_name(v) for k, v in self.outputs.items()}
        feeds = {self.graph.get_tensor_by_name(self.inputs[k]): v for k, v in feed.items()}
        return dict(zip(tensors, self.session.run(list(tensors.values()), feeds), strict=True))


def read_graph_def(path: Path, fmt: str, *, allow_unsafe: bool) -> Any:
    """Parse a binary or text GraphDef and check its ops."""
    tf = tf_module()
    from detector.model.safety import check_graph_def

    graph_def = tf.compat.v1.GraphDef()
    try:
        if fmt == "pbtxt":
            from google.protobuf import text_format

            text_format.Parse(path.read_text(encoding="utf-8"), graph_def)
        else:
            graph_def.ParseFromString(path.read_bytes())
    except Exception as exc:
        raise ModelError(f"cannot parse '{path}' as a GraphDef: {exc}",
                         hint="is the file complete?") from exc
    check_graph_def(graph_def, what=str(path), allow_unsafe=allow_unsafe)
    return graph_def


def read_meta_graph(path: Path, *, allow_unsafe: bool) -> Any:
    """Parse a ``.meta`` MetaGraphDef and check its ops."""
    tf = tf_module()
    from detector.model.safety import check_meta_graph

    meta = tf.compat.v1.MetaGraphDef()
    try:
        meta.ParseFromString(path.read_bytes())
    except Exception as exc:
        raise CheckpointError(f"cannot parse '{path}' as a MetaGraphDef: {exc}",
                              hint="is the file complete?") from exc
    check_meta_graph(meta, what=str(path), allow_unsafe=allow_unsafe)
    return meta


def read_saved_model(path: Path, *, allow_unsafe: bool) -> Any:
    """Parse ``saved_model.pb`` once, check it, and return the SavedModel proto."""
    from detector.model.safety import check_saved_model

    return check_saved_model(path, allow_unsafe=allow_unsafe)


def sink_outputs(graph_def: Any) -> list[str]:
    """Node names nothing reads: a graph's likely outputs, detection-like names first."""
    consumed = {node_name(i) for n in graph_def.node for i in n.input}
    names = [n.name for n in graph_def.node
             if n.name not in consumed and n.op not in _NOT_OUTPUTS
             and not n.name.startswith(("save/", "init", "report_uninitialized", "gradients/"))
             and not n.op.startswith(("Save", "Restore", "Apply", "ResourceApply", "Assign",
                                      "Scatter", "ResourceScatter"))]
    return sorted(names, key=lambda n: ("detection" not in n and "num_" not in n, n))


def placeholders(graph_def: Any) -> list[str]:
    """Node names of the graph's ``Placeholder`` nodes (its inputs)."""
    return [n.name for n in graph_def.node if n.op in ("Placeholder", "PlaceholderV2")]


def choose_outputs(graph_def: Any, given: Sequence[str] | None, what: str) -> list[str]:
    """The output node names: those given (checked), else the OD API names, else the sinks."""
    names = {n.name for n in graph_def.node}
    if given:
        missing = [g for g in given if node_name(g) not in names]
        if missing:
            near = {m: difflib.get_close_matches(node_name(m), names, n=3) for m in missing}
            hints = "; ".join(f"'{m}': did you mean {near[m]}" for m in missing if near[m])
            raise ModelError(
                f"graph '{what}' has no node {', '.join(repr(m) for m in missing)}; candidate "
                f"outputs: {sink_outputs(graph_def)[:10]}",
                hint=hints or "pass --outputs with node names from 'python main.py model "
                f"inspect {what}'")
        return [node_name(g) for g in given]
    if all(o in names for o in OD_OUTPUTS):
        return list(OD_OUTPUTS)
    sinks = sink_outputs(graph_def)
    if not sinks:
        raise ModelError(f"graph '{what}' has no output candidates",
                         hint="pass --outputs NODE[,NODE...]")
    log.info("no outputs given and no TF OD API names in %s; using the graph's sinks %s",
             what, sinks)
    return sinks


def _load_checkpoint(path: Path, outputs: Sequence[str] | None, allow_unsafe: bool
                     ) -> LoadedGraph:
    tf = tf_module()
    from detector.model.checkpoints import resolve_checkpoint, restore_variables

    ref = resolve_checkpoint(path)
    if ref.meta is None:
        raise CheckpointError(f"checkpoint '{ref.prefix}' has no .meta graph next to it",
                              hint="this command needs the graph: keep model.ckpt-N.meta "
                              "with the checkpoint")
    meta = read_meta_graph(ref.meta, allow_unsafe=allow_unsafe)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        variables = tf.compat.v1.global_variables()
        local = tf.compat.v1.local_variables()
    if not outputs and "outputs" in meta.collection_def:  # written by unfreeze / convert
        outputs = [node_name(t) for t in meta.collection_def["outputs"].node_list.value]
    outs = choose_outputs(meta.graph_def, outputs, str(ref.meta))
    session = tf.compat.v1.Session(graph=graph)
    try:
        restore_variables(session, variables, str(ref.prefix))
        if local:
            session.run([v.initializer for v in local])
    except BaseException:
        session.close()
        raise
    return LoadedGraph(graph, session, "checkpoint",
                       {p: f"{p}:0" for p in placeholders(meta.graph_def)},
                       {o: tensor_name(o) for o in outs},
                       {v.op.name: v for v in variables}, ref.step)


def _load_saved_model(path: Path, signature: str, allow_unsafe: bool) -> LoadedGraph:
    tf = tf_module()
    saved = read_saved_model(path, allow_unsafe=allow_unsafe)
    metas = list(saved.meta_graphs)
    meta = next((m for m in metas if "serve" in m.meta_info_def.tags), metas[0] if metas else None)
    if meta is None:
        raise ModelError(f"SavedModel '{path}' holds no MetaGraph")
    if signature not in meta.signature_def:
        raise ModelError(f"SavedModel '{path}' has no signature {signature!r}; it has "
                         f"{sorted(meta.signature_def) or 'none'}",
                         hint="pass --signature with one of them")
    sig = meta.signature_def[signature]
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default():
            tf.compat.v1.saved_model.loader.load(session, list(meta.meta_info_def.tags),
                                                 str(path))
            variables = tf.compat.v1.global_variables()
    except Exception as exc:
        session.close()
        raise ModelError(f"cannot load SavedModel '{path}': {exc}",
                         hint="check that the folder is complete (saved_model.pb + "
                         "variables/)") from exc
    return LoadedGraph(graph, session, "saved_model",
                       {k: v.name for k, v in sorted(sig.inputs.items())},
                       {k: v.name for k, v in sorted(sig.outputs.items())},
                       {v.op.name: v for v in variables})


def load_graph(path: str | Path, *, outputs: Sequence[str] | None = None,
               signature: str = "serving_default", allow_unsafe: bool = False) -> LoadedGraph:
    """Load a frozen graph, checkpoint or SavedModel into a session, checked first.

    Args:
        path: Any model path :func:`detect_format` recognises, except ``.tflite``.
        outputs: Output node names (frozen graphs and checkpoints); default: the TF OD API
            names when present, else the nodes nothing reads.
        signature: The SavedModel signature whose inputs and outputs are used.
        allow_unsafe: Accept ops outside the allowlist (trusted files only).

    Raises:
        ModelError, CheckpointError, UnsafeGraphError: What is wrong and what to do.
    """
    from detector.model.formats import detect_format

    tf = tf_module()
    path = Path(path)
    fmt = detect_format(path)
    if fmt in ("frozen_pb", "pbtxt"):
        graph_def = read_graph_def(path, fmt, allow_unsafe=allow_unsafe)
        outs = choose_outputs(graph_def, outputs, str(path))
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        return LoadedGraph(graph, tf.compat.v1.Session(graph=graph), fmt,
                           {p: f"{p}:0" for p in placeholders(graph_def)},
                           {o: tensor_name(o) for o in outs})
    if fmt in ("checkpoint", "meta"):
        return _load_checkpoint(path, outputs, allow_unsafe)
    if fmt == "saved_model":
        return _load_saved_model(path, signature, allow_unsafe)
    raise ModelError(f"'{path}' is a TFLite model; this command reads TensorFlow graphs",
                     hint=f"convert it first: python main.py model convert '{path}' -o model.pb")


def probe_feed(loaded: LoadedGraph, seed: int = 0) -> dict[str, np.ndarray]:
    """A deterministic input for every placeholder: unknown batch 1, other unknown dims 32.

    Raises:
        ModelError: An input's dtype cannot be probed (strings, resources).
    """
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for key, name in loaded.inputs.items():
        t = loaded.graph.get_tensor_by_name(name)
        dims = t.shape.as_list() if t.shape.rank is not None else [1]
        shape = [d if d is not None else (1 if i == 0 else 32) for i, d in enumerate(dims)]
        dtype = t.dtype.as_numpy_dtype
        if t.dtype.is_floating:
            feed[key] = rng.uniform(0.0, 1.0, shape).astype(dtype)
        elif t.dtype.is_integer:
            high = 256 if t.dtype.name == "uint8" else 4
            feed[key] = rng.integers(0, high, shape).astype(dtype)
        elif t.dtype.is_bool:
            feed[key] = rng.integers(0, 2, shape).astype(bool)
        else:
            raise ModelError(f"cannot make a probe input for '{name}' of type {t.dtype.name}",
                             hint="pass --no-verify to skip the output comparison")
    return feed


def compare_outputs(expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray],
                    what: str, *, rtol: float = 1e-5, atol: float = 1e-5) -> float:
    """Raise unless every output matches; return the largest absolute difference."""
    worst = 0.0
    if set(expected) != set(got):
        raise ModelError(f"{what}: outputs differ in names: {sorted(expected)} vs {sorted(got)}")
    for key in expected:
        a, b = np.asarray(expected[key]), np.asarray(got[key])
        if a.shape != b.shape:
            raise ModelError(f"{what}: output '{key}' has shape {b.shape}, expected {a.shape}")
        if a.dtype.kind in "fc":
            diff = float(np.max(np.abs(a - b))) if a.size else 0.0
            if not np.allclose(a, b, rtol=rtol, atol=atol):
                raise ModelError(f"{what}: output '{key}' differs by up to {diff:g}")
            worst = max(worst, diff)
        elif not np.array_equal(a, b):
            raise ModelError(f"{what}: output '{key}' differs")
    return worst
