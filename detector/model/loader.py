"""Load a detector (frozen .pb, SavedModel folder or checkpoint) as one ``DetectionModel``.

Every format ends the same way: a ``tf.compat.v1.Session`` over a graph, an input tensor
taking RGB ``uint8 [B, H, W, 3]`` images and four output tensors in the TF Object Detection
API convention. The file is read, checked and imported by :mod:`detector.model.graphfile`
(the one reader); this module picks the detector's tensors and runs them.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from detector.config import OD_INPUT, OD_OUTPUTS
from detector.errors import ModelError
from detector.model.formats import detect_format
from detector.model.graph_info import describe_graph
from detector.model.graphfile import load_graph, tensor_name
from detector.model.session import (
    SessionOptions,
    captured_stderr,
    describe_device,
    import_tf,
    new_session,
    resolve_precision,
)
from detector.paths import FETCH_COMMAND

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

    input: str = OD_INPUT
    boxes: str = OD_OUTPUTS[0]
    scores: str = OD_OUTPUTS[1]
    classes: str = OD_OUTPUTS[2]
    num: str = OD_OUTPUTS[3]

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


def require_model_path(path: str | Path) -> None:
    """Raise the app's "model does not exist" error (with the way out) unless ``path`` exists."""
    if not model_path_exists(path):
        raise ModelError(
            f"model '{path}' does not exist",
            hint=f"run '{FETCH_COMMAND}' for the default model, or set "
            "model.path (--model) to a frozen .pb, SavedModel or checkpoint folder",
        )


def model_path_exists(path: str | Path) -> bool:
    """True when ``path`` exists, or is a checkpoint prefix (``model.ckpt-100`` + ``.index``)."""
    path = Path(path)
    return path.exists() or path.with_name(path.name + ".index").is_file()


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

    def __init__(
        self,
        path: Path,
        fmt: str,
        device: str,
        session: Any,
        input_tensor: Any,
        output_tensors: list[Any],
        load_s: float = 0.0,
    ) -> None:
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
            (int(dims[1]), int(dims[2]))
            if dims and len(dims) == 4 and dims[1] and dims[2]
            else None
        )
        self._closed = False

    def predict(
        self, images_rgb: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Run the detector.

        Args:
            images_rgb: RGB ``uint8`` ``[B, H, W, 3]`` (a float input tensor gets 0..255 floats).

        Returns:
            ``(boxes, scores, classes, num)``: ``[B, K, 4]`` normalized ``[ymin, xmin, ymax,
            xmax]``, ``[B, K]`` scores, ``[B, K]`` class ids as floats (label-map ids),
            ``[B]`` number of valid rows.
        """
        images = checked_images(images_rgb, self.path, closed=self._closed)
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


def checked_images(images_rgb: Any, path: Path, *, closed: bool) -> np.ndarray:
    """``images_rgb`` as an array for ``predict``: refused when the model at ``path`` is
    closed or they are not RGB images ``[B, H, W, 3]``."""
    if closed:
        raise ModelError(f"model '{path}' is closed")
    images = np.asarray(images_rgb)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ModelError(f"predict() wants RGB images [B, H, W, 3]; got shape {images.shape}")
    return images


def check_outputs(out: tuple[np.ndarray, ...], what: str) -> None:
    """Raise ``ModelError`` unless ``out`` has the TF OD API shapes for a batch."""
    boxes, scores, classes, num = (np.asarray(o) for o in out)
    ok = (
        boxes.ndim == 3
        and boxes.shape[-1] == 4
        and scores.shape == boxes.shape[:2]
        and classes.shape == boxes.shape[:2]
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
    init_missing: bool = False,
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
        init_missing: (Checkpoints) variables the checkpoint lacks take their initial
            values, logged, instead of failing.
        sessions: Sessions on the one graph, for that many concurrent callers (frozen
            graphs; SavedModels and checkpoints keep 1, their variables live in a session).
            The bench measures it beside one shared session (within noise of each other
            for the default SSD on 2 cores, and about 75 MB more per session).

    Raises:
        ModelError: The path is missing or unusable, a tensor is missing, or the graph fails.
        UnsafeGraphError: The graph holds ops outside the allowlist.
        CheckpointError: The checkpoint is incomplete or does not match its graph.
    """

    path = Path(path)
    _require_graph_model(path)
    import_tf()  # TF's own start-up (seconds) is not part of the model's load time
    t0 = time.perf_counter()
    maker = _SessionMaker(
        SessionOptions(device, allow_memory_growth, intra_op_threads, inter_op_threads, precision)
    )
    loaded = load_graph(
        path,
        signature=signature,
        allow_unsafe_ops=allow_unsafe_ops,
        new_session=maker,
        init_missing=init_missing,
    )
    return _detection_model(loaded, path, tensors, signature, maker, sessions=sessions, t0=t0)


def _require_graph_model(path: Path) -> None:
    """Raise unless ``path`` exists and holds a TensorFlow graph (not a TFLite file)."""
    if not model_path_exists(path):
        raise ModelError(
            f"model path '{path}' does not exist",
            hint=f"set model.path (or --model) to {EXPECTED}; "
            f"'{FETCH_COMMAND}' fetches the default model",
        )
    if detect_format(path) == "tflite":
        raise ModelError(
            f"model path '{path}' is a TFLite file; the app runs TensorFlow graphs",
            hint=f"convert it: python main.py model convert '{path}' -o model.pb",
        )


@dataclass
class _SessionMaker:
    """Makes the sessions of one model with its options, remembering the device each took."""

    options: SessionOptions
    devices: list[str] = field(default_factory=list)

    def __call__(self, graph: Any) -> Any:
        session, used = new_session(graph, self.options)
        self.devices.append(used)
        return session


def _detection_model(
    loaded: Any,
    path: Path,
    tensors: TensorNames,
    signature: str,
    maker: _SessionMaker,
    *,
    sessions: int,
    t0: float,
) -> DetectionModel:
    """The loaded graph as a ``DetectionModel`` on its detector tensors (closed on failure),
    with ``sessions`` sessions for frozen graphs."""
    try:
        if loaded.fmt == "saved_model":
            names = _signature_tensors(loaded.inputs, loaded.outputs, tensors, path, signature)
            inp = loaded.graph.get_tensor_by_name(names[0])
            outs = [loaded.graph.get_tensor_by_name(n) for n in names[1:]]
        else:
            inp, outs = _graph_tensors(loaded.graph, tensors, path)
    except BaseException:
        loaded.close()
        raise
    fmt = "checkpoint" if loaded.fmt in ("checkpoint", "meta") else loaded.fmt
    load_s = time.perf_counter() - t0
    used = maker.devices[0]
    model = DetectionModel(path, fmt, used, loaded.session, inp, outs, load_s)
    model.precision = resolve_precision(maker.options.precision) if used == "cpu" else "fp32"
    if sessions > 1 and fmt in ("frozen_pb", "pbtxt"):
        model.add_sessions([maker(loaded.graph) for _ in range(sessions - 1)])
    log.info(
        "model %s (%s) loaded in %.1f s; running on %s, %s",
        path,
        fmt,
        load_s,
        describe_device(used),
        model.precision,
    )
    return model


def _graph_tensors(graph: Any, tensors: TensorNames, path: Path) -> tuple[Any, list[Any]]:
    """Look the configured names up in ``graph``; a miss lists what the graph does have."""
    found: dict[str, Any] = {}
    missing: list[tuple[str, str]] = []
    for key, name in tensors.items():
        try:
            found[key] = graph.get_tensor_by_name(tensor_name(name))
        except (KeyError, ValueError):
            missing.append((key, name))
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


def _signature_tensors(
    inputs: dict[str, str],
    outputs: dict[str, str],
    tensors: TensorNames,
    path: Path,
    signature: str,
) -> list[str]:
    """Map the configured names onto a signature's keys (``detection_boxes``), then onto the
    tensor names it points to; returns ``[input, boxes, scores, classes, num]``."""

    def pick(mapping: dict[str, str], name: str, only_one: bool) -> str | None:
        key = name.split(":")[0]
        if key in mapping:
            return mapping[key]
        for tensor in mapping.values():
            if tensor_name(tensor) == tensor_name(name):
                return tensor
        if only_one and len(mapping) == 1:
            return next(iter(mapping.values()))
        return None

    chosen = {"input": pick(inputs, tensors.input, True)}
    for key in ("boxes", "scores", "classes", "num"):
        chosen[key] = pick(outputs, getattr(tensors, key), False)
    missing = [f for f, v in chosen.items() if v is None]
    if missing:
        names = ", ".join(f"'{getattr(tensors, f)}'" for f in missing)
        keys = ", ".join(TensorNames.CONFIG_KEYS[f] for f in missing)
        listed = {
            w: [f"{k} ({v})" for k, v in sorted(m.items())]
            for w, m in (("inputs", inputs), ("outputs", outputs))
        }
        raise ModelError(
            f"SavedModel '{path}' signature {signature!r} has no {names}; inputs: "
            f"[{', '.join(listed['inputs'])}]; outputs: [{', '.join(listed['outputs'])}]",
            hint=f"set {keys} in the config to the signature's keys",
        )
    return [str(chosen[f]) for f in ("input", "boxes", "scores", "classes", "num")]
