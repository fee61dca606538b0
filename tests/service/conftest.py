"""One detection service (the real default model, loaded once) shared by the service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.config import load_config
from detector.service import Service


@pytest.fixture(scope="session")
def service(default_graph: Path, default_labels: Path, tmp_path_factory) -> Iterator[Service]:
    """``detector serve`` in this process on a free 127.0.0.1 port, no token, no rate limit."""
    out = tmp_path_factory.mktemp("serve-runs")
    config = load_config(
        None,
        {
            "model.path": str(default_graph),
            "model.labels": str(default_labels),
            "output.dir": str(out),
            "output.progress": "off",
            "serve.rate_limit": 0,
            "serve.stalled_after_s": 1.5,
            "source.stall_timeout_s": 60,
        },
    )
    with Service(config, "127.0.0.1", 0) as svc:
        yield svc
