"""Ray for a run: import it (or say how to install it), start or join it quietly, shut it down.

Ray is an optional extra. :func:`import_ray` turns its absence into a usage error (exit 2)
that quotes the install command. :func:`ray_session` starts a local Ray (or joins a cluster
by address) with the dashboard off and workers' output kept in Ray's session logs, turns Ray
Data's console logging and progress bars off (the run's progress sink shows progress), and shuts Ray
down on every exit path - unless Ray was already running in this process (tests share one).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from detector.distributed.options import RayOptions
from detector.errors import ConfigError, DetectorError
from detector.model.session import captured_stderr

log = logging.getLogger(__name__)

RAY_VERSION = "2.60.0"
INSTALL_COMMAND = f".venv/bin/python -m pip install 'ray[data]=={RAY_VERSION}'"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class RayStartError(DetectorError):
    """Ray could not be started locally or the cluster at the address could not be joined."""


def _not_installed(exc: ImportError) -> ConfigError:
    return ConfigError(
        f"run.engine 'ray' needs Ray Data, which is not installed ({exc})",
        hint=f"install it with: {INSTALL_COMMAND}   (or: pip install '.[ray]'), "
        "or run with --engine local",
    )


def import_ray(options: RayOptions | None = None) -> Any:
    """Import ``ray`` (with token authentication for ``options.address`` when this machine
    holds a token: see :func:`_token_auth_for_address`). Ray Data, which only videos use, is
    imported by :func:`import_ray_data` (pandas and pyarrow take a second or two).

    Raises:
        ConfigError: Ray is not installed (exit 2), with the command that installs it.
    """
    if options is not None and options.address:
        _token_auth_for_address()  # before Ray reads its configuration
    try:
        import ray
    except ImportError as exc:
        raise _not_installed(exc) from exc
    return ray


def import_ray_data(ray: Any) -> None:
    """Import ``ray.data`` and quiet it (:func:`quiet_ray_data`).

    Raises:
        ConfigError: Ray Data's packages are not installed (exit 2).
    """
    try:
        import ray.data  # the video ranges run on Ray Data
    except ImportError as exc:
        raise _not_installed(exc) from exc
    quiet_ray_data(ray)


def quiet_ray_data(ray: Any) -> None:
    """Ray Data's execution logs go to its session log file only; no Ray progress bars."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    # A model that cannot load will not load on a second try: fail at the first actor death.
    ctx.max_consecutive_actor_init_deaths = 0
    # Only Ray's own console handler: other handlers can sit on this logger too (a test
    # runner's capture handlers, shared by every test), and they are not ours to mute.
    for handler in logging.getLogger("ray.data").handlers:
        kind = type(handler)
        if kind.__module__.startswith("ray.") and kind.__name__ != "SessionFileHandler":
            handler.setLevel(logging.CRITICAL + 1)


def _has_token() -> bool:
    """This machine (or this process's environment) holds a Ray auth token."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(path).is_file()


def prepare_machine_cluster() -> None:
    """The environment a cluster of several nodes on this one machine needs, set before Ray
    is imported (``ray.cluster_utils.Cluster`` in tests and the bench): every node on
    loopback, token authentication (Ray's default for new clusters, so that runs joining by
    address are let in), and a token for this process and its children on a machine that
    has none yet. Values the user set are kept."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    if not _has_token():
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


def _token_auth_for_address() -> None:
    """Use token authentication to join a cluster when this machine has a token.

    Ray enables token authentication for new clusters (``ray start --head`` when
    ``~/.ray/auth_token`` exists, ``ray.init()``) but not for a driver joining by explicit
    address: without this, such a driver is refused ("InvalidAuthToken") though it holds the
    right token. ``RAY_AUTH_MODE`` set by the user is left alone.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    if _has_token():
        os.environ["RAY_AUTH_MODE"] = "token"
        log.debug("joining the Ray cluster with token authentication (a token was found)")


def _local_workers_find_the_package() -> bool:
    """The workers of a Ray started here find this package without a runtime environment:
    Ray puts the driver's current folder and script folder on their path, and they inherit
    ``PYTHONPATH``. Then no job-wide ``runtime_env`` is set, so the workers Ray starts ahead
    when the driver connects (one per CPU, during ``ray.init``) can become the actors, instead
    of new processes started after them (a runtime environment makes those workers unfit).
    """
    script = Path(sys.argv[0]).resolve().parent if sys.argv and sys.argv[0] else None
    found = [
        Path.cwd(),
        *(Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p),
    ]
    if script is not None and str(script) in sys.path:
        found.append(script)
    return any(p.resolve() == PROJECT_ROOT for p in found)


def init_ray(ray: Any, options: RayOptions) -> None:
    """``ray.init`` for a run: a local Ray (``options.local_cpus`` CPUs) or the cluster at
    ``options.address``; no dashboard; workers' output to Ray's session logs, not ours; the
    workers find this package (a cluster's machines need it installed, like Ray itself).

    Raises:
        RayStartError: Ray would not start, or the address does not answer.
    """
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        configure_logging=True,
    )
    if options.address or not _local_workers_find_the_package():
        env = {
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
            )
        }
        kwargs["runtime_env"] = {"env_vars": env}
    if options.address:
        kwargs["address"] = options.address
    else:
        # "local": a new Ray for this run, never a cluster that happens to run on the machine
        kwargs["address"] = "local"
        kwargs["num_cpus"] = options.local_cpus
    # Ray's C++ start-up lines (and its retries against a wrong address) write straight to
    # file descriptor 2: parked, to the debug log.
    error: Exception | None = None
    with captured_stderr() as lines:
        try:
            ray.init(**kwargs)
        except Exception as exc:
            error = exc
    for line in lines:
        log.debug("ray: %s", line)
    if error is not None:
        where = f"the Ray cluster at {options.address!r}" if options.address else "Ray locally"
        raise RayStartError(
            f"cannot start {where}: {type(error).__name__}: {str(error).strip()}",
            hint="check the address (`ray status` on the head node prints it), that this "
            "machine runs the same Ray and Python versions, and for a cluster with token "
            "authentication (Ray's default) that this machine has the head's token: "
            "~/.ray/auth_token copied from the head, or RAY_AUTH_TOKEN set"
            if options.address
            else "check /tmp is writable and no other Ray holds the ports",
        ) from error


@contextmanager
def ray_session(options: RayOptions) -> Iterator[dict[str, Any]]:
    """Ray running for the duration of the ``with`` block.

    Yields:
        Facts about the cluster for ``run.json``: address, nodes, CPUs, GPUs, whether Ray was
        started on this machine for the run.

    Raises:
        ConfigError: Ray is not installed (exit 2).
        RayStartError: Ray would not start, or the address does not answer (exit 1).
    """
    ray = import_ray(options)
    started_here = False
    if not ray.is_initialized():
        init_ray(ray, options)
        started_here = True
    try:
        resources = ray.cluster_resources()
        yield {
            "address": options.address or "local",
            "gcs_address": ray.get_runtime_context().gcs_address,
            "started_local": started_here and not options.address,
            "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "cpus": resources.get("CPU", 0.0),
            "gpus": resources.get("GPU", 0.0),
            "ray_version": getattr(ray, "__version__", "?"),
        }
    finally:
        if started_here:
            ray.shutdown()
