"""Fixtures for the toolkit tests; the tiny models themselves are in ``tk_models.py``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.tk_models import save_v1v2


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
