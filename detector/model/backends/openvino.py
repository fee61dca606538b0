"""Run a frozen SSD graph's network in OpenVINO and its box decoding + NMS in TensorFlow.

OpenVINO has no conversion rule for ``CombinedNonMaxSuppression``, so the graph is cut where
``model.split`` cuts it (:func:`detector.model.split.find_split`): the network part (image →
box encodings and class scores) is converted with ``openvino.convert_model`` straight from
the ``GraphDef`` (the OpenVINO TensorFlow front end reads it; no ONNX step is needed for
the TF OD API SSDs) and compiled for the CPU; the post-processing part runs in a small TF
session as it does today. Images go in as RGB ``uint8 [B, H, W, 3]``; out come the TF OD
API ``(boxes, scores, classes, num)``, normalized ``[ymin, xmin, ymax, xmax]`` boxes.

Start-up stays short on a second run: the converted network is saved as OpenVINO IR in
a cache folder (next to the graph, ``.openvino/``, or the user cache when that is not
writable) under a name keyed by the graph's sha256 and the conversion settings, and the
compiled model goes through OpenVINO's own ``CACHE_DIR``. The graph is checked against the
op allowlist before anything is converted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.errors import ConfigError, ModelError
from detector.model.backends.extra import require
from detector.model.formats import detect_format
from detector.model.graphfile import import_graph_def, read_graph_def, tensor_name
from detector.model.loader import TensorNames, check_outputs
from detector.model.session import SessionOptions, cpu_has_bf16, import_tf, session_config
from detector.model.split import find_split, split_graph_defs

log = logging.getLogger(__name__)

#: OpenVINO's ``INFERENCE_PRECISION_HINT`` per precision (int8: what the unquantized rest uses;
#: measured on an AMX CPU, f32 around the int8 layers was faster than bf16).
_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
_RESIZE_OPS = ("ResizeBilinear", "ResizeNearestNeighbor", "ResizeArea", "ResizeBicubic")
_PASS_THROUGH_OPS = ("Cast", "Identity", "ToFloat")
#: Bump when what is written to the cache changes meaning.
CACHE_FORMAT = 1


def resolve_precision(precision: str) -> str:
    """``auto`` → ``bf16`` on a CPU with native bfloat16, else ``fp32``; others unchanged.

    Raises:
        ConfigError: Not one of ``auto``, ``fp32``, ``bf16``, ``int8``.
    """

    if precision not in ("auto", "fp32", "bf16", "int8"):
        raise ConfigError(
            f"unknown openvino precision {precision!r}", hint="use one of auto, fp32, bf16, int8"
        )
    if precision == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    return precision


@dataclass(frozen=True)
class PreparedGraph:
    """A frozen graph read, checked and cut in two.

    Attributes:
        path: The graph file.
        sha256: Hex sha256 of its bytes (the cache key's first part).
        input_name: The image tensor (``image_tensor:0``).
        outputs: The four output tensor names.
        cut: The tensors crossing from the network to the post-processing.
        network: The network ``GraphDef`` (image → ``cut``).
        post: The post-processing ``GraphDef`` (placeholders ``post_inputs`` → ``outputs``).
        post_inputs: Placeholder names of ``post``, one per ``cut`` tensor.
        input_size: ``(height, width)`` the graph resizes every image to, when it does so
            with a constant size right at its input; else ``None`` (any size is fed).
    """

    path: Path
    sha256: str
    input_name: str
    outputs: tuple[str, ...]
    cut: tuple[str, ...]
    network: Any
    post: Any
    post_inputs: tuple[str, ...]
    input_size: tuple[int, int] | None


def prepare_graph(
    path: str | Path, tensors: Any = None, *, allow_unsafe_ops: bool = False
) -> PreparedGraph:
    """Read a frozen graph, check its ops, and cut it into network and post-processing.

    Args:
        path: A frozen ``.pb`` (or ``.pbtxt``).
        tensors: ``TensorNames`` (``None``: the TF OD API names).
        allow_unsafe_ops: Skip the op allowlist (only for graphs you trust).

    Raises:
        ModelError: Not a readable frozen graph, or no network / post-processing cut.
        UnsafeGraphError: The graph holds ops outside the allowlist.
    """

    path = Path(path)
    names = tensors if tensors is not None else TensorNames()
    fmt = detect_format(path)  # a missing path or unknown contents: ModelError
    if fmt not in ("frozen_pb", "pbtxt"):
        raise ModelError(
            f"the openvino backend runs frozen graphs; '{path}' is a {fmt}",
            hint="freeze it first: python main.py model convert MODEL -o frozen_inference_graph.pb",
        )
    # The one reader: parsed, then checked against the op allowlist, before anything of it
    # is imported or converted.
    graph_def = read_graph_def(path, fmt, allow_unsafe_ops=allow_unsafe_ops)
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    input_name = tensor_name(names.input)
    outputs = tuple(tensor_name(n) for n in names.outputs())
    point = find_split(graph_def, outputs)
    whole = import_graph_def(graph_def, path)
    dtypes = {t: whole.get_tensor_by_name(t).dtype for t in point.tensors}
    net_gd, post_gd, post_inputs = split_graph_defs(graph_def, point, outputs, dtypes)
    return PreparedGraph(
        path=path,
        sha256=sha.hexdigest(),
        input_name=input_name,
        outputs=outputs,
        cut=tuple(point.tensors),
        network=net_gd,
        post=post_gd,
        post_inputs=tuple(post_inputs),
        input_size=_resize_size(graph_def, input_name),
    )


def _resize_size(graph_def: Any, input_name: str) -> tuple[int, int] | None:
    """The constant ``(height, width)`` of a resize reading the input (through casts), if any."""
    import tensorflow as tf

    nodes = {n.name: n for n in graph_def.node}
    frontier = {input_name.split(":")[0]}
    for _ in range(4):  # image -> [Cast/Identity ...] -> Resize*
        nxt: set[str] = set()
        for node in graph_def.node:
            if not node.input or node.input[0].split(":")[0] not in frontier:
                continue
            if node.op in _RESIZE_OPS and len(node.input) > 1:
                size = nodes.get(node.input[1].split(":")[0])
                if size is not None and size.op == "Const":
                    h, w = (int(v) for v in tf.make_ndarray(size.attr["value"].tensor))
                    return h, w
            elif node.op in _PASS_THROUGH_OPS:
                nxt.add(node.name)
        if not nxt:
            break
        frontier = nxt
    return None


# ---------------------------------------------------------------------------------- cache


def cache_root(graph_path: Path, cache_dir: str | Path | None = None) -> Path:
    """Where converted models of ``graph_path`` live; created if needed.

    ``cache_dir`` when given; else ``.openvino/`` beside the graph when that can be written;
    else ``$XDG_CACHE_HOME/detector/openvino`` (``~/.cache/...``).

    Raises:
        ModelError: ``cache_dir`` was given and cannot be created or written.
    """
    if cache_dir is not None:
        root = Path(cache_dir)
        if not _writable(root):
            raise ModelError(
                f"cannot write the openvino cache folder '{root}'",
                hint="set model.cache_dir to a writable folder, or leave it null",
            )
        return root
    beside = graph_path.resolve().parent / ".openvino"
    if _writable(beside):
        return beside
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = base / "detector" / "openvino"
    if not _writable(root):
        raise ModelError(
            f"cannot write the openvino cache: neither '{beside}' nor '{root}'",
            hint="set model.cache_dir to a writable folder",
        )
    log.debug("openvino cache: '%s' is not writable, using '%s'", beside, root)
    return root


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe"):
            pass
    except OSError:
        return False
    return True


def cache_key(prep: PreparedGraph, **settings: Any) -> str:
    """A short hex key of the graph's sha256, its cut, input shape, OpenVINO version and more."""
    ov = require("openvino")
    doc = {
        "graph_sha256": prep.sha256,
        "input": prep.input_name,
        "cut": list(prep.cut),
        "input_size": prep.input_size,
        "openvino": ov.get_version(),
        "format": CACHE_FORMAT,
        **settings,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def ir_path(root: Path, prep: PreparedGraph, kind: str = "fp32") -> Path:
    """The IR ``.xml`` for a graph in a cache root: ``<stem>-<sha12>-<key>.<kind>.xml``."""
    return root / f"{prep.path.stem}-{prep.sha256[:12]}-{cache_key(prep)}.{kind}.xml"


def int8_report_path(xml: Path) -> Path:
    """The gate's JSON report beside an int8 IR (``<name>.int8.xml`` → ``<name>.int8.json``)."""
    return xml.with_suffix(".json")


def passing_int8_ir(root: Path, prep: Any) -> Path:
    """The cached int8 IR of a graph, when its gate report says it passed.

    Raises:
        ModelError: None was made for this graph (and OpenVINO version), or it failed.
    """
    xml = ir_path(root, prep, "int8")
    report = int8_report_path(xml)
    hint = (
        f"make one: python main.py model quantize {prep.path} (calibration frames: "
        "--calibration FOLDER_OR_VIDEO), or use --precision bf16 / fp32"
    )
    if not xml.is_file() or not report.is_file():
        raise ModelError(
            f"no int8 model of '{prep.path}' has passed the parity gate yet (looked for '{xml}')",
            hint=hint,
        )
    try:
        doc = json.loads(report.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the int8 gate report '{report}': {exc}", hint=hint) from exc
    if doc.get("graph_sha256") != prep.sha256 or not doc.get("parity", {}).get("passed"):
        raise ModelError(
            f"the int8 model '{xml}' did not pass the parity gate for this graph", hint=hint
        )
    return xml


def save_ir(model: Any, xml: Path) -> None:
    """Write an OpenVINO model as IR, atomically (``.bin`` then ``.xml``, by rename)."""
    ov = require("openvino")
    xml.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=xml.parent, prefix=".tmp-") as tmp:
        tmp_xml = Path(tmp) / xml.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_xml.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp_xml, xml)


def convert_network(prep: PreparedGraph) -> Any:
    """The network part as an ``openvino.Model``, converted straight from its ``GraphDef``.

    With a known ``input_size`` the input is fixed to ``[1, H, W, 3]`` (static shapes compile
    to faster code); otherwise it stays ``[?, ?, ?, 3]``.

    Raises:
        ModelError: OpenVINO cannot convert it (the message names what it said).
    """
    ov = require("openvino")
    try:
        model = ov.convert_model(prep.network, output=list(prep.cut))
    except Exception as exc:
        raise ModelError(
            f"OpenVINO cannot convert the network part of '{prep.path}' (cut at "
            f"{', '.join(prep.cut)}): {str(exc).strip()[:800]}",
            hint="run it with --backend tf",
        ) from exc
    if prep.input_size is not None:
        h, w = prep.input_size
        model.reshape({model.inputs[0]: [1, h, w, 3]})
    return model


# ---------------------------------------------------------------------------------- model


class OpenVinoModel:
    """A frozen SSD graph run as OpenVINO network + TensorFlow post-processing.

    Same surface as ``DetectionModel`` (``predict``, ``warm_up``, ``close``, context
    manager, ``path``, ``format``, ``device``, ``precision``, ``input_size``, ``load_s``).
    ``predict`` is thread-safe: each caller takes one of ``streams`` infer requests, so that
    many frames are in flight at once (one per pipeline worker).

    Attributes:
        backend: ``openvino``.
        ir: The IR file the network was compiled from.
        converted: True when this load converted the graph (no cached IR yet).
        convert_s: Seconds converting (0 on a cache hit).
        compile_s: Seconds compiling (short when OpenVINO's model cache had it).
        network_ms: Network time of the last call, ms; ``post_ms``: post-processing's.
    """

    backend = "openvino"
    format = "frozen_pb"
    device = "cpu"

    def __init__(
        self,
        prep: PreparedGraph,
        compiled: Any,
        post_session: Any,
        *,
        precision: str,
        streams: int,
        threads_per_stream: int,
        ir: Path,
        converted: bool,
        convert_s: float,
        compile_s: float,
        load_s: float,
    ) -> None:
        self.path = prep.path
        self.precision = precision
        self.streams = streams
        self.threads_per_stream = threads_per_stream
        self.input_size = prep.input_size
        self.ir = ir
        self.converted = converted
        self.convert_s = convert_s
        self.compile_s = compile_s
        self.load_s = load_s
        self.network_ms = 0.0
        self.post_ms = 0.0
        self._compiled = compiled
        self._post = post_session
        self._post_inputs = list(prep.post_inputs)
        self._outputs = list(prep.outputs)
        # Which post-processing input each cut tensor comes from: a network output, or the
        # image itself when the post-processing reads it (e.g. for its shape).
        out_names = [set(o.get_names()) for o in compiled.outputs]
        self._sources: list[int | None] = []
        for t in prep.cut:
            if t == prep.input_name:
                self._sources.append(None)
                continue
            idx = next((i for i, names in enumerate(out_names) if t in names), None)
            if idx is None:
                raise ModelError(
                    f"the converted network of '{prep.path}' has no output {t!r}",
                    hint="delete the .openvino cache folder and load again",
                )
            self._sources.append(idx)
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(max(1, streams)):
            self._requests.put(compiled.create_infer_request())
        self._closed = False

    def _network(self, image: np.ndarray) -> list[np.ndarray]:
        """One RGB image ``[H, W, 3]`` through the network; the cut tensors' values."""
        if self.input_size is not None and image.shape[:2] != self.input_size:
            h, w = self.input_size
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        request = self._requests.get()
        try:
            request.infer({0: np.ascontiguousarray(image[np.newaxis])})
            return [
                request.get_output_tensor(i).data.copy() for i in range(len(self._compiled.outputs))
            ]
        finally:
            self._requests.put(request)

    def predict(
        self, images_rgb: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Detect objects in RGB ``uint8 [B, H, W, 3]`` images (any size: resized as needed).

        Returns:
            ``(boxes, scores, classes, num)`` as the whole TF graph gives them: ``[B, K, 4]``
            normalized ``[ymin, xmin, ymax, xmax]``, ``[B, K]``, ``[B, K]`` float label-map
            ids, ``[B]``.
        """
        if self._closed:
            raise ModelError(f"model '{self.path}' is closed")
        images = np.asarray(images_rgb)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ModelError(f"predict() wants RGB images [B, H, W, 3]; got shape {images.shape}")
        if images.dtype != np.uint8:
            images = np.clip(images, 0, 255).astype(np.uint8)
        t0 = time.perf_counter()
        per_image = [self._network(im) for im in images]
        values = [np.concatenate([v[i] for v in per_image]) for i in range(len(per_image[0]))]
        t1 = time.perf_counter()
        feed = {
            name: (images if src is None else values[src])
            for name, src in zip(self._post_inputs, self._sources, strict=True)
        }
        boxes, scores, classes, num = self._post.run(self._outputs, feed)
        self.network_ms = (t1 - t0) * 1e3
        self.post_ms = (time.perf_counter() - t1) * 1e3
        return boxes, scores, classes, num

    def warm_up(self, width: int = 300, height: int = 300, runs: int = 1) -> float:
        """Run every infer request once on a grey image; check the outputs look like detections.

        Returns:
            Milliseconds of the last run.
        """

        image = np.full((1, height, width, 3), 128, np.uint8)
        ms = 0.0
        for _ in range(max(1, runs, self.streams)):
            t = time.perf_counter()
            out = self.predict(image)
            ms = (time.perf_counter() - t) * 1e3
        check_outputs(out, str(self.path))
        return ms

    def close(self) -> None:
        """Release the compiled model and the post-processing session (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._post.close()
        self._requests = queue.SimpleQueue()
        self._compiled = None

    def __enter__(self) -> OpenVinoModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"OpenVinoModel('{self.path}', {self.precision}, streams={self.streams}, "
            f"threads_per_stream={self.threads_per_stream})"
        )


def compile_config(precision: str, streams: int, threads_per_stream: int) -> dict[str, Any]:
    """CPU compile properties: ``streams`` streams of ``threads_per_stream`` threads each."""
    streams, threads = max(1, int(streams)), max(1, int(threads_per_stream))
    return {
        "INFERENCE_PRECISION_HINT": _HINTS[precision],
        "NUM_STREAMS": streams,
        "INFERENCE_NUM_THREADS": streams * threads,
    }


def post_session(prep: PreparedGraph) -> Any:
    """A float32 TF session on the post-processing graph, run in the caller's thread."""

    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default(), tf.device("/device:CPU:0"):
        tf.compat.v1.import_graph_def(prep.post, name="")
    options = SessionOptions(
        device="cpu", intra_op_threads=1, inter_op_threads=-1, precision="fp32"
    )
    return tf.compat.v1.Session(graph=graph, config=session_config(options, "cpu"))


def load_openvino_model(
    path: str | Path,
    *,
    tensors: Any = None,
    precision: str = "auto",
    streams: int = 1,
    threads_per_stream: int = 1,
    allow_unsafe_ops: bool = False,
    cache_dir: str | Path | None = None,
    ir: str | Path | None = None,
) -> OpenVinoModel:
    """Load a frozen SSD graph on the openvino backend.

    Args:
        path: A frozen ``.pb`` (TF OD API tensor names unless ``tensors`` says otherwise).
        tensors: ``TensorNames``; ``None`` for the TF OD API names.
        precision: ``auto``, ``fp32``, ``bf16`` or ``int8`` (int8 needs a quantized model
            that passed the parity gate: ``python main.py model quantize``).
        streams: Infer requests in flight at once (the pipeline's workers).
        threads_per_stream: CPU threads each request uses.
        allow_unsafe_ops: Skip the op allowlist (only for graphs you trust).
        cache_dir: Where converted models are cached (``None``: beside the graph, else the
            user cache).
        ir: Compile this IR instead of the cached one (the quantizer's candidate).

    Raises:
        MissingExtraError: OpenVINO is not installed (exit 2).
        ModelError: Unreadable graph, no cut, conversion failed, no passing int8 model.
    """
    ov = require("openvino")  # first: a missing extra is said before TensorFlow loads
    t0 = time.perf_counter()
    precision = resolve_precision(precision)
    prep = prepare_graph(path, tensors, allow_unsafe_ops=allow_unsafe_ops)
    root = cache_root(prep.path, cache_dir)
    fp32_ir = ir_path(root, prep, "fp32")
    converted, convert_s = False, 0.0
    if not fp32_ir.is_file():
        t = time.perf_counter()
        save_ir(convert_network(prep), fp32_ir)
        converted, convert_s = True, time.perf_counter() - t
        log.info(
            "openvino: converted the network of '%s' in %.1f s -> %s", prep.path, convert_s, fp32_ir
        )
    if ir is not None:
        chosen = Path(ir)
    elif precision == "int8":
        chosen = passing_int8_ir(root, prep)
    else:
        chosen = fp32_ir
    core = ov.Core()
    core.set_property({"CACHE_DIR": str(root / "compiled")})
    config = compile_config(precision, streams, threads_per_stream)
    t = time.perf_counter()
    try:
        compiled = core.compile_model(str(chosen), "CPU", config)
    except Exception as exc:
        raise ModelError(
            f"OpenVINO cannot compile '{chosen}': {str(exc).strip()[:800]}",
            hint="delete the .openvino cache folder and load again",
        ) from exc
    compile_s = time.perf_counter() - t
    session = post_session(prep)
    log.info(
        "openvino: %s network (%s, %d stream(s) x %d thread(s)), TF post-processing; cut at %s",
        precision,
        chosen.name,
        streams,
        threads_per_stream,
        ", ".join(prep.cut),
    )
    return OpenVinoModel(
        prep,
        compiled,
        session,
        precision=precision,
        streams=streams,
        threads_per_stream=threads_per_stream,
        ir=chosen,
        converted=converted,
        convert_s=convert_s,
        compile_s=compile_s,
        load_s=time.perf_counter() - t0,
    )
