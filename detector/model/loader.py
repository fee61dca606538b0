"""Load a detector (frozen .pb, SavedModel folder or checkpoint) as one ``DetectionModel``.

Every format ends the same way: a ``tf.compat.v1.Session`` over a graph, an input tensor
taking RGB ``uint8 [B, H, W, 3]`` images and four output tensors in the TF Object Detection
API convention. Graphs are data: their ops are checked against the allowlist in
:mod:`detector.model.safety` before anything is imported, and a checkpoint's weights are
restored by reading the checkpoint, never by running the ``.meta``'s own restore op.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import CheckpointError, ModelError
from detector.model.graph_info import describe_graph, describe_signature
from detector.model.session import (
    SessionOptions,
    captured_stderr,
    describe_device,
    import_tf,
    new_session,
    resolve_precision,
)

log = logging.getLogger(__name__)

EXPECTED = (
    "a frozen graph (.pb or .pbtxt), a SavedModel folder (saved_model.pb + variables/) "
    "or a checkpoint folder (one .meta + .index/.data + a 'checkpoint' state file)"
)


@dataclass(frozen=True)
class TensorNames:
    """Tensor names of a detector, TF Object Detection API names by default.

    For a SavedModel, a name is matched against the signature's keys without the ``:0``
    (``detection_boxes``), then against the tensor names the signature points to.
    """

    input: str = "image_tensor:0"
    boxes: str = "detection_boxes:0"
    scores: str = "detection_scores:0"
    classes: str = "detection_classes:0"
    num: str = "num_detections:0"

    #: The config key that sets each name, for error messages.
    CONFIG_KEYS = {  # noqa: RUF012 - a class constant, not a field
        "input": "model.input_tensor",
        "boxes": "model.boxes_tensor",
        "scores": "model.scores_tensor",
        "classes": "model.classes_tensor",
        "num": "model.num_tensor",
    }

    def outputs(self) -> tuple[str, str, str, str]:
        """``(boxes, scores, classes, num)``."""
        return (self.boxes, self.scores, self.classes, self.num)

    def items(self) -> list[tuple[str, str]]:
        """``(field, tensor name)`` pairs, input first."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


def model_path_exists(path: str | Path) -> bool:
    """True when ``path`` exists, or is a checkpoint prefix (``model.ckpt-100`` + ``.index``)."""
    path = Path(path)
    return path.exists() or path.with_name(path.name + ".index").is_file()


def tensor_name(name: str) -> str:
    """``'x'`` → ``'x:0'``; names that already carry a port are kept."""
    return name if ":" in name else f"{name}:0"


class DetectionModel:
    """A loaded detector: RGB images in, TF OD API detections out.

    ``predict`` is thread-safe (``Session.run`` may be called from several threads at once).
    With extra sessions on the same graph (``add_sessions``), concurrent callers each take
    a session of their own instead of sharing one.

    Attributes:
        path: The path the model was loaded from.
        format: ``frozen_pb``, ``pbtxt``, ``saved_model`` or ``checkpoint``.
        device: ``cpu`` or ``gpu``: where the graph runs.
        input_size: ``(height, width)`` when the input tensor has a fixed size, else ``None``
            (the caller resizes images to it; outputs are normalized, so boxes map back).
        load_s: Seconds spent loading (parse, checks, import, restore).
        precision: ``fp32``, or ``bf16`` when oneDNN's bfloat16 rewrite is on (CPU).
    """

    def __init__(self, path: Path, fmt: str, device: str, session: Any, input_tensor: Any,
                 output_tensors: list[Any], load_s: float = 0.0) -> None:
        self.path = path
        self.format = fmt
        self.device = device
        self.load_s = load_s
        self.precision = "fp32"
        self._session = session
        self._spare: list[Any] = []  # extra sessions on the same graph (add_sessions)
        self._pool: queue.SimpleQueue[Any] | None = None
        self._input = input_tensor
        self._outputs = output_tensors
        self._dtype = np.dtype(input_tensor.dtype.as_numpy_dtype)
        shape = input_tensor.shape
        dims = shape.as_list() if shape.rank is not None else None
        self.input_size: tuple[int, int] | None = (
            (int(dims[1]), int(dims[2])) if dims and len(dims) == 4 and dims[1] and dims[2]
            else None
        )
        self._closed = False

    def predict(self, images_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                       np.ndarray]:
        """Run the detector.

        Args:
            images_rgb: RGB ``uint8`` ``[B, H, W, 3]`` (a float input tensor gets 0..255 floats).

        Returns:
            ``(boxes, scores, classes, num)``: ``[B, K, 4]`` normalized ``[ymin, xmin, ymax,
            xmax]``, ``[B, K]`` scores, ``[B, K]`` class ids as floats (label-map ids),
            ``[B]`` number of valid rows.
        """
        if self._closed:
            raise ModelError(f"model '{self.path}' is closed")
        images = np.asarray(images_rgb)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ModelError(f"predict() wants RGB images [B, H, W, 3]; got shape {images.shape}")
        if images.dtype != self._dtype:
            images = images.astype(self._dtype)
        if self._pool is None:
            boxes, scores, classes, num = self._session.run(self._outputs, {self._input: images})
            return boxes, scores, classes, num
        session = self._pool.get()
        try:
            boxes, scores, classes, num = session.run(self._outputs, {self._input: images})
        finally:
            self._pool.put(session)
        return boxes, scores, classes, num

    def add_sessions(self, sessions: list[Any]) -> None:
        """Give concurrent callers more sessions on this model's graph (frozen graphs only)."""
        self._spare.extend(sessions)
        pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for s in [self._session, *self._spare]:
            pool.put(s)
        self._pool = pool

    @property
    def sessions(self) -> int:
        """How many sessions serve ``predict`` (1 unless ``add_sessions`` was used)."""
        return 1 + len(self._spare)

    def warm_up(self, width: int = 300, height: int = 300, runs: int = 1) -> float:
        """Run the model on grey images so the first real frame is not slowed by set-up.

        Also checks that the outputs have the TF OD API shapes.

        Returns:
            Milliseconds of the last warm-up run.

        Raises:
            ModelError: The outputs do not look like detections.
        """
        if self.input_size is not None:
            height, width = self.input_size
        image = np.full((1, height, width, 3), 128, np.uint8)
        ms = 0.0
        # The first run prints graph-optimizer notes straight to stderr: keep them in debug.
        with captured_stderr() as lines:
            for _ in range(max(1, runs, self.sessions)):  # every session optimises its graph
                t = time.perf_counter()
                out = self.predict(image)
                ms = (time.perf_counter() - t) * 1e3
        for line in lines:
            log.debug("tensorflow: %s", line)
        check_outputs(out, str(self.path))
        log.debug("warm-up: %d run(s), last %.1f ms", max(1, runs), ms)
        return ms

    def close(self) -> None:
        """Close the session (idempotent)."""
        if not self._closed:
            self._closed = True
            self._session.close()
            for extra in self._spare:
                extra.close()

    def __enter__(self) -> DetectionModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DetectionModel({str(self.path)!r}, format={self.format!r}, device={self.device!r})"


def check_outputs(out: tuple[np.ndarray, ...], what: str) -> None:
    """Raise ``ModelError`` unless ``out`` has the TF OD API shapes for a batch."""
    boxes, scores, classes, num = (np.asarray(o) for o in out)
    ok = (
        boxes.ndim == 3 and boxes.shape[-1] == 4
        and scores.shape == boxes.shape[:2] and classes.shape == boxes.shape[:2]
        and num.shape == boxes.shape[:1]
    )
    if not ok:
        raise ModelError(
            f"model '{what}' gives outputs that are not TF OD API detections: boxes "
            f"{boxes.shape}, scores {scores.shape}, classes {classes.shape}, num {num.shape}",
            hint="expected boxes [B,K,4], scores [B,K], classes [B,K], num [B]; "
            "check model.boxes_tensor, model.scores_tensor, model.classes_tensor, model.num_tensor",
        )


def load_model(
    path: str | Path,
    *,
    tensors: TensorNames = TensorNames(),
    signature: str = "serving_default",
    device: str = "auto",
    allow_memory_growth: bool = True,
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    allow_unsafe_ops: bool = False,
    precision: str = "auto",
    sessions: int = 1,
) -> DetectionModel:
    """Load a detector from a frozen graph, a SavedModel folder or a checkpoint.

    Args:
        path: A frozen ``.pb``/``.pbtxt``, a SavedModel folder, a checkpoint folder, prefix
            or ``.meta``. The format is found from the contents, not the suffix.
        tensors: Input and output tensor names.
        signature: The SavedModel signature to use.
        device: ``auto`` (a GPU when TensorFlow sees one), ``cpu`` or ``gpu``.
        allow_memory_growth: Grow GPU memory as needed.
        intra_op_threads: Threads inside one op (0: TF's default).
        inter_op_threads: Ops run side by side (0: TF's default).
        allow_unsafe_ops: Skip the op allowlist (only for graphs you trust).
        precision: CPU precision, ``auto``, ``bf16`` or ``fp32`` (``SessionOptions.precision``).
        sessions: Sessions on the one graph, for that many concurrent callers (frozen
            graphs; SavedModels and checkpoints keep 1, their variables live in a session).
            The bench measures it beside one shared session (within noise of each other
            for the default SSD on 2 cores, and about 75 MB more per session).

    Raises:
        ModelError: The path is missing or unusable, a tensor is missing, or the graph fails.
        UnsafeGraphError: The graph holds ops outside the allowlist.
        CheckpointError: The checkpoint is incomplete or does not match its graph.
    """
    from detector.model.formats import detect_format

    path = Path(path)
    if not model_path_exists(path):
        raise ModelError(
            f"model path '{path}' does not exist",
            hint=f"set model.path (or --model) to {EXPECTED}; "
            "'python main.py fetch' installs the default model",
        )
    import_tf()  # TF's own start-up (seconds) is not part of the model's load time
    t0 = time.perf_counter()
    fmt = detect_format(path)
    options = SessionOptions(device, allow_memory_growth, intra_op_threads, inter_op_threads,
                             precision)
    if fmt in ("frozen_pb", "pbtxt"):
        session, used, inp, outs = _load_graph_file(path, fmt, tensors, options, allow_unsafe_ops)
    elif fmt == "saved_model":
        session, used, inp, outs = _load_saved_model(path, tensors, signature, options,
                                                     allow_unsafe_ops)
    elif fmt in ("checkpoint", "meta"):
        fmt = "checkpoint"
        session, used, inp, outs = _load_checkpoint(path, tensors, options, allow_unsafe_ops)
    elif fmt == "tflite":
        raise ModelError(
            f"model path '{path}' is a TFLite file; the app runs TensorFlow graphs",
            hint=f"convert it: python main.py model convert '{path}' -o model.pb",
        )
    else:  # pragma: no cover - detect_format names only the formats above
        raise ModelError(f"model path '{path}' has unsupported format {fmt!r}", hint=EXPECTED)
    load_s = time.perf_counter() - t0
    model = DetectionModel(path, fmt, used, session, inp, outs, load_s)
    model.precision = resolve_precision(precision) if used == "cpu" else "fp32"
    if sessions > 1 and fmt in ("frozen_pb", "pbtxt"):
        model.add_sessions([new_session(session.graph, options)[0] for _ in range(sessions - 1)])
    log.info("model %s (%s) loaded in %.1f s; running on %s, %s", path, fmt, load_s,
             describe_device(used), model.precision)
    return model


def _load_graph_file(path: Path, fmt: str, tensors: TensorNames, options: SessionOptions,
                     allow_unsafe: bool) -> tuple[Any, str, Any, list[Any]]:
    tf = import_tf()
    from detector.model.safety import check_graph_def

    graph_def = tf.compat.v1.GraphDef()
    try:
        data = path.read_bytes()
        if fmt == "pbtxt":
            from google.protobuf import text_format

            text_format.Parse(data.decode("utf-8"), graph_def)
        else:
            graph_def.ParseFromString(data)
    except Exception as exc:
        raise ModelError(
            f"cannot parse '{path}' as a {'text' if fmt == 'pbtxt' else 'binary'} GraphDef: "
            f"{exc}", hint=f"the model path must be {EXPECTED}"
        ) from exc
    check_graph_def(graph_def, what=str(path), allow_unsafe=allow_unsafe)
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.compat.v1.import_graph_def(graph_def, name="")
        except Exception as exc:
            raise ModelError(
                f"cannot import graph '{path}': {exc}",
                hint="was it written by a newer TensorFlow or with custom ops?",
            ) from exc
    inp, outs = _graph_tensors(graph, tensors, path)
    session, used = new_session(graph, options)
    return session, used, inp, outs


def _graph_tensors(graph: Any, tensors: TensorNames, path: Path) -> tuple[Any, list[Any]]:
    """Look the configured names up in ``graph``; a miss lists what the graph does have."""
    found: dict[str, Any] = {}
    missing: list[tuple[str, str]] = []
    for field, name in tensors.items():
        try:
            found[field] = graph.get_tensor_by_name(tensor_name(name))
        except (KeyError, ValueError):
            missing.append((field, name))
    if missing:
        placeholders, candidates = describe_graph(graph)
        names = ", ".join(f"'{tensor_name(n)}'" for _, n in missing)
        keys = ", ".join(TensorNames.CONFIG_KEYS[f] for f, _ in missing)
        raise ModelError(
            f"graph '{path}' has no tensor {names}; placeholders found: "
            f"[{', '.join(placeholders) or 'none'}]; candidate outputs: "
            f"[{', '.join(candidates) or 'none'}]",
            hint=f"set {keys} in the config to the graph's own names",
        )
    return found["input"], [found[f] for f in ("boxes", "scores", "classes", "num")]


def _load_saved_model(path: Path, tensors: TensorNames, signature: str,
                      options: SessionOptions, allow_unsafe: bool
                      ) -> tuple[Any, str, Any, list[Any]]:
    tf = import_tf()
    from detector.model.safety import check_saved_model

    saved = check_saved_model(path, allow_unsafe=allow_unsafe)
    metas = list(saved.meta_graphs)
    meta = next((m for m in metas if "serve" in m.meta_info_def.tags), metas[0] if metas else None)
    if meta is None:
        raise ModelError(f"SavedModel '{path}' holds no MetaGraph", hint=EXPECTED)
    if signature not in meta.signature_def:
        raise ModelError(
            f"SavedModel '{path}' has no signature {signature!r}; it has "
            f"{sorted(meta.signature_def) or 'none'}",
            hint="set model.signature to one of them",
        )
    inp_name, out_names = _signature_tensors(meta.signature_def[signature], tensors, path,
                                             signature)
    graph = tf.Graph()
    session, used = new_session(graph, options)
    try:
        with graph.as_default():
            # Restores the variables with the SavedModel's own saver; its ops were allowlisted.
            tf.compat.v1.saved_model.loader.load(session, list(meta.meta_info_def.tags), str(path))
    except Exception as exc:
        session.close()
        raise ModelError(f"cannot load SavedModel '{path}': {exc}",
                         hint="check that the folder is complete (saved_model.pb + variables/)"
                         ) from exc
    inp = graph.get_tensor_by_name(inp_name)
    outs = [graph.get_tensor_by_name(n) for n in out_names]
    return session, used, inp, outs


def _signature_tensors(sig: Any, tensors: TensorNames, path: Path, signature: str
                       ) -> tuple[str, list[str]]:
    """Map the configured names onto a signature: by key (``detection_boxes``), then by name."""

    def pick(mapping: Any, name: str, only_one: bool) -> str | None:
        key = name.split(":")[0]
        if key in mapping:
            return str(mapping[key].name)
        for info in mapping.values():
            if tensor_name(info.name) == tensor_name(name):
                return str(info.name)
        if only_one and len(mapping) == 1:
            return str(next(iter(mapping.values())).name)
        return None

    chosen = {"input": pick(sig.inputs, tensors.input, True)}
    for field in ("boxes", "scores", "classes", "num"):
        chosen[field] = pick(sig.outputs, getattr(tensors, field), False)
    missing = [f for f, v in chosen.items() if v is None]
    if missing:
        inputs, outputs = describe_signature(sig)
        names = ", ".join(f"'{getattr(tensors, f)}'" for f in missing)
        keys = ", ".join(TensorNames.CONFIG_KEYS[f] for f in missing)
        raise ModelError(
            f"SavedModel '{path}' signature {signature!r} has no {names}; inputs: "
            f"[{', '.join(inputs)}]; outputs: [{', '.join(outputs)}]",
            hint=f"set {keys} in the config to the signature's keys",
        )
    return str(chosen["input"]), [str(chosen[f]) for f in ("boxes", "scores", "classes", "num")]


def _load_checkpoint(path: Path, tensors: TensorNames, options: SessionOptions,
                     allow_unsafe: bool) -> tuple[Any, str, Any, list[Any]]:
    tf = import_tf()
    from detector.model.checkpoints import resolve_checkpoint, restore_variables
    from detector.model.safety import check_meta_graph

    ref = resolve_checkpoint(path)
    if ref.meta is None:
        raise CheckpointError(
            f"checkpoint '{ref.prefix}' has no .meta graph file next to it",
            hint="the app needs the graph too: keep model.ckpt-N.meta with the checkpoint, "
            "or freeze it: python main.py model freeze",
        )
    meta = tf.compat.v1.MetaGraphDef()
    try:
        meta.ParseFromString(Path(ref.meta).read_bytes())
    except Exception as exc:
        raise CheckpointError(f"cannot parse '{ref.meta}' as a MetaGraphDef: {exc}",
                              hint=EXPECTED) from exc
    check_meta_graph(meta, what=str(ref.meta), allow_unsafe=allow_unsafe)
    graph = tf.Graph()
    with graph.as_default():
        try:
            # Devices cleared: a graph saved on a GPU machine must run here too.
            tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        except Exception as exc:
            raise ModelError(f"cannot import graph '{ref.meta}': {exc}",
                             hint="was it written by a newer TensorFlow?") from exc
        inp, outs = _graph_tensors(graph, tensors, Path(ref.meta))
        variables = tf.compat.v1.global_variables()
        local = tf.compat.v1.local_variables()
    session, used = new_session(graph, options)
    try:
        restore_variables(session, variables, str(ref.prefix))
        if local:
            session.run([v.initializer for v in local])
    except BaseException:
        session.close()
        raise
    log.debug("restored %d variables from %s (step %s)", len(variables), ref.prefix, ref.step)
    return session, used, inp, outs

