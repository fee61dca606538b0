"""A graph's post-processing against its NumPy version: the TF outputs and the row-for-row check."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def rgb_photos(folder: Path) -> list[np.ndarray]:
    """Every image of ``folder`` that decodes, as RGB, in name order."""
    frames = []
    for path in sorted(Path(folder).iterdir()):
        bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        if bgr is not None:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return frames


def tf_outputs(graph: Path, prep: object, images: list[np.ndarray]) -> list[tuple]:
    """Per image: the cut tensors and the graph's own four outputs, from one TF session."""
    from detector.model.graphfile import import_graph_def, read_graph_def
    from detector.model.session import import_tf

    tf = import_tf()
    tf_graph = import_graph_def(read_graph_def(graph, "frozen_pb"), graph)
    fetch = [*prep.cut, *prep.outputs]  # type: ignore[attr-defined]
    with tf.compat.v1.Session(graph=tf_graph) as session:
        return [tuple(session.run(fetch, {prep.input_name: im[None]})) for im in images]  # type: ignore[attr-defined]


def assert_same(want: tuple, got: tuple, width: int, height: int) -> None:
    """Row for row (rows of equal score in any order): score within 1e-4, box within 0.5 px."""
    n = int(want[3][0])
    assert int(got[3][0]) == n
    scale = np.array([height, width, height, width])

    def rows(out: tuple) -> np.ndarray:
        r = np.column_stack([out[1][0, :n], out[2][0, :n], out[0][0, :n] * scale])
        return r[np.lexsort((*r[:, 5:1:-1].T, r[:, 1], -r[:, 0]))]

    w, g = rows(want), rows(got)
    np.testing.assert_allclose(g[:, 0], w[:, 0], atol=1e-4)
    np.testing.assert_array_equal(g[:, 1], w[:, 1])
    np.testing.assert_allclose(g[:, 2:], w[:, 2:], atol=0.5)
