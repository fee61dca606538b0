"""Ray for a run: import it (or say how to install it), start or join it quietly, shut it down.

Ray is an optional extra. :func:`import_ray` turns its absence into a usage error (exit 2)
that quotes the install command. :func:`ray_session` starts a local Ray (or joins a cluster
by address) with the dashboard off and workers' output kept in Ray's session logs, turns Ray
Data's console logging and progress bars off (the run shows its own progress), and shuts Ray
down on every exit path - unless Ray was already running in this process (tests share one).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from detector.distributed.options import RayOptions
from detector.errors import ConfigError, DetectorError

log = logging.getLogger(__name__)

RAY_VERSION = "2.60.0"
INSTALL_COMMAND = f".venv/bin/python -m pip install 'ray[data]=={RAY_VERSION}'"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class RayStartError(DetectorError):
    """Ray could not be started locally or the cluster at the address could not be joined."""


def import_ray() -> Any:
    """Import ``ray`` and ``ray.data``.

    Raises:
        ConfigError: Ray is not installed (exit 2), with the command that installs it.
    """
    try:
        import ray
        import ray.data  # the engine runs on Ray Data
    except ImportError as exc:
        raise ConfigError(
            f"run.engine 'ray' needs Ray Data, which is not installed ({exc})",
            hint=f"install it with: {INSTALL_COMMAND}   (or: pip install '.[ray]'), "
            "or run with --engine local",
        ) from exc
    return ray


def quiet_ray_data(ray: Any) -> None:
    """Ray Data's execution logs go to its session log file only; no Ray progress bars."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    # A model that cannot load will not load on a second try: fail at the first actor death.
    ctx.max_consecutive_actor_init_deaths = 0
    for handler in logging.getLogger("ray.data").handlers:
        if type(handler).__name__ != "SessionFileHandler":
            handler.setLevel(logging.CRITICAL + 1)


def init_ray(ray: Any, options: RayOptions) -> None:
    """``ray.init`` for a run: a local Ray (``options.local_cpus`` CPUs) or the cluster at
    ``options.address``; no dashboard; workers' output to Ray's session logs, not ours; the
    workers find this package (a cluster's machines need it installed, like Ray itself).

    Raises:
        RayStartError: Ray would not start, or the address does not answer.
    """
    env = {
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
    }
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        configure_logging=True,
        runtime_env={"env_vars": env},
    )
    if options.address:
        kwargs["address"] = options.address
    else:
        kwargs["num_cpus"] = options.local_cpus
    try:
        ray.init(**kwargs)
    except Exception as exc:
        where = f"the Ray cluster at {options.address!r}" if options.address else "Ray locally"
        raise RayStartError(
            f"cannot start {where}: {type(exc).__name__}: {str(exc).strip()}",
            hint="check the address (`ray status` on the head node prints it) and that this "
            "machine runs the same Ray and Python versions"
            if options.address
            else "check /tmp is writable and no other Ray holds the ports",
        ) from exc
    quiet_ray_data(ray)


@contextmanager
def ray_session(options: RayOptions) -> Iterator[dict[str, Any]]:
    """Ray running for the duration of the ``with`` block.

    Yields:
        Facts about the cluster for ``run.json``: address, nodes, CPUs, GPUs, whether it was
        started here.

    Raises:
        ConfigError: Ray is not installed (exit 2).
        RayStartError: Ray would not start, or the address does not answer (exit 1).
    """
    ray = import_ray()
    started_here = False
    if not ray.is_initialized():
        init_ray(ray, options)
        started_here = True
    quiet_ray_data(ray)
    try:
        resources = ray.cluster_resources()
        yield {
            "address": options.address or "local",
            "started_here": started_here,
            "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "cpus": resources.get("CPU", 0.0),
            "gpus": resources.get("GPU", 0.0),
            "ray_version": getattr(ray, "__version__", "?"),
        }
    finally:
        if started_here:
            ray.shutdown()
