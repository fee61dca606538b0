"""Shared fixtures: paths to the real default model and sample media made by
``python main.py fetch``.

Each fixture skips the test with a clear reason when set-up has not produced the file; CI
always runs ``bash .ci/setup`` (which fetches) first, so there they run.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.tk_models import save_v1v2

from detector.fetch.assets import (
    DEFAULT_MODEL_DIR,
    GRAPH_NAME,
    LABEL_MAP_NAME,
    PHOTOS_DIR,
    SAMPLE_VIDEO,
    SAMPLES_DIR,
    TFLITE_NAME,
)

_FETCH = "run 'python main.py fetch' (or 'bash .ci/setup') first"


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} missing at {path}: {_FETCH}")
    return path


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """``models/ssd_mobilenet_v2_coco`` with the converted graph and its label map."""
    _need(DEFAULT_MODEL_DIR / GRAPH_NAME, "default model")
    _need(DEFAULT_MODEL_DIR / LABEL_MAP_NAME, "default label map")
    return DEFAULT_MODEL_DIR


@pytest.fixture(scope="session")
def default_graph(default_model_dir: Path) -> Path:
    """The default model's ``frozen_inference_graph.pb``."""
    return default_model_dir / GRAPH_NAME


@pytest.fixture(scope="session")
def default_labels(default_model_dir: Path) -> Path:
    """The default model's ``label_map.pbtxt`` (COCO ids, 1 = person)."""
    return default_model_dir / LABEL_MAP_NAME


@pytest.fixture(scope="session")
def default_tflite() -> Path:
    """The original uint8 TFLite SSD the default graph was converted from."""
    return _need(DEFAULT_MODEL_DIR / "source" / TFLITE_NAME, "original .tflite model")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """``samples/`` (``vtest.avi`` and ``photos/``)."""
    return _need(SAMPLES_DIR, "sample media folder")


@pytest.fixture(scope="session")
def sample_video() -> Path:
    """``samples/vtest.avi``: 768×576, 10 fps, 795 frames of people walking."""
    return _need(SAMPLE_VIDEO, "sample video")


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    """``samples/photos/``: real photos (dog.jpg, person.jpg, horses.jpg, ...)."""
    _need(PHOTOS_DIR / "dog.jpg", "sample photos")
    return PHOTOS_DIR


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, imported once for the session."""
    import tensorflow

    return tensorflow


@pytest.fixture
def v1v2(tf, tmp_path) -> Callable[..., Path]:
    """A factory: ``v1v2(resource=True)`` → the saved prefix in a fresh folder."""
    count = iter(range(100))

    def make(resource: bool = True, step: int = 100) -> Path:
        folder = tmp_path / f"v1v2_{next(count)}"
        folder.mkdir()
        return save_v1v2(tf, folder, resource=resource, step=step)

    return make


@pytest.fixture(scope="session", autouse=True)
def _default_model_converted() -> None:
    """Convert and gate the default model for ``backend: auto`` once, before any test runs it.

    Done in a subprocess so this test process does not import TensorFlow for it; a no-op when
    the cache beside the graph already decides (every later session on this machine).
    """
    import subprocess
    import sys

    from detector.model.backends import openvino_available

    graph = DEFAULT_MODEL_DIR / GRAPH_NAME
    if not graph.is_file() or not openvino_available():
        return
    from detector.model.backends.auto import is_decided

    if is_decided(graph):
        return
    code = (
        f"from detector.model.backends.auto import choose_backend; choose_backend({str(graph)!r})"
    )
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent, timeout=900)


# The headless browser fixtures (``browser``, ``page``) for every test.
pytest_plugins = ["helpers.browser", "helpers.broker"]


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Undo what a test's in-process ``main()`` did to the root logger.

    ``setup_logging`` (``basicConfig(force=True)``) sets the root level (WARNING with ``-q``)
    and adds a handler on that test's captured stderr; left behind, they make later tests'
    ``caplog`` depend on test order.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    for handler in root.handlers[:]:
        if handler not in handlers and type(handler).__module__ != "_pytest.logging":
            root.removeHandler(handler)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failure's report even when Python cannot draw its traceback.

    CPython 3.11 can raise ``SystemError: AST constructor recursion depth mismatch`` while
    pytest parses a failing test's source (seen after Playwright's greenlet switches); the
    whole session then stops with INTERNALERROR. The report falls back to a plain traceback.
    """
    try:
        return (yield)
    except SystemError as error:
        lines = [f"{f.filename}:{f.lineno} in {f.name}\n    {f.line}" for f in _frames(call)]
        text = "\n".join([*lines, f"{call.excinfo.typename if call.excinfo else ''}: "
                          f"{call.excinfo.value if call.excinfo else ''}",
                          f"(traceback drawn plainly: {error})"])  # fmt: skip
        return pytest.TestReport(
            item.nodeid, item.location, dict.fromkeys(item.keywords, 1), "failed", text,
            call.when, duration=call.duration, start=call.start, stop=call.stop,
        )  # fmt: skip


def _frames(call: pytest.CallInfo[None]) -> list[traceback.FrameSummary]:
    if call.excinfo is None:
        return []
    frames = traceback.extract_tb(call.excinfo.tb)
    return [f for f in frames if "/_pytest/" not in f.filename and "/pluggy/" not in f.filename]
