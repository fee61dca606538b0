"""Fixtures of the fault suite: a tiny detector (built once), its label map, a runs folder.

Most rows run ``main.py`` on the tiny graph from ``helpers.tiny_models`` (scores follow the
red level; classes 1 and 2), which loads in milliseconds; the real model only where the
row is about it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.tiny_models import build_frozen


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_frozen(tmp_path_factory.mktemp("tiny") / "tiny.pb")


@pytest.fixture(scope="session")
def tiny_labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labels.pbtxt"
    path.write_text('item { id: 1 name: "red" }\nitem { id: 2 name: "half" }\n')
    return path


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """The folder runs are written under (``--output``)."""
    return tmp_path / "runs"


@pytest.fixture
def tiny(tiny_model: Path, tiny_labels: Path, runs: Path) -> list[str]:
    """Flags for a run on the tiny detector into ``runs`` (the source is the test's)."""
    return ["--model", str(tiny_model), "--labels", str(tiny_labels), "--output", str(runs)]
