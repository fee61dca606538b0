"""``ModelOptions``: built once from the config, picklable, no TensorFlow on import."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

from detector.config import load_config
from detector.model.options import ModelOptions

ROOT = Path(__file__).resolve().parents[2]


def test_built_from_the_config_with_every_model_key(tmp_path: Path) -> None:
    config = load_config(
        None,
        {
            "model.backend": "openvino",
            "model.precision": "bf16",
            "model.workers": "3",
            "model.intra_op_threads": "0",
            "model.input_tensor": "input:0",
            "model.device": "cpu",
        },
    )
    options = ModelOptions.from_config(config)
    assert (options.backend, options.precision, options.workers) == ("openvino", "bf16", 3)
    assert options.tensors.input == "input:0" and options.device == "cpu"
    assert options.path == config.model.path and options.labels == config.model.labels
    assert pickle.loads(pickle.dumps(options)) == options  # Ray ships it to the actors
    # a bench worker gets them as JSON
    assert ModelOptions.from_description(json.loads(json.dumps(options.describe()))) == options


def test_threads_follow_the_workers_and_the_actor_cpus() -> None:
    options = ModelOptions(Path("m.pb"), intra_op_threads=0)
    assert options.sharing(1).intra_op_threads == 0  # TF's default for one worker
    assert options.sharing(2).intra_op_threads >= 1 and options.sharing(2).workers == 2
    assert options.on_actor(3.0).intra_op_threads == 3 and options.on_actor(3.0).workers == 1
    fixed = options.with_(intra_op_threads=4)
    assert fixed.sharing(2).intra_op_threads == fixed.on_actor(1.0).intra_op_threads == 4


def test_session_options_carry_device_threads_and_precision() -> None:
    options = ModelOptions(Path("m.pb"), device="cpu", intra_op_threads=2, precision="bf16")
    session = options.session_options()
    assert (session.device, session.intra_op_threads, session.precision) == ("cpu", 2, "bf16")


def test_importing_the_options_imports_no_tensorflow() -> None:
    code = "import sys, detector.model.options; print('tensorflow' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.strip() == "False", proc.stderr
