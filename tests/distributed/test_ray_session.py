"""Starting a local Ray: whether its workers need a runtime environment to find the package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from detector.distributed import session


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A driver started from another folder, its script there too, no PYTHONPATH."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "script.py")])
    return tmp_path


def test_a_driver_elsewhere_gives_its_workers_the_package_path(elsewhere: Path) -> None:
    assert not session._local_workers_find_the_package()


def test_ray_finds_it_from_the_current_folder(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(session.PROJECT_ROOT)
    assert session._local_workers_find_the_package()


def test_ray_finds_it_through_pythonpath_or_the_scripts_folder(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", f"/nowhere:{session.PROJECT_ROOT}")
    assert session._local_workers_find_the_package()
    monkeypatch.delenv("PYTHONPATH")
    monkeypatch.setattr(sys, "argv", [str(session.PROJECT_ROOT / "main.py")])
    monkeypatch.setattr(sys, "path", [str(session.PROJECT_ROOT), *sys.path])
    assert session._local_workers_find_the_package()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(session.PROJECT_ROOT)])
    assert not session._local_workers_find_the_package()  # Ray adds the folder only if on the path
