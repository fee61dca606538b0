"""Per-actor throughput and the run's fixed cost, measured on the driver from the result rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Actor:
    items: int = 0
    busy_ms: float = 0.0
    inference_ms: float = 0.0
    first_s: float = 0.0
    last_s: float = 0.0


@dataclass
class ActorMeter:
    """Counts what each actor did (items, busy time) and when results first arrived.

    Args:
        clock: Monotonic seconds (injectable for tests).
    """

    clock: Callable[[], float] = time.monotonic
    started_s: float = field(default=0.0)
    first_result_s: float | None = None
    actors: dict[str, _Actor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started_s = self.clock()

    def add(self, actor: str, busy_ms: float, inference_ms: float) -> None:
        now = self.clock()
        if self.first_result_s is None:
            self.first_result_s = now
        a = self.actors.get(actor)
        if a is None:
            a = self.actors[actor] = _Actor(first_s=now)
        a.items += 1
        a.busy_ms += busy_ms
        a.inference_ms += inference_ms
        a.last_s = now

    def to_dict(self) -> dict[str, Any]:
        """For ``run.json``: each actor's items, busy seconds and items per busy second; the
        time to the first result (Ray start, actors importing TensorFlow and loading the
        model) and the steady rate after it."""
        now = self.clock()
        first = None if self.first_result_s is None else self.first_result_s - self.started_s
        items = sum(a.items for a in self.actors.values())
        steady_s = (now - self.first_result_s) if self.first_result_s is not None else 0.0
        per_actor = [
            {
                "actor": name,
                "items": a.items,
                "busy_s": round(a.busy_ms / 1e3, 3),
                "inference_ms_mean": round(a.inference_ms / a.items, 3) if a.items else None,
                "items_per_busy_s": round(a.items / (a.busy_ms / 1e3), 3) if a.busy_ms else None,
            }
            for name, a in sorted(self.actors.items())
        ]
        return {
            "actors_seen": len(self.actors),
            "items": items,
            "first_result_s": None if first is None else round(first, 3),
            "steady_items_per_s": round((items - 1) / steady_s, 3) if steady_s > 0 else None,
            "per_actor": per_actor,
        }
