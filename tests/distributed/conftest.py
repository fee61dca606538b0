"""One Ray cluster of three nodes on this machine for every Ray test of the session.

Ray's own test utility (``ray.cluster_utils.Cluster``) starts a head and two worker nodes,
each with one CPU and a custom resource naming it (``node_head``, ``node_a``, ``node_b``;
the two worker nodes also hold ``edge``), all on 127.0.0.1. The runs under test find Ray
running (joined through the engine's own start-up code), use it and leave it up; the
cluster is shut down through its handle at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from detector.distributed.options import RayOptions
from detector.distributed.session import import_ray, init_ray, prepare_machine_cluster

prepare_machine_cluster()  # loopback nodes, token authentication, a token

#: The worker nodes' resources (the head holds node_head).
WORKER_NODES = ({"node_a": 1.0, "edge": 1.0}, {"node_b": 1.0, "edge": 1.0})


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A head and two worker nodes of one CPU each, Ray joined to them by address."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"node_head": 1.0},
            "include_dashboard": False,
            # a node that is gone is noticed in seconds (its workers then restart elsewhere)
            "_system_config": {
                "health_check_initial_delay_ms": 0,
                "health_check_period_ms": 1000,
                "health_check_failure_threshold": 3,
            },
        },
    )
    try:
        for resources in WORKER_NODES:
            cluster.add_node(num_cpus=1, resources=resources)
        cluster.wait_for_nodes()
        options = RayOptions(address=cluster.address)
        ray = import_ray(options)
        init_ray(ray, options)
        yield cluster
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="session")
def local_ray(ray_cluster: Any) -> Any:
    """Ray, joined to the session's cluster (3 CPUs over 3 nodes)."""
    return import_ray()
