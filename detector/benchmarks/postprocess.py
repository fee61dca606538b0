"""SSD post-processing a frame: the graph's own (TensorFlow) beside the NumPy version, same inputs.

The network part runs once per frame (OpenVINO, fp32) to record its outputs; then each
post-processing is timed on exactly those outputs: the graph's post-processing sub-graph in
a TF session (what the ``tf`` backend runs after its network), the NumPy version giving every
row the graph gives (up to its total limit), and the NumPy version keeping only detections at
the app's threshold (what a run uses). The rows are compared with TF's as they are timed
(frames whose scores tie exactly, as flat synthetic frames do, may keep another tied box).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.benchmarks.media import decode_frames
from detector.model.backends.ircache import ir_path, save_ir
from detector.model.backends.nms_graph import Unsupported
from detector.model.backends.openvino import convert_network, network_outputs, prepare_graph
from detector.model.backends.ovmodel import TfPost
from detector.model.backends.ssd_graph import compare_outputs, post_roles, read_ssd_post


def post_timing(model: Path, video: Path, frames: int, threshold: float) -> dict[str, Any]:
    """Median ms a frame of each post-processing, and how many frames agree with TF's."""

    prep = prepare_graph(model)
    with tempfile.TemporaryDirectory(prefix="detector-bench-post-") as tmp:
        ir = ir_path(Path(tmp), prep, "fp32")
        save_ir(convert_network(prep), ir)
        rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in decode_frames(video, frames)]
        outputs = network_outputs(ir, prep, rgb, limit=None)
        checks = network_outputs(ir, prep)  # the images a conversion is checked on
    try:
        post = read_ssd_post(prep, [(o[0], o[1]) for o in checks])
    except Unsupported as exc:
        return {"error": f"no NumPy post-processing for this graph: {exc}"}
    tf_post = TfPost(prep)
    roles = post_roles(prep)
    times: dict[str, list[float]] = {"tf": [], "numpy": [], "numpy_threshold": []}
    agree = 0
    try:
        blank = np.zeros((1, 1, 1, 3), np.uint8)
        for e, lg in outputs:
            values = dict(zip(roles, (e, lg), strict=True))
            want = _timed(times["tf"], tf_post, values, blank)
            got = _timed(times["numpy"], post.run, e, lg)
            _timed(times["numpy_threshold"], post.run, e, lg, threshold)
            agree += compare_outputs(want, got) == ""
    finally:
        tf_post.close()
    out: dict[str, Any] = {
        key: {"ms_p50": statistics.median(v[2:] or v), "ms_mean": float(np.mean(v[2:] or v))}
        for key, v in times.items()
    }
    out.update(frames=len(outputs), agree_with_tf=agree, threshold=threshold)
    return out


def _timed(into: list[float], fn: Any, *args: Any) -> Any:
    t = time.perf_counter()
    result = fn(*args)
    into.append((time.perf_counter() - t) * 1e3)
    return result


def post_worker(model: str, video: str, frames: int, threshold: float) -> dict[str, Any]:
    """Worker task: ``post_timing`` in a process of its own."""
    return post_timing(Path(model), Path(video), frames, threshold)
