"""The one reader of TensorFlow model files: parse, check against the allowlist, import, restore.

Every caller — the app's loader, the toolkit, the bench, the TFLite parity check, explain —
reads GraphDef, MetaGraphDef and SavedModel bytes through this module, so a file is always
checked (:mod:`detector.model.safety`) before anything of it is imported, and a corrupt file
always gives the error family's message. A checkpoint's variables are restored from
``tf.train.load_checkpoint`` values fed to each variable's initializer
(:func:`detector.model.checkpoints.restore_variables`), never by running the ``.meta``'s own
``save/restore_all``.

A new model format: teach :func:`detector.model.formats.detect_format` to recognise it and
add its reader here.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import CheckpointError, ModelError
from detector.model.graph_info import NOT_OUTPUTS

log = logging.getLogger(__name__)

#: Makes a session for a ``tf.Graph`` (the app's carries device, threads and precision).
SessionFactory = Callable[[Any], Any]


def tf_module() -> Any:
    """TensorFlow, imported on first use (``import detector`` never imports it).

    Imported as the app does it: start-up chatter and the CUDA probe's lines go to the debug
    log, and TensorFlow's own Python warnings (deprecations of the ``compat.v1`` API) are
    kept out of the output.
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


def read_graph_def(
    path: str | Path, fmt: str = "frozen_pb", *, allow_unsafe_ops: bool = False
) -> Any:
    """Parse a binary (``frozen_pb``) or text (``pbtxt``) GraphDef and check its ops.

    Raises:
        ModelError: Unreadable, truncated or not a GraphDef.
        UnsafeGraphError: Ops outside the allowlist (unless ``allow_unsafe_ops``).
    """
    tf = tf_module()
    from detector.model.safety import check_graph_def

    path = Path(path)
    graph_def = tf.compat.v1.GraphDef()
    kind = "text" if fmt == "pbtxt" else "binary"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read graph '{path}': {exc.strerror or exc}") from exc
    try:
        if fmt == "pbtxt":
            from google.protobuf import text_format

            text_format.Parse(data.decode("utf-8"), graph_def)
        else:
            graph_def.ParseFromString(data)
    except Exception as exc:
        raise ModelError(
            f"cannot parse '{path}' as a {kind} GraphDef: {exc}",
            hint="is the file complete, and is it a TensorFlow graph?",
        ) from exc
    check_graph_def(graph_def, what=str(path), allow_unsafe_ops=allow_unsafe_ops)
    return graph_def


def read_meta_graph(path: str | Path, *, allow_unsafe_ops: bool = False) -> Any:
    """Parse a ``.meta`` MetaGraphDef and check its ops.

    Raises:
        CheckpointError: Unreadable, truncated or not a MetaGraphDef.
        UnsafeGraphError: Ops outside the allowlist (unless ``allow_unsafe_ops``).
    """
    tf = tf_module()
    from detector.model.safety import check_meta_graph

    path = Path(path)
    meta = tf.compat.v1.MetaGraphDef()
    try:
        meta.ParseFromString(path.read_bytes())
    except Exception as exc:
        raise CheckpointError(
            f"cannot parse '{path}' as a MetaGraphDef: {exc}", hint="is the file complete?"
        ) from exc
    check_meta_graph(meta, what=str(path), allow_unsafe_ops=allow_unsafe_ops)
    return meta


def read_saved_model(path: str | Path, *, allow_unsafe_ops: bool = False) -> Any:
    """Parse ``saved_model.pb`` once, check it, and return the SavedModel proto."""
    from detector.model.safety import check_saved_model

    return check_saved_model(Path(path), allow_unsafe_ops=allow_unsafe_ops)


def serving_meta_graph(saved: Any, path: str | Path) -> Any:
    """The SavedModel's ``serve`` MetaGraph (or its only one)."""
    metas = list(saved.meta_graphs)
    meta = next((m for m in metas if "serve" in m.meta_info_def.tags), metas[0] if metas else None)
    if meta is None:
        raise ModelError(
            f"SavedModel '{path}' holds no MetaGraph", hint="check that saved_model.pb is complete"
        )
    return meta


def import_graph_def(graph_def: Any, path: str | Path) -> Any:
    """A new ``tf.Graph`` holding ``graph_def`` (already checked by :func:`read_graph_def`)."""
    tf = tf_module()
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.compat.v1.import_graph_def(graph_def, name="")
        except Exception as exc:
            raise ModelError(
                f"cannot import graph '{path}': {exc}",
                hint="was it written by a newer TensorFlow or with custom ops?",
            ) from exc
    return graph


def import_meta_graph(meta: Any, path: str | Path) -> tuple[Any, list[Any], list[Any]]:
    """A new ``tf.Graph`` from a checked MetaGraphDef (devices cleared: a graph saved on a GPU
    machine must run here too); with its global and local variables."""
    tf = tf_module()
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        except Exception as exc:
            raise ModelError(
                f"cannot import graph '{path}': {exc}", hint="was it written by a newer TensorFlow?"
            ) from exc
        return graph, tf.compat.v1.global_variables(), tf.compat.v1.local_variables()


def restore_checkpoint(session: Any, variables: list[Any], local: list[Any], prefix: str) -> None:
    """Give ``variables`` their checkpoint values and initialise the local ones.

    The session is closed if restoring fails.
    """
    from detector.model.checkpoints import restore_variables

    try:
        restore_variables(session, variables, prefix)
        if local:
            session.run([v.initializer for v in local])
    except BaseException:
        session.close()
        raise
    log.debug("restored %d variables from %s", len(variables), prefix)


def load_saved_model_into(session: Any, meta: Any, path: str | Path) -> None:
    """Load a checked SavedModel's graph and variables into ``session`` (its graph).

    Restores the variables with the SavedModel's own saver, whose ops were allowlisted by
    :func:`read_saved_model`. The session is closed if loading fails.
    """
    tf = tf_module()
    try:
        with session.graph.as_default():
            tf.compat.v1.saved_model.loader.load(session, list(meta.meta_info_def.tags), str(path))
    except Exception as exc:
        session.close()
        raise ModelError(
            f"cannot load SavedModel '{path}': {exc}",
            hint="check that the folder is complete (saved_model.pb + variables/)",
        ) from exc


#: The TF Object Detection API outputs, used when a command is given no outputs.
OD_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})


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


def sink_outputs(graph_def: Any) -> list[str]:
    """Node names nothing reads: a graph's likely outputs, detection-like names first."""
    consumed = {node_name(i) for n in graph_def.node for i in n.input}
    names = [
        n.name
        for n in graph_def.node
        if n.name not in consumed
        and n.op not in NOT_OUTPUTS
        and not n.name.startswith(("save/", "init", "report_uninitialized", "gradients/"))
        and not n.op.startswith(
            ("Save", "Restore", "Apply", "ResourceApply", "Assign", "Scatter", "ResourceScatter")
        )
    ]
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
                hint=hints
                or f"pass --outputs with node names from 'python main.py model inspect {what}'",
            )
        return [node_name(g) for g in given]
    if all(o in names for o in OD_OUTPUTS):
        return list(OD_OUTPUTS)
    sinks = sink_outputs(graph_def)
    if not sinks:
        raise ModelError(
            f"graph '{what}' has no output candidates", hint="pass --outputs NODE[,NODE...]"
        )
    log.info(
        "no outputs given and no TF OD API names in %s; using the graph's sinks %s", what, sinks
    )
    return sinks


def _load_checkpoint(
    path: Path, outputs: Sequence[str] | None, allow_unsafe_ops: bool, new_session: SessionFactory
) -> LoadedGraph:
    from detector.model.checkpoints import resolve_checkpoint

    ref = resolve_checkpoint(path)
    if ref.meta is None:
        raise CheckpointError(
            f"checkpoint '{ref.prefix}' has no .meta graph next to it",
            hint="this command needs the graph: keep model.ckpt-N.meta with the checkpoint",
        )
    meta = read_meta_graph(ref.meta, allow_unsafe_ops=allow_unsafe_ops)
    graph, variables, local = import_meta_graph(meta, ref.meta)
    if not outputs and "outputs" in meta.collection_def:  # written by unfreeze / convert
        outputs = [node_name(t) for t in meta.collection_def["outputs"].node_list.value]
    outs = choose_outputs(meta.graph_def, outputs, str(ref.meta))
    session = new_session(graph)
    restore_checkpoint(session, variables, local, str(ref.prefix))
    return LoadedGraph(
        graph,
        session,
        "checkpoint",
        {p: f"{p}:0" for p in placeholders(meta.graph_def)},
        {o: tensor_name(o) for o in outs},
        {v.op.name: v for v in variables},
        ref.step,
    )


def _load_saved_model(
    path: Path, signature: str, allow_unsafe_ops: bool, new_session: SessionFactory
) -> LoadedGraph:
    tf = tf_module()
    meta = serving_meta_graph(read_saved_model(path, allow_unsafe_ops=allow_unsafe_ops), path)
    if signature not in meta.signature_def:
        raise ModelError(
            f"SavedModel '{path}' has no signature {signature!r}; it has "
            f"{sorted(meta.signature_def) or 'none'}",
            hint="set model.signature (--signature for model commands) to one of them",
        )
    sig = meta.signature_def[signature]
    session = new_session(tf.Graph())
    load_saved_model_into(session, meta, path)
    with session.graph.as_default():
        variables = tf.compat.v1.global_variables()
    return LoadedGraph(
        session.graph,
        session,
        "saved_model",
        {k: v.name for k, v in sorted(sig.inputs.items())},
        {k: v.name for k, v in sorted(sig.outputs.items())},
        {v.op.name: v for v in variables},
    )


def load_graph(
    path: str | Path,
    *,
    outputs: Sequence[str] | None = None,
    signature: str = "serving_default",
    allow_unsafe_ops: bool = False,
    new_session: SessionFactory | None = None,
) -> LoadedGraph:
    """Load a frozen graph, checkpoint or SavedModel into a session, checked first.

    Args:
        path: Any model path :func:`detect_format` recognises, except ``.tflite``.
        outputs: Output node names (frozen graphs and checkpoints); default: the TF OD API
            names when present, else the nodes nothing reads.
        signature: The SavedModel signature whose inputs and outputs are used.
        allow_unsafe_ops: Accept ops outside the allowlist (trusted files only).
        new_session: Makes the session for a graph (device, threads, precision); default:
            a plain ``tf.compat.v1.Session``.

    Raises:
        ModelError, CheckpointError, UnsafeGraphError: What is wrong and what to do.
    """
    from detector.model.formats import detect_format

    tf = tf_module()
    if new_session is None:

        def new_session(graph: Any) -> Any:
            return tf.compat.v1.Session(graph=graph)

    path = Path(path)
    fmt = detect_format(path)
    if fmt in ("frozen_pb", "pbtxt"):
        graph_def = read_graph_def(path, fmt, allow_unsafe_ops=allow_unsafe_ops)
        outs = choose_outputs(graph_def, outputs, str(path))
        graph = import_graph_def(graph_def, path)
        return LoadedGraph(
            graph,
            new_session(graph),
            fmt,
            {p: f"{p}:0" for p in placeholders(graph_def)},
            {o: tensor_name(o) for o in outs},
        )
    if fmt in ("checkpoint", "meta"):
        return _load_checkpoint(path, outputs, allow_unsafe_ops, new_session)
    if fmt == "saved_model":
        return _load_saved_model(path, signature, allow_unsafe_ops, new_session)
    raise ModelError(
        f"'{path}' is a TFLite model; this command reads TensorFlow graphs",
        hint=f"convert it first: python main.py model convert '{path}' -o model.pb",
    )
