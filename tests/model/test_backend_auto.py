"""backend auto: openvino on the CPU when the graph passes its gate, else tf, always with a reason;
a run on a converted graph imports no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli_run import ROOT
from helpers.tiny_models import build_saved_model
from helpers.tiny_ssd import build_tiny_ssd

from detector.model.backends import load_backend_model, openvino_available
from detector.model.backends.auto import choose_backend, is_decided

pytestmark = pytest.mark.skipif(not openvino_available(), reason="the openvino extra is missing")


@pytest.mark.e2e
def test_the_default_model_runs_on_openvino_with_numpy_post_processing(
    default_graph: Path,
) -> None:
    choice = choose_backend(default_graph)
    assert choice.backend == "openvino", choice
    assert choice.precision in ("bf16", "fp32", "int8")
    assert "parity gate" in choice.reason
    assert is_decided(default_graph)  # the verdict is cached beside the IR


@pytest.mark.tf
def test_a_tiny_ssd_converts_and_passes_on_first_use(tmp_path: Path) -> None:
    graph = build_tiny_ssd(tmp_path / "tiny.pb")
    assert not is_decided(graph, cache_dir=tmp_path / "c")
    with load_backend_model("auto", graph, cache_dir=tmp_path / "c") as model:
        assert model.backend_choice.backend == "openvino", model.backend_choice
        assert model.backend == "openvino" and model.post_kind == "numpy"
    assert is_decided(graph, cache_dir=tmp_path / "c")
    gates = list((tmp_path / "c").glob("*.gate-*.json"))
    assert len(gates) == 1 and json.loads(gates[0].read_text())["passed"] is True


@pytest.mark.tf
def test_what_the_fast_path_cannot_take_falls_back_to_tf_with_a_reason(tmp_path: Path) -> None:
    tiny = build_tiny_ssd(tmp_path / "tiny.pb")
    assert choose_backend(tiny, split=True).reason.startswith("model.split")
    assert "GPU" in choose_backend(tiny, device="gpu").reason
    no_nms = build_tiny_ssd(tmp_path / "no_nms.pb", nms=False)
    choice = choose_backend(no_nms, cache_dir=tmp_path / "c")
    assert choice.backend == "tf" and "cannot take this graph" in choice.reason
    assert "\n" not in choice.reason
    saved = build_saved_model(tmp_path / "sm")
    choice = choose_backend(saved)
    assert choice.backend == "tf" and "saved_model" in choice.reason
    with load_backend_model("auto", no_nms, cache_dir=tmp_path / "c") as model:
        assert model.backend_choice.backend == "tf"
        assert getattr(model, "backend", "tf") == "tf"


def _runs_without_tensorflow(default_graph: Path, code: str) -> str:
    """With the default model converted and gated (once per machine), run ``code`` (it
    imports ``sys``) in a fresh Python at the project root: its output, once it ended with
    TensorFlow never imported."""
    choose_backend(default_graph)
    code += "print('TENSORFLOW', 'tensorflow' in sys.modules)\n"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert "TENSORFLOW False" in out.stdout, out.stdout + out.stderr
    return out.stdout


@pytest.mark.e2e
def test_a_run_on_the_converted_default_model_imports_no_tensorflow(
    default_graph: Path, sample_video: Path, tmp_path: Path
) -> None:
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['main.py', '--source', {str(sample_video)!r}, '--max-frames', '12',"
        f" '--output', {str(tmp_path)!r}, '--images']\n"
        "try:\n"
        "    runpy.run_path('main.py', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
    )
    _runs_without_tensorflow(default_graph, code)
    record = json.loads(next(tmp_path.glob("*/run.json")).read_text())
    model = record["model"]
    assert model["backend"] == "openvino"
    assert model["backend_choice"]["requested"] == "auto"
    assert "parity gate" in model["backend_choice"]["reason"]


@pytest.mark.e2e
def test_the_python_api_on_the_converted_default_model_imports_no_tensorflow(
    default_graph: Path, photos_dir: Path
) -> None:
    code = (
        "import sys, detector\n"
        f"model = detector.Detector({str(default_graph)!r})\n"
        f"dets = model.predict({str(photos_dir / 'dog.jpg')!r})\n"
        "print('BACKEND', model.backend, 'FOUND', len(dets))\n"
    )
    stdout = _runs_without_tensorflow(default_graph, code)
    assert "BACKEND openvino" in stdout, stdout
    found = int(stdout.split("FOUND")[1].split()[0])
    assert found >= 3  # dog, bicycle, car
