"""Run an SSD frozen graph as two sub-graphs in two threads: network, then post-processing.

The cut comes from :func:`detector.model.split.find_split`. The network runs on a GPU when
TensorFlow sees one (else the CPU), the post-processing (box decoding + NMS, which has no GPU
kernel) always on the CPU, each in its own thread; ``SplitModel`` has the same surface as
``DetectionModel``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.config import OD_INPUT, OD_OUTPUTS
from detector.errors import ModelError
from detector.model.graphfile import read_graph_def, tensor_name
from detector.model.session import (
    SessionOptions,
    import_tf,
    resolve_device,
    resolve_precision,
    session_config,
)
from detector.model.split import SplitPoint, find_split, split_graph_defs

log = logging.getLogger(__name__)


@dataclass
class _Job:
    images: np.ndarray
    future: Future[tuple[np.ndarray, ...]]


class SplitModel:
    """A detector run as two sub-graphs in two threads: network, then post-processing.

    Same surface as ``DetectionModel`` (``path``, ``format``, ``device``, ``predict``,
    ``close``, context manager) plus ``submit`` for keeping both stages busy: while the
    post-processing thread handles batch *i*, the network thread runs batch *i + 1*.
    ``predict`` is thread-safe; concurrent callers overlap the same way.

    Attributes:
        point: The split that was found.
        network_ms: Network time of the last batch, ms.
        post_ms: Post-processing time of the last batch, ms.
    """

    format = "frozen_pb"
    input_size: tuple[int, int] | None = None  # any image size: the graph resizes

    def __init__(
        self,
        path: Path,
        net_session: Any,
        post_session: Any,
        input_name: str,
        cut: Sequence[str],
        post_inputs: Sequence[str],
        outputs: Sequence[str],
        point: SplitPoint,
        device: str,
        queue_size: int = 2,
        precision: str = "fp32",
        load_s: float = 0.0,
    ) -> None:
        self.path = path
        self.device = device
        self.precision = precision
        self.load_s = load_s
        self.point = point
        self.network_ms = 0.0
        self.post_ms = 0.0
        self._net, self._post = net_session, post_session
        self._input = input_name
        self._cut = list(cut)
        self._post_inputs = list(post_inputs)
        self._outputs = list(outputs)
        self._net_q: queue.Queue[_Job | None] = queue.Queue(queue_size)
        self._post_q: queue.Queue[tuple[_Job, list[np.ndarray]] | None] = queue.Queue(queue_size)
        self._closed = False
        self._threads = [
            threading.Thread(target=self._network_loop, name="split-network", daemon=True),
            threading.Thread(target=self._post_loop, name="split-post", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _network_loop(self) -> None:
        while True:
            job = self._net_q.get()
            if job is None:
                self._post_q.put(None)
                return
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                t = time.perf_counter()
                values = self._net.run(self._cut, {self._input: job.images})
                self.network_ms = (time.perf_counter() - t) * 1e3
            except BaseException as exc:  # handed to the caller through the future
                job.future.set_exception(exc)
                continue
            self._post_q.put((job, values))

    def _post_loop(self) -> None:
        while True:
            item = self._post_q.get()
            if item is None:
                return
            job, values = item
            try:
                t = time.perf_counter()
                feed = dict(zip(self._post_inputs, values, strict=True))
                out = self._post.run(self._outputs, feed)
                self.post_ms = (time.perf_counter() - t) * 1e3
                job.future.set_result(tuple(out))
            except BaseException as exc:
                job.future.set_exception(exc)

    def submit(self, images_rgb: np.ndarray) -> Future[tuple[np.ndarray, ...]]:
        """Queue a batch; the future gives ``(boxes, scores, classes, num)`` like ``predict``."""
        if self._closed:
            raise ModelError(f"split model '{self.path}' is closed")
        fut: Future[tuple[np.ndarray, ...]] = Future()
        self._net_q.put(_Job(np.asarray(images_rgb), fut))
        return fut

    def predict(self, images_rgb: np.ndarray) -> tuple[np.ndarray, ...]:
        """Run both stages on RGB ``uint8 [B, H, W, 3]`` images.

        Returns:
            ``(boxes, scores, classes, num)`` as the whole graph gives them: boxes are
            normalized ``[ymin, xmin, ymax, xmax]``, classes float COCO ids.
        """
        return self.submit(images_rgb).result()

    def warm_up(self, width: int = 300, height: int = 300, runs: int = 1) -> float:
        """Run both stages on grey images (graph optimisation happens on the first run).

        Returns:
            Milliseconds of the last warm-up run.

        Raises:
            ModelError: The outputs do not look like detections.
        """
        image = np.full((1, height, width, 3), 128, np.uint8)
        ms = 0.0
        for _ in range(max(1, runs)):
            t = time.perf_counter()
            out = self.predict(image)
            ms = (time.perf_counter() - t) * 1e3
        if len(out) != 4 or np.asarray(out[0]).shape[-1:] != (4,):
            raise ModelError(
                f"split model '{self.path}' gives outputs that are not detections",
                hint="check the model.*_tensor names",
            )
        return ms

    def close(self) -> None:
        """Stop both threads (finishing queued batches) and close both sessions."""
        if self._closed:
            return
        self._closed = True
        self._net_q.put(None)
        for t in self._threads:
            t.join(timeout=10.0)
        self._net.close()
        self._post.close()

    def __enter__(self) -> SplitModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_split_model(
    path: str | Path,
    *,
    tensors: Any = None,
    device: str = "auto",
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    allow_memory_growth: bool = True,
    allow_unsafe_ops: bool = False,
    precision: str = "auto",
) -> SplitModel:
    """Load a frozen SSD graph as a ``SplitModel``.

    Args:
        path: A frozen ``.pb`` (TF OD API tensor names by default).
        tensors: An object with ``input, boxes, scores, classes, num`` tensor names
            (``TensorNames``); ``None`` for the TF OD API names.
        device: ``auto`` (network on the first GPU when present), ``cpu`` or ``gpu``.
        intra_op_threads: Threads inside one op, per session (0: TF's default).
        inter_op_threads: Ops run in parallel, per session (0: TF's default).
        allow_memory_growth: Let the GPU session grow its memory instead of taking it all.
        allow_unsafe_ops: Skip the op allowlist (only for graphs you trust).
        precision: CPU precision of both sessions (``SessionOptions.precision``).

    Raises:
        ModelError: Unreadable file, missing tensors, or a graph with no split.
    """

    import_tf()
    t0 = time.perf_counter()
    path = Path(path)
    parts = _split_parts(path, tensors, allow_unsafe_ops)
    used = resolve_device(device)
    net_device = "/device:GPU:0" if used == "gpu" else "/device:CPU:0"
    options = SessionOptions(
        device, allow_memory_growth, intra_op_threads, inter_op_threads, precision
    )
    net_sess = _session(parts.network, net_device, options, used)
    post_sess = _session(parts.post, "/device:CPU:0", options, "cpu")
    point = parts.point
    log.info(
        "split model: network (%d ops) on %s, post-processing (%d ops) on CPU, cut at %s",
        len(point.network_nodes),
        net_device.rsplit("/", 1)[-1].replace("device:", ""),
        len(point.post_nodes),
        ", ".join(point.tensors),
    )
    return SplitModel(
        path,
        net_sess,
        post_sess,
        parts.input_name,
        list(point.tensors),
        parts.post_inputs,
        parts.outputs,
        point,
        used,
        precision=resolve_precision(precision) if used == "cpu" else "fp32",
        load_s=time.perf_counter() - t0,
    )


@dataclass(frozen=True)
class _SplitParts:
    """A frozen graph cut in two: the GraphDef of each side and the names that join them."""

    input_name: str
    outputs: list[str]
    point: SplitPoint
    network: Any
    post: Any
    post_inputs: list[str]


def _split_parts(path: Path, tensors: Any, allow_unsafe_ops: bool) -> _SplitParts:
    """Read the graph at ``path``, find its split and build the two sides' GraphDefs."""
    tf = import_tf()
    names = (
        (tensors.input, tensors.boxes, tensors.scores, tensors.classes, tensors.num)
        if tensors is not None
        else (OD_INPUT, *OD_OUTPUTS)
    )
    input_name, outputs = tensor_name(names[0]), [tensor_name(n) for n in names[1:]]
    graph_def = read_graph_def(path, allow_unsafe_ops=allow_unsafe_ops)
    point = find_split(graph_def, outputs)
    whole = tf.Graph()
    with whole.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    dtypes = {t: whole.get_tensor_by_name(t).dtype for t in point.tensors}
    if input_name in point.tensors:  # post-processing reads the image itself (e.g. its shape)
        log.debug("split: the post-processing reads the input tensor %s", input_name)
    net_gd, post_gd, post_inputs = split_graph_defs(graph_def, point, outputs, dtypes)
    return _SplitParts(input_name, outputs, point, net_gd, post_gd, list(post_inputs))


def _session(graph_def: Any, device: str, options: SessionOptions, on: str) -> Any:
    """A session over ``graph_def`` imported on ``device`` (``on``: ``cpu`` or ``gpu``)."""
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default(), tf.device(device):
        tf.compat.v1.import_graph_def(graph_def, name="")
    return tf.compat.v1.Session(graph=graph, config=session_config(options, on))
