"""The one reader of TensorFlow model files: parse, check against the allowlist, import, restore.

Every caller — the app's loader, the toolkit, the bench, the TFLite parity check, explain —
reads GraphDef, MetaGraphDef and SavedModel bytes through this module, so a file is always
checked (:mod:`detector.model.safety`) before anything of it is imported, and a corrupt file
always gives the error family's message. A checkpoint's variables are restored from
``tf.train.load_checkpoint`` values fed to each variable's initializer
(:func:`detector.model.restore.restore_variables`), never by running the ``.meta``'s own
``save/restore_all``.

A new model format: teach :func:`detector.model.formats.detect_format` to recognise it and
add its reader here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import CheckpointError, ModelError
from detector.model.checkpoints import resolve_checkpoint
from detector.model.formats import detect_format, detect_graph_kind, is_text_meta
from detector.model.graph_variables import meta_from_graph_def
from detector.model.objckpt import no_graph_error
from detector.model.outputs import (
    choose_outputs,
    collection_outputs,
    trainable_names,
)
from detector.model.restore import restore_variables
from detector.model.safety import check_graph_def, check_meta_graph, check_saved_model
from detector.model.saved_model_restore import frozen_signature, uninitialised
from detector.model.session import import_tf, visible_gpus

log = logging.getLogger(__name__)

#: Makes a session for a ``tf.Graph`` (the app's carries device, threads and precision).
SessionFactory = Callable[[Any], Any]


def tf_module() -> Any:
    """TensorFlow, imported on first use (``import detector`` never imports it).

    Imported as the app does it: start-up chatter and the CUDA probe's lines go to the debug
    log, and TensorFlow's own Python warnings (deprecations of the ``compat.v1`` API) are
    kept out of the output.
    """

    tf = import_tf()
    visible_gpus()
    return tf


def node_name(name: str) -> str:
    """``'^a/b:1'`` → ``'a/b'``."""
    return name.lstrip("^").split(":")[0]


def tensor_name(name: str) -> str:
    """``'a/b'`` → ``'a/b:0'``; names with an output index are kept."""
    return name if ":" in name else f"{name}:0"


def parse_graph_def(path: str | Path, fmt: str = "frozen_pb") -> Any:
    """Parse a binary (``frozen_pb``) or text (``pbtxt``) GraphDef; nothing is checked or run.

    Raises:
        ModelError: Unreadable, truncated or not a GraphDef.
    """
    tf = tf_module()
    path = Path(path)
    graph_def = tf.compat.v1.GraphDef()
    kind = "text" if fmt == "pbtxt" else "binary"
    data = _read(path, "graph")
    try:
        if fmt == "pbtxt":
            from google.protobuf import text_format

            text_format.Parse(data.decode("utf-8"), graph_def)
        else:
            graph_def.ParseFromString(data)
    except Exception as exc:
        raise ModelError(
            f"cannot parse '{path}' as a {kind} GraphDef ({len(data)} bytes): {exc}",
            hint="the file is truncated or not a TensorFlow graph: copy or download it again",
        ) from exc
    return graph_def


def parse_meta_graph(path: str | Path) -> Any:
    """Parse a binary or text (``as_text=True``) ``.meta`` MetaGraphDef; nothing is checked.

    Raises:
        CheckpointError: Unreadable, truncated or not a MetaGraphDef.
    """

    tf = tf_module()
    path = Path(path)
    meta = tf.compat.v1.MetaGraphDef()
    data = _read(path, "graph")
    text = is_text_meta(data)
    try:
        if text:
            from google.protobuf import text_format

            text_format.Parse(data.decode("utf-8"), meta)
        else:
            meta.ParseFromString(data)
    except Exception as exc:
        raise CheckpointError(
            f"cannot parse '{path}' as a {'text' if text else 'binary'} MetaGraphDef "
            f"({len(data)} bytes): {exc}",
            hint="the file is truncated or not a .meta: copy it again from where it was saved",
        ) from exc
    return meta


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {what} '{path}': {exc.strerror or exc}") from exc


def read_graph_def(
    path: str | Path, fmt: str = "frozen_pb", *, allow_unsafe_ops: bool = False
) -> Any:
    """Parse a binary (``frozen_pb``) or text (``pbtxt``) GraphDef and check its ops.

    Raises:
        ModelError: Unreadable, truncated or not a GraphDef.
        UnsafeGraphError: Ops outside the allowlist (unless ``allow_unsafe_ops``).
    """

    graph_def = parse_graph_def(path, fmt)
    check_graph_def(graph_def, what=str(path), allow_unsafe_ops=allow_unsafe_ops)
    return graph_def


def read_meta_graph(path: str | Path, *, allow_unsafe_ops: bool = False) -> Any:
    """Parse a ``.meta`` MetaGraphDef (binary or text) and check its ops.

    Raises:
        CheckpointError: Unreadable, truncated or not a MetaGraphDef.
        UnsafeGraphError: Ops outside the allowlist (unless ``allow_unsafe_ops``).
    """

    meta = parse_meta_graph(path)
    check_meta_graph(meta, what=str(path), allow_unsafe_ops=allow_unsafe_ops)
    return meta


def read_saved_model(path: str | Path, *, allow_unsafe_ops: bool = False) -> Any:
    """Parse ``saved_model.pb`` once, check it, and return the SavedModel proto."""

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


def restore_checkpoint(
    session: Any,
    variables: list[Any],
    local: list[Any],
    prefix: str,
    *,
    init_missing: bool = False,
) -> list[str]:
    """Give ``variables`` their checkpoint values and initialise the local ones.

    Args:
        init_missing: Initialise variables the checkpoint lacks instead of failing.

    Returns:
        The variables initialised rather than restored.

    The session is closed if restoring fails.
    """

    try:
        missing = restore_variables(session, variables, prefix, init_missing=init_missing)
        if local:
            session.run([v.initializer for v in local])
    except BaseException:
        session.close()
        raise
    log.debug("restored %d variables from %s", len(variables) - len(missing), prefix)
    return missing


def load_saved_model_into(session: Any, meta: Any, path: str | Path) -> list[str]:
    """Load a checked SavedModel's graph and variables into ``session`` (its graph).

    Restores the variables with the SavedModel's own saver, whose ops were allowlisted by
    :func:`read_saved_model`. The session is closed if loading fails.

    Returns:
        The variables the signatures read that the loader left uninitialised (a Keras 3
        model written by ``tf.saved_model.save``); see :mod:`.saved_model_restore`.
    """

    tf = tf_module()
    try:
        with session.graph.as_default():
            tf.compat.v1.saved_model.loader.load(session, list(meta.meta_info_def.tags), str(path))
        return uninitialised(session, meta)
    except Exception as exc:
        session.close()
        raise ModelError(
            f"cannot load SavedModel '{path}': {str(exc).strip().splitlines()[0]}",
            hint="check that the folder is complete (saved_model.pb + variables/)",
        ) from exc


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
        initialised: Variables given their initial values because the checkpoint lacks
            them (``init_missing``), not restored.
    """

    graph: Any
    session: Any
    fmt: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    variables: dict[str, Any] = field(default_factory=dict)
    step: int | None = None
    initialised: list[str] = field(default_factory=list)

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


def placeholders(graph_def: Any) -> list[str]:
    """Node names of the graph's ``Placeholder`` nodes (its inputs)."""
    return [n.name for n in graph_def.node if n.op in ("Placeholder", "PlaceholderV2")]


def _load_checkpoint(
    path: Path,
    outputs: Sequence[str] | None,
    allow_unsafe_ops: bool,
    new_session: SessionFactory,
    init_missing: bool = False,
    graph: Path | None = None,
) -> LoadedGraph:
    ref = resolve_checkpoint(path)
    meta_path = graph or ref.meta
    if meta_path is None:
        raise no_graph_error(ref.prefix)

    if graph is not None and detect_graph_kind(graph) != "meta":
        meta = meta_from_graph_def(
            read_graph_def(graph, detect_graph_kind(graph), allow_unsafe_ops=allow_unsafe_ops)
        )
    else:
        meta = read_meta_graph(meta_path, allow_unsafe_ops=allow_unsafe_ops)
    ref_meta = meta_path
    tf_graph, variables, local = import_meta_graph(meta, ref_meta)
    outputs = outputs or collection_outputs(meta)  # unfreeze / convert / training code
    outs = choose_outputs(meta.graph_def, outputs, str(ref_meta), trainable_names(meta))
    session = new_session(tf_graph)
    missing = restore_checkpoint(
        session, variables, local, str(ref.prefix), init_missing=init_missing
    )
    return LoadedGraph(
        tf_graph,
        session,
        "checkpoint",
        {p: f"{p}:0" for p in placeholders(meta.graph_def)},
        {o: tensor_name(o) for o in outs},
        {v.op.name: v for v in variables},
        ref.step,
        missing,
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
    left = load_saved_model_into(session, meta, path)
    if left:
        session.close()
        return _load_through_objects(path, signature, new_session, left)
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


def _load_through_objects(
    path: Path, signature: str, new_session: SessionFactory, left: list[str]
) -> LoadedGraph:
    """A SavedModel the graph loader cannot restore, frozen through ``tf.saved_model.load``."""

    graph_def, inputs, outputs = frozen_signature(path, signature, left)
    log.info(
        "%s: %d variable(s) restore only through TF2's object loader (%s); its signature "
        "%r is frozen through it",
        path,
        len(left),
        ", ".join(left[:4]),
        signature,
    )
    graph = import_graph_def(graph_def, path)
    return LoadedGraph(graph, new_session(graph), "saved_model", inputs, outputs)


def _plain_session(graph: Any) -> Any:
    """A ``tf.compat.v1.Session`` on ``graph`` with TensorFlow's defaults."""
    return tf_module().compat.v1.Session(graph=graph)


def _load_frozen(
    path: Path,
    fmt: str,
    outputs: Sequence[str] | None,
    allow_unsafe_ops: bool,
    new_session: SessionFactory,
) -> LoadedGraph:
    """A frozen GraphDef (binary or text) in a session; refused when variables are left."""
    graph_def = read_graph_def(path, fmt, allow_unsafe_ops=allow_unsafe_ops)
    unfrozen = [n.name for n in graph_def.node if n.op in VARIABLE_OPS]
    if unfrozen:
        shown = ", ".join(unfrozen[:8]) + (" ..." if len(unfrozen) > 8 else "")
        raise ModelError(
            f"'{path}' is not frozen: it still holds {len(unfrozen)} variable(s) "
            f"({shown}) whose values are not in the file",
            hint="freeze it with the checkpoint its variables were saved to: python "
            f"main.py model freeze --graph '{path}' --checkpoint PREFIX -o frozen.pb",
        )
    outs = choose_outputs(graph_def, outputs, str(path))
    graph = import_graph_def(graph_def, path)
    return LoadedGraph(
        graph,
        new_session(graph),
        fmt,
        {p: f"{p}:0" for p in placeholders(graph_def)},
        {o: tensor_name(o) for o in outs},
    )


def load_graph(
    path: str | Path,
    *,
    outputs: Sequence[str] | None = None,
    signature: str = "serving_default",
    allow_unsafe_ops: bool = False,
    new_session: SessionFactory | None = None,
    init_missing: bool = False,
    graph: str | Path | None = None,
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
        init_missing: (Checkpoints) variables the checkpoint lacks take their initial
            values (listed in ``LoadedGraph.initialised``) instead of failing.
        graph: (Checkpoints) the graph to restore into instead of the ``.meta``: a
            ``tf.io.write_graph`` GraphDef (``.pbtxt``/``.pb``) holding the variables.

    Raises:
        ModelError, CheckpointError, UnsafeGraphError: What is wrong and what to do.
    """

    tf_module()  # imported first, as the app does it (its start-up chatter kept out)
    new_session = new_session or _plain_session
    path = Path(path)
    fmt = detect_format(path)
    if fmt in ("frozen_pb", "pbtxt"):
        return _load_frozen(path, fmt, outputs, allow_unsafe_ops, new_session)
    if graph is not None and fmt != "checkpoint":
        raise ModelError(
            f"a graph (--graph) goes with a checkpoint, but '{path}' is a {fmt}",
            hint="pass the checkpoint prefix or folder the graph's variables were saved to",
        )
    if fmt in ("checkpoint", "meta"):
        return _load_checkpoint(
            path,
            outputs,
            allow_unsafe_ops,
            new_session,
            init_missing,
            Path(graph) if graph is not None else None,
        )
    if fmt == "saved_model":
        return _load_saved_model(path, signature, allow_unsafe_ops, new_session)
    raise ModelError(
        f"'{path}' is a TFLite model; this command reads TensorFlow graphs",
        hint=f"convert it first: python main.py model convert '{path}' -o model.pb",
    )
