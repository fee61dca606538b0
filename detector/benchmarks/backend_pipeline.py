"""The backends section's pipeline figure: every row's process alive at once, taking turns.

A row's pipeline runs (the sample video through the app's pipeline, 2 workers, annotated
video + JSON lines) come from a worker process that loads its model once; the rows take turns
run by run, tf between every two others, and each run's ratio to tf is read against the tf
runs just before and after it, so a busier minute of a shared machine slows both sides.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from detector.benchmarks import media, throughput
from detector.benchmarks.parts import engine, labels_for
from detector.benchmarks.system import median_run, warm_frames
from detector.benchmarks.worker import WorkerSession
from detector.config import DEFAULT_THRESHOLD
from detector.model.backends import load_backend_model

#: Pipeline rounds per repeat (each round: every row once, tf between every two of them).
PIPELINE_ROUNDS_PER_REPEAT = 3


@dataclass(frozen=True)
class PipelineRun:
    """What a row's pipeline session loads and runs (paths as strings: JSON values)."""

    backend: str
    precision: str
    model: str
    video: str
    cache_dir: str
    labels: str | None = None
    frames: int = 60
    warmup: int = 10
    workers: int = 2
    threads: int = 1
    threshold: float = DEFAULT_THRESHOLD


_FIELDS = {f.name for f in fields(PipelineRun)}


def load_row_model(
    backend: str, precision: str, model: Path, workers: int, threads: int, cache_dir: Path
) -> Any:
    """A backend row's model, as every measurement of the backends section loads it."""
    return load_backend_model(
        backend,
        model,
        workers=workers,
        device="cpu",
        intra_op_threads=threads,
        inter_op_threads=-1,
        precision=precision,
        cache_dir=cache_dir,
    )


def pipeline_rounds(**kwargs: Any) -> Iterator[dict[str, Any]]:
    """Worker session (``PipelineRun`` fields as JSON values; others ignored): load the row's
    model once, then one pipeline run on the sample video (2 workers, annotated video + JSON
    lines) per result asked for."""
    a = PipelineRun(**{k: v for k, v in kwargs.items() if k in _FIELDS})
    model = load_row_model(
        a.backend, a.precision, Path(a.model), a.workers, a.threads, Path(a.cache_dir)
    )
    tmp = Path(tempfile.mkdtemp(prefix="detector-bench-backend-"))
    try:
        video = media.probe(Path(a.video), None)
        model.warm_up(video.width, video.height, runs=2)
        warm = warm_frames(a.warmup, a.frames)
        labels = labels_for(Path(a.labels) if a.labels else None)
        for r in itertools.count():
            yield throughput.pipeline_run(
                video,
                engine(model, a.threshold),
                labels,
                a.frames,
                warm,
                tmp / f"pipe{r}",
                workers=a.workers,
            )
    finally:
        model.close()
        shutil.rmtree(tmp, ignore_errors=True)


def pooled_pipeline(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One row's pipeline figure: medians over its runs, the CPU a frame by stage included."""
    merged: dict[str, Any] = median_run(runs)
    stages = [r["cpu_ms_by_stage"] for r in runs if "cpu_ms_by_stage" in r]
    if stages:
        merged["cpu_ms_by_stage"] = median_run(stages)
    return merged


def paired_pipelines(
    rows: Sequence[tuple[str, str, str]],
    common: dict[str, Any],
    rounds: int,
    progress: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Every row's pipeline figure, the rows' processes alive together and taking turns run by
    run. Each round runs tf between every two other rows (tf, a, tf, b, tf, …; the rows'
    order reversed every other round), and a row's ratio to tf is its frames/s over the mean
    of the tf runs just before and after it: a busier minute slows both sides of the ratio.
    ``x_tf`` is the median of a row's ratios, ``x_tf_rounds`` the values."""
    sessions: dict[str, WorkerSession] = {}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in rows}
    ratios: dict[str, list[float]] = {name: [] for name, _, _ in rows}
    errors: dict[str, str] = {}

    def run(name: str) -> dict[str, Any] | None:
        if name in errors:
            return None
        result = sessions[name].next(1800.0)
        if "error" in result:
            errors[name] = str(result["error"])
            return None
        runs[name].append(result)
        return result

    others = [r for r in rows if r[0] != "tf"]
    has_tf = len(others) < len(rows)
    try:
        for name, backend, precision in rows:
            progress(f"backends: pipeline, loading {name}")
            sessions[name] = WorkerSession(
                pipeline_rounds, **common, backend=backend, precision=precision
            )
        for r in range(rounds):
            progress(f"backends: pipeline, round {r + 1}/{rounds}")
            before = run("tf") if has_tf else None
            for name, _, _ in others if r % 2 == 0 else others[::-1]:
                mine = run(name)
                after = run("tf") if has_tf else None
                if mine is not None and before is not None and after is not None:
                    ratios[name].append(2 * mine["fps"] / (before["fps"] + after["fps"]))
                before = after
    finally:
        for session in sessions.values():
            session.close()
    out: dict[str, dict[str, Any]] = {}
    for name, _, _ in rows:
        out[name] = pooled_pipeline(runs[name]) if runs[name] else {}
        if name in errors:
            out[name]["error"] = errors[name]
        if ratios[name]:
            out[name]["x_tf"] = statistics.median(ratios[name])
            out[name]["x_tf_rounds"] = [round(x, 3) for x in ratios[name]]
    return out
