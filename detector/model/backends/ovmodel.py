"""A converted SSD graph at run time: OpenVINO infer requests, then the post-processing.

:class:`OpenVinoModel` has the ``Predictor`` surface of ``detector.engine`` (``predict``,
``warm_up``, ``close``, ``input_size``, ``precision``, ``load_s``). Its post-processing is
:class:`NumpyPost` (the graph's decoding and NMS in NumPy, no TensorFlow) or :class:`TfPost`
(the graph's own post-processing sub-graph in a small TF session, for graphs the NumPy
version does not reproduce).
"""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.errors import ModelError
from detector.model.backends.ssd_post import SsdPostprocess
from detector.model.loader import check_outputs, checked_images
from detector.model.session import SessionOptions, import_tf, session_config

Outputs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class NumpyPost:
    """The graph's post-processing in NumPy, reading the encodings and logits cut tensors."""

    kind = "numpy"

    def __init__(self, post: SsdPostprocess, encodings: str, logits: str) -> None:
        self.post = post
        self.needs = (encodings, logits)

    def __call__(
        self, values: dict[str, np.ndarray], images: np.ndarray, min_score: float | None = None
    ) -> Outputs:
        return self.post.run(values[self.needs[0]], values[self.needs[1]], min_score)

    def close(self) -> None:
        """Nothing to release."""


class TfPost:
    """The graph's post-processing sub-graph in a float32 TF session (caller's thread)."""

    kind = "tf"

    def __init__(self, prep: Any) -> None:
        tf = import_tf()
        graph = tf.Graph()
        with graph.as_default(), tf.device("/device:CPU:0"):
            tf.compat.v1.import_graph_def(prep.post, name="")
        options = SessionOptions(
            device="cpu", intra_op_threads=1, inter_op_threads=-1, precision="fp32"
        )
        self._session = tf.compat.v1.Session(graph=graph, config=session_config(options, "cpu"))
        self._inputs = list(zip(prep.post_inputs, prep.cut, strict=True))
        self._input_name = prep.input_name
        self._outputs = list(prep.outputs)
        self.needs = tuple(t for t in prep.cut if t != prep.input_name)

    def __call__(
        self, values: dict[str, np.ndarray], images: np.ndarray, min_score: float | None = None
    ) -> Outputs:
        feed = {
            name: (images if cut == self._input_name else values[cut]) for name, cut in self._inputs
        }
        boxes, scores, classes, num = self._session.run(self._outputs, feed)
        return boxes, scores, classes, num

    def close(self) -> None:
        self._session.close()


class OpenVinoModel:
    """A frozen SSD graph run as OpenVINO network + NumPy (or TF) post-processing.

    Same surface as ``DetectionModel`` (``predict``, ``warm_up``, ``close``, context
    manager, ``path``, ``format``, ``device``, ``precision``, ``input_size``, ``load_s``).
    ``predict`` is thread-safe: each caller takes one of ``streams`` infer requests, so that
    many frames are in flight at once (one per pipeline worker).

    Attributes:
        backend: ``openvino``.
        ir: The IR file the network was compiled from.
        post_kind: ``numpy`` or ``tf``: where the decoding and NMS run.
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
        graph: Any,
        compiled: Any,
        post: NumpyPost | TfPost,
        *,
        precision: str,
        streams: int,
        threads_per_stream: int,
        ir: Path,
        converted: bool = False,
        convert_s: float = 0.0,
        compile_s: float = 0.0,
        load_s: float = 0.0,
    ) -> None:
        self.path = graph.path
        self.precision = precision
        self.streams = streams
        self.threads_per_stream = threads_per_stream
        self.input_size = graph.input_size
        self.ir = ir
        self.post_kind = post.kind
        self.converted = converted
        self.convert_s = convert_s
        self.compile_s = compile_s
        self.load_s = load_s
        self.network_ms = 0.0
        self.post_ms = 0.0
        self._compiled = compiled
        self._post = post
        self._outputs = output_indices(compiled, post.needs, graph.path)
        #: ``predict(..., min_score=)`` skips rows below it (only the NumPy post-processing).
        self.takes_min_score = post.kind == "numpy"
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(max(1, streams)):
            request = compiled.create_infer_request()
            _touch_arrays(request, self._outputs.values())
            self._requests.put(request)
        self._closed = False

    def _network(self, image: np.ndarray) -> list[np.ndarray]:
        """One RGB image ``[H, W, 3]`` through the network; the cut tensors' values."""
        if self.input_size is not None and image.shape[:2] != self.input_size:
            h, w = self.input_size
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        request = self._requests.get()
        try:
            request.infer({0: np.ascontiguousarray(image[np.newaxis])})
            return [request.get_output_tensor(i).data.copy() for i in self._outputs.values()]
        finally:
            self._requests.put(request)

    def predict(self, images_rgb: np.ndarray, min_score: float | None = None) -> Outputs:
        """Detect objects in RGB ``uint8 [B, H, W, 3]`` images (any size: resized as needed).

        Args:
            images_rgb: The images.
            min_score: Leave out detections scoring below this (the rows kept are the
                graph's own rows above it); ``None`` gives every row the graph gives.

        Returns:
            ``(boxes, scores, classes, num)`` as the whole TF graph gives them: ``[B, K, 4]``
            normalized ``[ymin, xmin, ymax, xmax]``, ``[B, K]``, ``[B, K]`` float label-map
            ids, ``[B]``.
        """
        images = checked_images(images_rgb, self.path, closed=self._closed)
        if images.dtype != np.uint8:
            images = np.clip(images, 0, 255).astype(np.uint8)
        t0 = time.perf_counter()
        per_image = [self._network(im) for im in images]
        values = {
            name: np.concatenate([v[i] for v in per_image]) for i, name in enumerate(self._outputs)
        }
        t1 = time.perf_counter()
        out = self._post(values, images, min_score)
        self.network_ms = (t1 - t0) * 1e3
        self.post_ms = (time.perf_counter() - t1) * 1e3
        return out

    def postprocess(self, values: dict[str, np.ndarray], min_score: float | None = None) -> Outputs:
        """The post-processing alone, on network outputs keyed by cut tensor name."""
        return self._post(values, np.zeros((1, 1, 1, 3), np.uint8), min_score)

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
        """Release the compiled model and the post-processing (idempotent)."""
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
            f"OpenVinoModel('{self.path}', {self.precision}, post={self.post_kind}, "
            f"streams={self.streams}, threads_per_stream={self.threads_per_stream})"
        )


def _touch_arrays(request: Any, outputs: Any) -> None:
    """Read the request's tensors as NumPy arrays once, on this thread.

    OpenVINO's Python binding sets up its NumPy bridge on first use, and two threads making
    that first use at once can deadlock each other (a one-time initializer waiting for the GIL
    held by a thread waiting for that initializer): about one fresh process in four whose
    pipeline workers ran their first frames together hung for good. Done here, at load, every
    later call finds it ready.
    """
    request.get_input_tensor(0).data  # noqa: B018 (the first use is the point)
    for index in outputs:
        request.get_output_tensor(index).data  # noqa: B018


def output_indices(compiled: Any, needs: tuple[str, ...], path: Path) -> dict[str, int]:
    """Which compiled network output holds each cut tensor the post-processing reads."""
    names = [set(o.get_names()) for o in compiled.outputs]
    found: dict[str, int] = {}
    for tensor in needs:
        index = next((i for i, n in enumerate(names) if tensor in n), None)
        if index is None:
            raise ModelError(
                f"the converted network of '{path}' has no output {tensor!r}",
                hint="delete the .openvino cache folder and load again",
            )
        found[tensor] = index
    return found
