"""One local Ray for every Ray test of the session (starting Ray costs seconds).

``ray.init(num_cpus=2, include_dashboard=False)`` through the engine's own start-up code;
the runs under test find Ray running, use it and leave it up; it is shut down at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from detector.distributed.options import RayOptions
from detector.distributed.session import import_ray, init_ray


@pytest.fixture(scope="session")
def local_ray() -> Iterator[Any]:
    """A local Ray with 2 CPUs and no dashboard, shared by the session's Ray tests."""
    ray = import_ray()
    if not ray.is_initialized():
        init_ray(ray, RayOptions(local_cpus=2))
    yield ray
    ray.shutdown()
