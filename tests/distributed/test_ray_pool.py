"""The plain actor pool of image runs, on the session's three-node cluster with small actors."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from detector.distributed.pool import ActorPool, split


def test_split_keeps_the_order_in_nearly_equal_batches() -> None:
    items = [{"position": i, "path": f"p{i}"} for i in range(11)]
    batches = split(items, 4)
    assert [len(b["position"]) for b in batches] == [3, 3, 3, 2]
    assert np.concatenate([b["position"] for b in batches]).tolist() == list(range(11))
    assert batches[1]["path"].tolist() == ["p3", "p4", "p5"]
    assert len(split(items[:2], 5)) == 2  # never an empty batch


def _doubler() -> type:
    class Doubler:  # defined in a function: it travels to the workers by value
        def __init__(self, spec: int) -> None:
            import os

            self.spec, self.pid = spec, os.getpid()

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            n = len(batch["x"])
            return {"x": batch["x"] * self.spec, "pid": np.full(n, self.pid)}

    return Doubler


def test_every_batch_comes_back_once_and_a_pool_is_killed_after(local_ray: Any) -> None:
    pool = ActorPool(local_ray, _doubler(), 2, 2, {"num_cpus": 1})
    try:
        out = list(pool.map(split([{"x": i} for i in range(10)], 5)))
    finally:
        pool.close()
    assert sorted(np.concatenate([b["x"] for b in out]).tolist()) == [2 * i for i in range(10)]
    assert len(out) == 5
    assert all(_killed(local_ray, actor) for actor in pool.actors)


def _killed(ray: Any, actor: Any, within_s: float = 60.0) -> bool:
    """True once a call to ``actor`` fails as to a dead actor (``ray.kill`` is asynchronous:
    a call made at once may still reach the actor before the kill does)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=within_s)
        except ray.exceptions.RayActorError:
            return True
        time.sleep(0.2)
    return False


def test_an_actor_that_finds_no_place_gets_no_work(local_ray: Any) -> None:
    """One actor asks for a resource no node has: the other does all the batches."""
    pool = ActorPool(local_ray, _doubler(), 3, 1, {"num_cpus": 1})
    stuck = ActorPool(local_ray, _doubler(), 3, 1, {"num_cpus": 1, "resources": {"nowhere": 1}})
    pool.actors += stuck.actors
    try:
        out = list(pool.map(split([{"x": i} for i in range(6)], 3)))
    finally:
        pool.close()
    assert sorted(np.concatenate([b["x"] for b in out]).tolist()) == [3 * i for i in range(6)]
    assert len({int(p) for b in out for p in b["pid"]}) == 1


def test_an_actor_that_fails_to_start_fails_the_map_with_its_message(local_ray: Any) -> None:
    class Broken:
        def __init__(self, spec: str) -> None:
            raise RuntimeError(f"cannot load {spec}")

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return batch

    pool = ActorPool(local_ray, Broken, "model.pb", 1, {"num_cpus": 1})
    try:
        with pytest.raises(Exception, match=r"cannot load model\.pb"):
            list(pool.map(split([{"x": 1}], 1)))
    finally:
        pool.close()
