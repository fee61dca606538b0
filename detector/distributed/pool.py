"""Image batches on a pool of plain Ray actors: all started at once, each fed as it frees up.

An image folder does not need Ray Data: the batches are known up front and small, so the
driver starts the actors itself (their processes boot and load the model in parallel, without
Ray Data's imports or planning) and hands each actor its next batch as soon as it is ready
for one (one at first, then :data:`IN_FLIGHT` queued on it). An actor that never gets a place on
the cluster simply gets no work; an actor whose model fails to load fails the run (Ray raises
the start error when the driver asks whether it is ready). The actors are killed when the
work is done or the run stops.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

#: Batches queued on one actor (the next one is there when the current one ends).
IN_FLIGHT = 2


def split(items: Sequence[dict[str, Any]], batches: int) -> list[dict[str, np.ndarray]]:
    """``items`` in ``batches`` consecutive batches of nearly equal size, as columns."""
    count = max(1, min(batches, len(items)))
    size, extra = divmod(len(items), count)
    out, start = [], 0
    for i in range(count):
        stop = start + size + (1 if i < extra else 0)
        chunk = items[start:stop]
        out.append({k: np.asarray([item[k] for item in chunk]) for k in chunk[0]})
        start = stop
    return out


class ActorPool:
    """``count`` actors of ``actor`` (constructed with ``spec``), each holding its resources.

    Args:
        ray: The imported ``ray`` module.
        actor: A class whose instances take a batch of columns and return result columns.
        spec: The constructor's argument (the model each actor loads).
        count: Actors to start.
        options: Ray's actor options (``num_cpus``, ``num_gpus``, ...).
    """

    def __init__(
        self, ray: Any, actor: type, spec: Any, count: int, options: dict[str, Any]
    ) -> None:
        self.ray = ray
        remote = ray.remote(actor).options(
            max_restarts=0,  # a model that failed to load fails the same way again
            max_task_retries=0,
            scheduling_strategy="SPREAD",  # one per node when the cluster has several
            **options,
        )
        self.actors = [remote.remote(spec) for _ in range(count)]

    def map(self, batches: list[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
        """Each batch's result columns, in the order they finish.

        Raises:
            Whatever Ray raises for a failed actor or task (the caller turns it into the
            project's error).
        """
        ray, todo = self.ray, deque(batches)
        # an actor's readiness, then its batches: ref -> (actor's index, a batch's result?)
        waiting: dict[Any, tuple[int, bool]] = {
            a.__ray_ready__.remote(): (i, False) for i, a in enumerate(self.actors)
        }
        queued = [0] * len(self.actors)  # batches sent to each actor and not back yet
        while todo or any(queued):
            done, _ = ray.wait(list(waiting), num_returns=1)
            i, is_batch = waiting.pop(done[0])
            value = ray.get(done[0])  # raises the actor's start error or the batch's error
            if is_batch:
                queued[i] -= 1
                yield value
            # one batch when it is ready (the actors ready about together share the first
            # ones), then up to IN_FLIGHT
            while todo and queued[i] < (IN_FLIGHT if is_batch else 1):
                waiting[self.actors[i].__call__.remote(todo.popleft())] = (i, True)
                queued[i] += 1

    def close(self) -> None:
        """Kill every actor (their resources go back to the cluster at once)."""
        for actor in self.actors:
            self.ray.kill(actor)
