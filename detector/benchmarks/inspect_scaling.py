"""How ``model inspect`` scales with graph size, beside TensorFlow's own parse and import.

Chains of 5,000 to 200,000 ``AddV2`` nodes are written as frozen graphs; each is read in a
fresh process twice — TensorFlow alone (``GraphDef.ParseFromString`` + ``import_graph_def``)
and ``model inspect`` (parse, allowlist, structure check, one import, weights, summary) —
and the wall time, peak memory and time per node are reported side by side: a flat
per-node cost is a linear tool, and the ratio to TensorFlow's own is the overhead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZES = (5_000, 20_000, 50_000, 200_000)

_MEASURE = """
import json, resource, sys, time
from pathlib import Path
from detector.model.session import import_tf
tf = import_tf()
path, mode = Path(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
if mode == "tf":
    g = tf.compat.v1.GraphDef()
    g.ParseFromString(path.read_bytes())
    with tf.Graph().as_default():
        tf.compat.v1.import_graph_def(g, name="")
else:
    from detector.tools.inspect import inspect_path
    from detector.tools.inspect_text import render_text
    render_text(inspect_path(path))
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak}))
"""


_WRITE = """
import sys
import numpy as np
from tensorflow.core.framework import graph_pb2, types_pb2
from tensorflow.python.framework import tensor_util
nodes, path = int(sys.argv[1]), sys.argv[2]
g = graph_pb2.GraphDef()
x = g.node.add(name="x", op="Placeholder")
x.attr["dtype"].type = types_pb2.DT_FLOAT
x.attr["shape"].shape.dim.add(size=-1)
x.attr["shape"].shape.dim.add(size=4)
w = g.node.add(name="w", op="Const")
w.attr["dtype"].type = types_pb2.DT_FLOAT
w.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(np.ones(4, np.float32)))
prev = "x"
for i in range(nodes):
    node = g.node.add(name=f"add_{i}", op="AddV2", input=[prev, "w"])
    node.attr["T"].type = types_pb2.DT_FLOAT
    prev = node.name
open(path, "wb").write(g.SerializeToString())
"""


def write_chain(nodes: int, path: Path) -> Path:
    """A frozen graph: placeholder ``x`` [?,4] → ``nodes`` AddV2 of a constant → the last
    (written in a child process, as every measurement runs)."""
    subprocess.run([sys.executable, "-c", _WRITE, str(nodes), str(path)], check=True, timeout=3600)
    return path


def _measure(path: Path, mode: str, root: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), mode],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"inspect scaling ({mode}, {path.name}) failed: {proc.stderr[-500:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def inspect_scaling(
    sizes: tuple[int, ...] = SIZES, progress: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """One row a size: TF's and inspect's seconds, peak MB, µs per node, and the ratios."""
    root = Path(__file__).resolve().parents[2]
    rows = []
    with tempfile.TemporaryDirectory(prefix="detector-scaling-") as tmp:
        for n in sizes:
            path = write_chain(n, Path(tmp) / f"chain{n}.pb")
            progress(f"inspect scaling: {n:,} nodes")
            tf_run = _measure(path, "tf", root)
            ours = _measure(path, "inspect", root)
            rows.append(
                {
                    "nodes": n,
                    "tf_s": tf_run["seconds"],
                    "inspect_s": ours["seconds"],
                    "tf_peak_mb": tf_run["peak_rss_mb"],
                    "inspect_peak_mb": ours["peak_rss_mb"],
                    "inspect_us_per_node": ours["seconds"] / n * 1e6,
                    "time_ratio": ours["seconds"] / max(tf_run["seconds"], 1e-9),
                    "memory_ratio": ours["peak_rss_mb"] / max(tf_run["peak_rss_mb"], 1e-9),
                }
            )
    return rows


def scaling_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The report's table: one line a size."""
    lines = [
        "model inspect vs TF parse+import (fresh process each; chain of AddV2 nodes)",
        f"{'nodes':>8} {'TF s':>7} {'ours s':>7} {'ratio':>6} {'us/node':>8} "
        f"{'TF MB':>7} {'ours MB':>8} {'ratio':>6}",
    ]
    for r in rows:
        lines.append(
            f"{r['nodes']:>8,} {r['tf_s']:>7.2f} {r['inspect_s']:>7.2f} {r['time_ratio']:>6.2f} "
            f"{r['inspect_us_per_node']:>8.1f} {r['tf_peak_mb']:>7.0f} "
            f"{r['inspect_peak_mb']:>8.0f} {r['memory_ratio']:>6.2f}"
        )
    return lines
