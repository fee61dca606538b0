"""The bench's registry of sections and its one worker entry point."""

from __future__ import annotations

import pytest

from detector.benchmarks.memory import memory_worker
from detector.benchmarks.sections import REGISTRY, SECTIONS, default_sections
from detector.benchmarks.system import machine_info
from detector.benchmarks.worker import run_in_worker
from detector.model.options import ModelOptions


def test_quick_and_full_runs_pick_their_sections_from_the_registry() -> None:
    full, quick = set(default_sections()), set(default_sections(quick=True))
    assert {"ray", "backends"} <= full and not {"ray", "backends"} & quick
    assert quick < full and "explain" not in full  # on demand only
    assert set(SECTIONS) == set(REGISTRY) >= full
    # sections sharing a result key measure it once (model and tflite: the latency lines)
    assert REGISTRY["model"].key == REGISTRY["tflite"].key == "model_latency"


def test_a_worker_runs_a_bench_function_in_a_fresh_process() -> None:
    info = run_in_worker(machine_info, 120.0)
    assert info["cores"] and "numpy" in info["versions"]


def test_a_worker_failure_comes_back_as_an_error_with_the_reason(tmp_path) -> None:
    out = run_in_worker(
        memory_worker,
        120.0,
        model=ModelOptions(tmp_path / "missing.pb", backend="tf").describe(),
        video=tmp_path / "missing.avi",
        first=1,
        last=2,
    )
    assert set(out) == {"error"} and "missing.avi" in out["error"]


def test_only_bench_functions_run_in_a_worker() -> None:
    with pytest.raises(ValueError, match=r"not in detector\.benchmarks"):
        run_in_worker(pytest.approx, 10.0)
