"""Shared fixtures for the public API's tests: one ``Detector`` on the default model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import detector


@pytest.fixture(scope="session")
def model(default_model_dir: Path) -> Iterator[detector.Detector]:
    """The default SSD, loaded once for every API test."""
    with detector.Detector() as loaded:
        yield loaded
