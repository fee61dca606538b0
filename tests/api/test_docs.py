"""The Python examples of README.md ("Python API") and docs/API.md run as written."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
from api.examples import make_media, python_blocks
from helpers.cli_run import ROOT

from detector import paths


@pytest.fixture
def example_folder(tmp_path: Path, samples_dir: Path, default_model_dir: Path, monkeypatch):
    """A folder holding ``dog.jpg`` and ``clip.mp4``, as the current directory; run folders
    (``${runs}``) go inside it instead of the checkout's ``runs/``."""
    make_media(tmp_path, samples_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths, "runs_dir", lambda: tmp_path / "runs")
    return tmp_path


@pytest.mark.parametrize(
    ("doc", "section"), [("README.md", "Python API"), ("docs/API.md", None)], ids=["readme", "api"]
)
def test_examples_run(example_folder: Path, doc: str, section: str | None) -> None:
    code = "\n".join(python_blocks(ROOT / doc, section))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"{doc} examples", "exec"), {"__name__": "__example__"})
    assert "dog" in printed.getvalue()
    assert any((example_folder / "runs").iterdir())  # detector.run wrote its run folder
    assert os.listdir(example_folder / "runs")
