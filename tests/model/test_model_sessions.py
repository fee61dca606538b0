"""Several sessions on one graph: same outputs, concurrent callers, all closed."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def test_extra_sessions_give_same_outputs_concurrently(tmp_path: Path) -> None:
    from helpers.tiny_ssd import build_tiny_ssd

    from detector.model.loader import load_model

    path = build_tiny_ssd(tmp_path / "tiny.pb")
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (1, 48, 64, 3), np.uint8) for _ in range(8)]
    with load_model(path, device="cpu", precision="fp32") as one:
        assert one.sessions == 1
        want = [one.predict(x) for x in images]
    model = load_model(path, device="cpu", precision="fp32", sessions=2)
    assert model.sessions == 2
    assert model.warm_up(64, 48, runs=1) > 0
    got: dict[int, tuple] = {}

    def work(k: int) -> None:
        for i in range(k, len(images), 2):
            got[i] = model.predict(images[i])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(got) == list(range(len(images)))
    for i, w in enumerate(want):
        for a, b in zip(got[i], w, strict=True):
            np.testing.assert_array_equal(a, b)
    model.close()
    model.close()
    with pytest.raises(Exception, match="closed"):
        model.predict(images[0])
