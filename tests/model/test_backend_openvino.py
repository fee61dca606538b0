"""The openvino backend: same detections as TF, the cache, the allowlist, the app's contract."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers.cli_run import ROOT, cli_env, run_cli
from helpers.tiny_models import build_unsafe_frozen
from helpers.tiny_ssd import build_tiny_ssd

from detector.engine import Engine
from detector.errors import ConfigError, ModelError, UnsafeGraphError
from detector.model.backends import check_backend, load_backend_model
from detector.model.backends.ircache import cache_root
from detector.model.backends.openvino import load_openvino_model, read_network
from detector.model.backends.parity import compare_models
from detector.model.backends.quantize import read_images
from detector.model.loader import load_model
from detector.types import Frame

pytestmark = pytest.mark.tf


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "graphs").mkdir()
    return build_tiny_ssd(tmp_path / "graphs" / "tiny.pb")


def _images(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_tiny_ssd_through_openvino_equals_tf(tiny: Path, tmp_path: Path) -> None:
    with (
        load_model(tiny, device="cpu", precision="fp32") as ref,
        load_openvino_model(tiny, precision="fp32", cache_dir=tmp_path / "c") as ov,
    ):
        assert ov.input_size == (32, 32)  # read from the graph's own resize
        assert ov.backend == "openvino" and ov.precision == "fp32"
        assert ov.post_kind == "numpy"  # decoding + NMS read from the graph, run in NumPy
        for image in _images(4, 32, 32):
            want = ref.predict(image[None])
            got = ov.predict(image[None])
            assert [g.shape for g in got] == [w.shape for w in want]
            np.testing.assert_array_equal(got[3], want[3])
            np.testing.assert_array_equal(got[2], want[2])
            np.testing.assert_allclose(got[1], want[1], atol=1e-4)
            np.testing.assert_allclose(got[0], want[0], atol=1e-4)
        # larger frames: TF resizes in the graph, the backend with OpenCV before the network
        report = compare_models(ref, ov, _images(6, 120, 160, seed=1), threshold=0.1)
        assert report.reference > 0
        assert report.passed, report.summary()


def test_batches_and_concurrent_callers(tiny: Path, tmp_path: Path) -> None:
    with load_openvino_model(tiny, precision="fp32", streams=2, cache_dir=tmp_path / "c") as ov:
        images = np.stack(_images(3, 32, 32))
        batch = ov.predict(images)
        singles = [ov.predict(im[None]) for im in images]
        for i, single in enumerate(singles):
            np.testing.assert_allclose(batch[1][i], single[1][0], atol=1e-6)
        results: dict[int, tuple[np.ndarray, ...]] = {}

        def call(i: int) -> None:
            results[i] = ov.predict(images[i % 3][None])

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(results) == 8
        for i, out in results.items():
            np.testing.assert_allclose(out[1], singles[i % 3][1], atol=1e-6)


_FIRST_CALLS = """
import sys, threading
import numpy as np
from detector.model.backends.openvino import load_openvino_model
model = load_openvino_model(sys.argv[1], precision="bf16", streams=4)
start = threading.Barrier(4)
def first() -> None:
    start.wait()
    model.predict(np.zeros((1, 300, 300, 3), np.uint8))
threads = [threading.Thread(target=first) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("done")
"""


def test_threads_making_a_fresh_models_first_calls_together_do_not_hang(
    default_graph: Path,
) -> None:
    """The pipeline's workers may run a model's very first frames at the same instant;
    before the binding's NumPy bridge was set up at load, a fresh process with the default
    model hung there for good about one time in ten with 2 callers, four in ten with 4 (a
    tiny graph never showed it). Each try is a fresh process, as the bridge is set up once
    a process; the converted model is the one the session made beside the graph."""
    hung = 0
    tries = 12
    for _ in range(tries):
        try:
            out = subprocess.run(
                [sys.executable, "-c", _FIRST_CALLS, str(default_graph)],
                env=cli_env(),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
        except subprocess.TimeoutExpired:
            hung += 1
            continue
        assert out.returncode == 0 and "done" in out.stdout, out.stderr[-2000:]
    assert hung == 0, f"{hung} of {tries} fresh processes hung on their first calls from 4 threads"


def test_the_graphs_resize_to_the_size_it_already_has_is_dropped(
    tiny: Path, tmp_path: Path
) -> None:
    """The network's input is fixed to the size the graph resizes to: that resize maps each
    pixel onto itself and is left out of the compiled network, with the same outputs."""
    import openvino as ov

    with load_openvino_model(tiny, precision="fp32", cache_dir=tmp_path / "c") as model:
        ir = model.ir
    core = ov.Core()
    kept, dropped = core.read_model(str(ir)), read_network(core, ir)
    types = [[op.get_type_name() for op in m.get_ordered_ops()] for m in (kept, dropped)]
    assert "Interpolate" in types[0] and "Interpolate" not in types[1]
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    requests = [core.compile_model(m, "CPU", f32).create_infer_request() for m in (kept, dropped)]
    for image in _images(3, 32, 32, seed=3):
        a, b = (r.infer({0: image[None]}) for r in requests)
        for x, y in zip(a.values(), b.values(), strict=True):
            np.testing.assert_allclose(x, y, atol=1e-5)


def test_engine_gives_detections_from_the_openvino_model(tiny: Path, tmp_path: Path) -> None:
    with (
        load_model(tiny, device="cpu", precision="fp32") as ref,
        load_openvino_model(tiny, precision="fp32", cache_dir=tmp_path / "c") as ov,
    ):
        frame = Frame(
            index=0, timestamp_s=0.0, image=_images(1, 32, 32, seed=3)[0][..., ::-1].copy()
        )
        want, _ = Engine(ref, threshold=0.05)(frame)
        got, ms = Engine(ov, threshold=0.05)(frame)
        assert ms > 0 and len(want) > 0
        np.testing.assert_array_equal(got.class_ids, want.class_ids)
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=0.05)


def test_second_load_hits_both_caches(tiny: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    with load_openvino_model(tiny, precision="fp32", cache_dir=cache) as first:
        assert first.converted and first.convert_s > 0
        ir = first.ir
    assert ir.is_file() and ir.with_suffix(".bin").is_file()
    assert ir.name.startswith("tiny-") and ".fp32.xml" in ir.name
    compiled = list((cache / "compiled").iterdir())
    assert compiled, "OpenVINO's CACHE_DIR holds the compiled model"
    with load_openvino_model(tiny, precision="fp32", cache_dir=cache) as second:
        assert not second.converted and second.convert_s == 0.0
        assert second.ir == ir
    assert sorted((cache / "compiled").iterdir()) == sorted(compiled)  # nothing new compiled
    # another graph (other weights) is another key; the first stays
    (tmp_path / "other").mkdir()
    other = build_tiny_ssd(tmp_path / "other" / "tiny.pb", seed=5)
    with load_openvino_model(other, precision="fp32", cache_dir=cache) as third:
        assert third.converted and third.ir != ir
    assert ir.is_file()


def test_cache_beside_the_graph_else_the_user_cache(tmp_path: Path, monkeypatch) -> None:
    graph = tmp_path / "a" / "g.pb"
    graph.parent.mkdir()
    graph.write_bytes(b"")
    assert cache_root(graph) == graph.parent.resolve() / ".openvino"
    blocked = tmp_path / "b" / "g.pb"
    blocked.parent.mkdir()
    (blocked.parent / ".openvino").write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root(blocked) == tmp_path / "xdg" / "detector" / "openvino"
    with pytest.raises(ModelError, match="cannot write the openvino cache folder"):
        cache_root(graph, blocked.parent / ".openvino" / "sub")


def test_the_allowlist_runs_before_any_conversion(tmp_path: Path) -> None:
    bad = build_unsafe_frozen(tmp_path / "unsafe.pb")
    with pytest.raises(UnsafeGraphError, match="ReadFile"):
        load_openvino_model(bad, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").glob("*.xml"))


def test_a_graph_without_nms_or_a_folder_is_refused(tmp_path: Path) -> None:
    no_nms = build_tiny_ssd(tmp_path / "no_nms.pb", nms=False)
    with pytest.raises(ModelError, match="non-max-suppression"):
        load_openvino_model(no_nms, cache_dir=tmp_path / "c")
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ModelError, match="frozen graphs"):
        load_openvino_model(tmp_path / "sm", cache_dir=tmp_path / "c")


def test_backend_choices_are_checked() -> None:
    check_backend("openvino", "int8")
    with pytest.raises(ConfigError, match="int8 needs backend openvino"):
        check_backend("tf", "int8")
    with pytest.raises(ConfigError, match=r"unknown model\.backend 'onnx'"):
        check_backend("onnx")
    with pytest.raises(ConfigError, match="already runs the network apart"):
        load_backend_model("openvino", "x.pb", split=True)
    with pytest.raises(ConfigError, match="runs on the CPU"):
        load_backend_model("openvino", "x.pb", device="gpu")


def test_int8_without_a_passing_quantized_model_is_refused(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no int8 model") as err:
        load_openvino_model(tiny, precision="int8", cache_dir=tmp_path / "c")
    assert "python main.py model quantize" in str(err.value)


def test_import_detector_imports_no_openvino() -> None:
    code = (
        "import sys, detector, detector.model.backends, detector.app; "
        "print(sorted({'openvino', 'nncf', 'tensorflow'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


_CONSENT = """
import sys
from detector.model.backends.extra import require
if sys.argv[1] == "require":
    require("openvino")
from openvino_telemetry import Telemetry
t = Telemetry(app_name="probe", app_version="0", tid="G-PROBE", backend="ga4",
              enable_opt_in_dialog=False, disable_in_ci=True)
print(t.consent)
"""


def test_the_converters_telemetry_is_declined(tmp_path: Path) -> None:
    """Without a consent file, OpenVINO's telemetry counts as accepted; loading the backend
    declines it for the process, and writes nothing to the user's home."""
    env = {k: v for k, v in cli_env().items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    said = {}
    for how in ("plain", "require"):
        env["HOME"] = str(tmp_path / how)
        (tmp_path / how).mkdir()
        out = subprocess.run(
            [sys.executable, "-c", _CONSENT, how], env=env, cwd=ROOT, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        said[how] = out.stdout.split()[-1]
    assert said == {"plain": "True", "require": "False"}
    assert not any((tmp_path / "require").iterdir())


def test_missing_extra_exits_2_with_the_install_command(tmp_path: Path) -> None:
    # A package named openvino that cannot be imported, first on the path: as if not installed.
    fake = tmp_path / "hide" / "openvino"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named openvino')\n")
    env = cli_env(PYTHONPATH=str(tmp_path / "hide"))
    result = run_cli("--backend", "openvino", "--max-frames", "2", "--output", tmp_path, env=env)
    result.assert_failed(2, "the openvino backend needs the Python package 'openvino'")
    assert "pip install 'openvino==2026.4.1' 'nncf==3.4.0'" in result.err
    assert not list(tmp_path.glob("vtest*")), "no run folder before the model loads"
    result = run_cli("model", "quantize", str(tmp_path / "x.pb"), env=env)
    result.assert_failed(2, "pip install 'openvino==")


def test_the_pinned_extra_is_the_one_the_hint_names() -> None:
    import tomllib

    from detector.model.backends import OPENVINO_PINS

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert tuple(extras["openvino"]) == OPENVINO_PINS
    assert "openvino" in (ROOT / ".ci" / "setup").read_text().split("EXTRAS=")[1].split("\n")[0]


@pytest.mark.e2e
def test_real_model_parity_on_sample_photos(
    default_graph: Path, photos_dir: Path, tmp_path: Path
) -> None:
    photos = read_images(photos_dir)
    with load_model(default_graph, device="cpu", precision="fp32") as ref:
        for precision in ("fp32", "bf16"):
            with load_openvino_model(default_graph, precision=precision, cache_dir=tmp_path) as ov:
                report = compare_models(ref, ov, photos)
            assert report.reference >= 20
            assert report.passed, f"{precision}: {report.summary()}"


@pytest.mark.e2e
def test_app_runs_the_sample_video_on_openvino(tmp_path: Path) -> None:
    config = tmp_path / "ov.yml"
    config.write_text(f"model:\n  cache_dir: {tmp_path / 'cache'}\n")
    result = run_cli(
        "--config",
        config,
        "--backend",
        "openvino",
        "--max-frames",
        "8",
        "--output",
        tmp_path / "runs",
        "--name",
        "ov",
        "--no-video",
        timeout_s=300,
    )
    result.assert_ok()
    import json

    record = json.loads((tmp_path / "runs" / "ov" / "run.json").read_text())
    assert record["model"]["backend"] == "openvino"
    assert any((tmp_path / "cache").glob("*.fp32.xml"))
    lines = (tmp_path / "runs" / "ov" / "detections.jsonl").read_text().splitlines()
    assert len(lines) == 8
    assert any(json.loads(line)["detections"] for line in lines)
