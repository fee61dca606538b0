"""``--engine ray --backend openvino``: the actors load the openvino backend, same detections.

Both runs are ``main.py`` processes of their own (the Ray run starts its own local Ray), so
nothing of them stays in the test process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.cli_run import run_cli

pytestmark = pytest.mark.e2e


def _by_name(folder: Path) -> dict[str, Any]:
    lines = (folder / "detections.jsonl").read_text().splitlines()
    return {r["name"]: r for r in map(json.loads, lines)}


def test_ray_actors_run_the_openvino_backend(photos_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "ov.yml"
    config.write_text(f"model:\n  backend: openvino\n  cache_dir: {tmp_path / 'cache'}\n")
    common = ["run", "--config", str(config), "--source", str(photos_dir), "--no-video"]
    common += ["--output", str(tmp_path / "runs")]
    run_cli(*common, "--name", "local", timeout_s=600).assert_ok()
    run_cli(
        *common, "--name", "ray", "--engine", "ray", "--ray-actors", "2", timeout_s=600
    ).assert_ok()
    record = json.loads((tmp_path / "runs" / "ray" / "run.json").read_text())
    assert record["engine"] == "ray" and record["model"]["backend"] == "openvino"
    local, ray = _by_name(tmp_path / "runs" / "local"), _by_name(tmp_path / "runs" / "ray")
    assert set(local) == set(ray) and len(local) == 12
    for name, want in local.items():
        got = ray[name]["detections"]
        assert [d["class_id"] for d in got] == [d["class_id"] for d in want["detections"]], name
        for a, b in zip(want["detections"], got, strict=True):
            assert abs(a["score"] - b["score"]) <= 1e-4, name
            assert np.allclose(a["box_xyxy"], b["box_xyxy"], atol=0.5), name


@pytest.mark.parametrize("backend", ["openvino", "auto"])
def test_a_files_actor_on_the_converted_model_imports_no_tensorflow(
    local_ray: Any, default_graph: Path, photos_dir: Path, backend: str
) -> None:
    from detector.distributed.actors import ImageActor
    from detector.distributed.options import ModelSpec
    from detector.model.backends.auto import choose_backend
    from detector.model.options import ModelOptions

    def probe(actor: Any, path: str) -> tuple[str, list[Any], bool]:
        """Inside the actor (a nested function travels by value): its backend, one file's
        detections, whether TensorFlow got imported."""
        import sys

        columns = actor({"position": np.asarray([0]), "path": np.asarray([path])})
        found = json.loads(str(columns["detections"][0]))
        return getattr(actor.model, "backend", "tf"), found, "tensorflow" in sys.modules

    choose_backend(default_graph)  # converted and gated once (TensorFlow here, not there)
    spec = ModelSpec(ModelOptions(default_graph, backend=backend).on_actor(1))
    actor = local_ray.remote(num_cpus=1)(ImageActor).remote(spec)
    try:
        used, found, tf_loaded = local_ray.get(
            actor.__ray_call__.remote(probe, str(photos_dir / "dog.jpg")), timeout=300
        )
    finally:
        local_ray.kill(actor)
    assert used == "openvino"
    assert len(found) >= 3  # dog, bicycle, car
    assert tf_loaded is False
