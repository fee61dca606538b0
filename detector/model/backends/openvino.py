"""Run a frozen SSD graph's network in OpenVINO and its box decoding + NMS in NumPy.

OpenVINO has no conversion rule for ``CombinedNonMaxSuppression``, so the graph is cut where
``model.split`` cuts it (:func:`detector.model.split.find_split`): the network part (image →
box encodings and class scores) is converted with ``openvino.convert_model`` straight from
the ``GraphDef`` and compiled for the CPU; the post-processing runs in NumPy
(:mod:`detector.model.backends.ssd_post`, its settings read from the graph and checked
against it at conversion), or, for a graph it does not reproduce, in a small TF session.
Images go in as RGB ``uint8 [B, H, W, 3]``; out come the TF OD API ``(boxes, scores,
classes, num)``, normalized ``[ymin, xmin, ymax, xmax]`` boxes.

Conversion happens once (:mod:`detector.model.backends.ircache`): a later load reads the
cached manifest, IR and post-processing and imports neither TensorFlow nor the graph. The
graph is checked against the op allowlist before anything is converted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.errors import ConfigError, ModelError
from detector.imagefiles import load_images
from detector.model.backends.extra import require
from detector.model.backends.ircache import (
    CachedGraph,
    cache_key,
    cache_root,
    file_sha256,
    gated_rest_precision,
    ir_path,
    manifest_path,
    passing_int8_ir,
    read_manifest,
    save_ir,
    write_json,
)
from detector.model.backends.nms_graph import Unsupported
from detector.model.backends.ovmodel import NumpyPost, OpenVinoModel, TfPost, output_indices
from detector.model.backends.ssd_graph import post_roles, read_ssd_post
from detector.model.backends.ssd_post import SsdPostprocess
from detector.model.formats import detect_format
from detector.model.graphfile import import_graph_def, read_graph_def, tensor_name
from detector.model.loader import TensorNames
from detector.model.session import cpu_has_bf16
from detector.model.split import find_split, split_graph_defs
from detector.paths import SAMPLES_DIR

log = logging.getLogger(__name__)

#: OpenVINO's ``INFERENCE_PRECISION_HINT`` per precision (int8: :func:`int8_rest_precision`).
_HINTS = {"fp32": "f32", "bf16": "bf16"}
_RESIZE_OPS = ("ResizeBilinear", "ResizeNearestNeighbor", "ResizeArea", "ResizeBicubic")
_PASS_THROUGH_OPS = ("Cast", "Identity", "ToFloat")


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
    input_name = tensor_name(names.input)
    outputs = tuple(tensor_name(n) for n in names.outputs())
    point = find_split(graph_def, outputs)
    whole = import_graph_def(graph_def, path)
    dtypes = {t: whole.get_tensor_by_name(t).dtype for t in point.tensors}
    net_gd, post_gd, post_inputs = split_graph_defs(graph_def, point, outputs, dtypes)
    return PreparedGraph(
        path=path,
        sha256=file_sha256(path),
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


# ---------------------------------------------------------------------------------- load


def int8_rest_precision() -> str:
    """The precision of an int8 network's unquantized layers when a new one is gated: bf16 on
    a CPU with native bfloat16 (on an AMX CPU, 15% faster than f32 once the network's no-op
    resize is gone), else f32. A gated model keeps the one it passed with (its report)."""
    return "bf16" if cpu_has_bf16() else "f32"


def compile_config(
    precision: str, streams: int, threads_per_stream: int, rest: str | None = None
) -> dict[str, Any]:
    """CPU compile properties: ``streams`` streams of ``threads_per_stream`` threads each
    (OpenVINO itself runs no more streams than the CPU has cores; further infer requests wait
    for a free one); ``rest``: int8's unquantized layers (default :func:`int8_rest_precision`)."""
    streams, threads = max(1, int(streams)), max(1, int(threads_per_stream))
    hint = _HINTS.get(precision) or rest or int8_rest_precision()
    return {
        "INFERENCE_PRECISION_HINT": hint,
        "NUM_STREAMS": streams,
        "INFERENCE_NUM_THREADS": streams * threads,
    }


def tensor_names(tensors: Any) -> dict[str, Any]:
    """The input and output tensor names a graph is read with (``None``: the TF OD API's)."""

    names = tensors if tensors is not None else TensorNames()
    return {
        "input": tensor_name(names.input),
        "outputs": [tensor_name(n) for n in names.outputs()],
    }


def cached_graph(path: Path, tensors: Any, root: Path) -> tuple[CachedGraph | None, Path]:
    """The cached conversion of a graph (``None`` when there is none) and its manifest path."""
    sha = file_sha256(path)
    manifest = manifest_path(root, path, sha, tensor_names(tensors))
    return read_manifest(manifest, path, sha), manifest


def converted_graph(
    path: str | Path,
    tensors: Any = None,
    *,
    allow_unsafe_ops: bool = False,
    cache_dir: str | Path | None = None,
    sample_images: Sequence[np.ndarray] | None = None,
) -> tuple[CachedGraph, Path, PreparedGraph | None, float]:
    """The cached conversion of a graph, made now when there is none.

    A cache hit reads only the manifest (no TensorFlow). A miss reads and checks the graph,
    converts its network to IR, reads its post-processing for NumPy (or records why not),
    and writes the manifest.

    Returns:
        ``(graph, cache root, PreparedGraph or None on a hit, seconds converting)``.

    Raises:
        ModelError: Not a readable frozen graph, no cut, conversion failed.
        UnsafeGraphError: The graph holds ops outside the allowlist.
    """
    path = Path(path)
    fmt = detect_format(path)  # a missing path or unknown contents: ModelError
    if fmt not in ("frozen_pb", "pbtxt"):
        raise ModelError(
            f"the openvino backend runs frozen graphs; '{path}' is a {fmt}",
            hint="freeze it first: python main.py model convert MODEL -o frozen_inference_graph.pb",
        )
    root = cache_root(path, cache_dir)
    cached, manifest = cached_graph(path, tensors, root)
    if cached is not None and (allow_unsafe_ops or not cached.allow_unsafe_ops):
        return cached, root, None, 0.0
    t = time.perf_counter()
    prep = prepare_graph(path, tensors, allow_unsafe_ops=allow_unsafe_ops)
    graph = _convert(prep, root, allow_unsafe_ops, sample_images)
    write_json(manifest, graph.to_dict())
    convert_s = time.perf_counter() - t
    log.info("openvino: converted '%s' in %.1f s (cache '%s')", path, convert_s, root)
    return graph, root, prep, convert_s


def _convert(
    prep: PreparedGraph,
    root: Path,
    allow_unsafe_ops: bool,
    sample_images: Sequence[np.ndarray] | None,
) -> CachedGraph:
    """Write the IR and the NumPy post-processing of a prepared graph; its manifest entry."""
    key = cache_key(prep)
    fp32_ir = ir_path(root, prep, "fp32")
    if not fp32_ir.is_file():
        save_ir(convert_network(prep), fp32_ir)
    post_file: str | None = None
    post_inputs: tuple[str, ...] = ()
    reason: str | None = None
    try:
        outputs = network_outputs(fp32_ir, prep, sample_images)
        post = read_ssd_post(prep, [(o[0], o[1]) for o in outputs])
        post_file = ir_path(root, prep, "post").with_suffix(".npz").name
        post.save(root / post_file)
        post_inputs = post_roles(prep)
    except Unsupported as exc:
        reason = str(exc)
        log.warning("openvino: post-processing of '%s' stays in TensorFlow: %s", prep.path, reason)
    return CachedGraph(
        path=prep.path,
        sha256=prep.sha256,
        input_name=prep.input_name,
        outputs=prep.outputs,
        cut=prep.cut,
        input_size=prep.input_size,
        key=key,
        allow_unsafe_ops=allow_unsafe_ops,
        post_file=post_file,
        post_inputs=post_inputs,
        post_reason=reason,
    )


def _post_inputs(prep: PreparedGraph) -> tuple[str, ...]:
    """The ``(encodings, logits)`` cut tensors, in the order the NumPy version reads them."""
    return post_roles(prep)


def network_outputs(
    ir: Path,
    prep: PreparedGraph,
    images: Sequence[np.ndarray] | None = None,
    limit: int | None = 6,
) -> list[tuple[np.ndarray, ...]]:
    """The fp32 network's cut tensors on (at most ``limit``) images, as ``post_roles`` orders them.

    ``images`` (RGB) default to the sample photos when the checkout has them, else to a
    few synthetic scenes.
    """
    ov = require("openvino")
    compiled = ov.Core().compile_model(str(ir), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    index = output_indices(compiled, post_roles(prep), prep.path)
    request = compiled.create_infer_request()
    out = []
    for image in list(images if images is not None else check_images())[:limit]:
        if prep.input_size is not None:
            image = cv2.resize(image, (prep.input_size[1], prep.input_size[0]))
        request.infer({0: np.ascontiguousarray(image[np.newaxis])})
        out.append(tuple(request.get_output_tensor(i).data.copy() for i in index.values()))
    return out


def check_images() -> list[np.ndarray]:
    """RGB images to check a conversion on: the sample photos, else synthetic scenes."""
    images = load_images(sorted((SAMPLES_DIR / "photos").glob("*.jpg"))[:6], rgb=True)
    if images:
        return images
    rng = np.random.default_rng(0)
    return [cv2.GaussianBlur(rng.integers(0, 256, (300, 300, 3), np.uint8), (9, 9), 3)] * 3


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
    ov = require("openvino")  # first: a missing extra is said before anything loads
    t0 = time.perf_counter()
    precision = resolve_precision(precision)
    graph, root, prep, convert_s = converted_graph(
        path, tensors, allow_unsafe_ops=allow_unsafe_ops, cache_dir=cache_dir
    )
    chosen = Path(ir) if ir is not None else _ir_for(root, graph, precision)
    t = time.perf_counter()
    rest = gated_rest_precision(chosen) if precision == "int8" else None
    config = compile_config(precision, streams, threads_per_stream, rest)
    compiled = _compile(ov, chosen, root, config)
    compile_s = time.perf_counter() - t
    post = _post_for(graph, root, prep, allow_unsafe_ops=allow_unsafe_ops, tensors=tensors)
    where = "NumPy" if post.kind == "numpy" else f"TensorFlow ({graph.post_reason})"
    shape = f"{streams} request(s) of {threads_per_stream} thread(s)"
    log.info(
        "openvino: %s network (%s, %s), %s post-processing", precision, chosen.name, shape, where
    )
    return OpenVinoModel(
        graph,
        compiled,
        post,
        precision=precision,
        streams=streams,
        threads_per_stream=threads_per_stream,
        ir=chosen,
        converted=prep is not None,
        convert_s=convert_s,
        compile_s=compile_s,
        load_s=time.perf_counter() - t0,
    )


def _ir_for(root: Path, graph: CachedGraph, precision: str) -> Path:
    """The IR a precision compiles: the gated int8 model, else the fp32 conversion."""
    return passing_int8_ir(root, graph) if precision == "int8" else ir_path(root, graph, "fp32")


def read_network(core: Any, ir: Path) -> Any:
    """The IR as an ``openvino.Model``, without the graph's resizes that keep the size.

    The OD API graphs resize every image to the network's size; the app resizes it before,
    so with the input fixed to that size the graph's resize (an ``Interpolate``) maps each
    pixel onto itself yet costs a third of the bf16 network's time. Its consumers read its
    input instead: the same numbers, sooner.
    """
    model = core.read_model(str(ir))
    dropped = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Interpolate":
            continue
        before, after = op.input_value(0).get_partial_shape(), op.output(0).get_partial_shape()
        if before.is_static and before == after:
            for target in list(op.output(0).get_target_inputs()):
                target.replace_source_output(op.input_value(0))
            dropped += 1
    if dropped:
        model.validate_nodes_and_infer_types()
    return model


def _compile(ov: Any, ir: Path, root: Path, config: dict[str, Any]) -> Any:
    """``ir`` (:func:`read_network`) compiled for the CPU with ``config``, through OpenVINO's
    model cache in ``root``.

    Raises:
        ModelError: OpenVINO cannot compile it (with what it said).
    """
    core = ov.Core()
    core.set_property({"CACHE_DIR": str(root / "compiled")})
    try:
        return core.compile_model(read_network(core, ir), "CPU", config)
    except Exception as exc:
        raise ModelError(
            f"OpenVINO cannot compile '{ir}': {str(exc).strip()[:800]}",
            hint="delete the .openvino cache folder and load again",
        ) from exc


def _post_for(
    graph: CachedGraph,
    root: Path,
    prep: PreparedGraph | None,
    *,
    allow_unsafe_ops: bool,
    tensors: Any,
) -> NumpyPost | TfPost:
    """NumPy post-processing when the cache has it; else the graph's own, in TensorFlow."""
    if graph.post_file:
        post = SsdPostprocess.load(root / graph.post_file)
        return NumpyPost(post, graph.post_inputs[0], graph.post_inputs[1])
    if prep is None:
        prep = prepare_graph(graph.path, tensors, allow_unsafe_ops=allow_unsafe_ops)
    return TfPost(prep)
