"""Composition: one prelude for every run, then the engine the config picks.

:func:`run_app` is the app's one entry point (the CLI and the Python API call it). It checks
the backend, settles the run's inputs once (:func:`detector.pipeline.prelude.prepare`: label
map, class filter, sources, model options, the run record's header), and hands them to the
engine: the local pipeline (:mod:`detector.pipeline.local`) or Ray actors
(:mod:`detector.distributed.driver`). Both write the same outputs, the same ``run.json``
(:mod:`detector.outputs.record`) and the same summary.
"""

from __future__ import annotations

import sys
from typing import TextIO

from detector.config import Config
from detector.distributed.driver import run_ray
from detector.errors import ConfigError
from detector.events.setup import wants_events
from detector.model.backends import check_backend
from detector.pipeline.local import (  # the public API builds on these too
    load_configured_model,
    model_threshold,
    reconnect_policy,
    run_local,
)
from detector.pipeline.prelude import prepare
from detector.pipeline.source_run import analysis_stages, track_settings
from detector.types import RunStats

__all__ = [
    "analysis_stages",
    "load_configured_model",
    "model_threshold",
    "reconnect_policy",
    "run_app",
    "track_settings",
]


def run_app(config: Config, *, out: TextIO | None = None) -> RunStats:
    """Run the detection app described by ``config``.

    Args:
        config: The validated configuration.
        out: Where the run summary is printed (default: stdout).

    Returns:
        The run's numbers (several sources: their sums).

    Raises:
        DetectorError: Config (exit 2), source, model, sink or stage errors (exit 1); with
            several sources, once all have ended, naming every source that failed.
        KeyboardInterrupt: Ctrl-C or SIGTERM, after the outputs were finalized and
            ``run.json`` written (exit 130).
    """
    check_backend(config.model.backend, config.model.precision)  # before anything opens
    out = out if out is not None else sys.stdout
    if config.run.engine == "ray":  # the same run on a pool of Ray actors
        _check_ray(config)
        return run_ray(prepare(config), out)
    return run_local(prepare(config), out)


def _check_ray(config: Config) -> None:
    """Refuse what the Ray engine cannot run."""
    if wants_events(config):  # zones and events follow one source's frames in order
        raise ConfigError(
            "zones, lines and events cannot run with run.engine 'ray'",
            hint="they follow one source's tracked objects in order: use --engine local",
        )
    if config.detect.track != "none":  # actors see frame ranges, not one ordered stream
        raise ConfigError(
            f"detect.track '{config.detect.track}' cannot run with run.engine 'ray'",
            hint="a tracker follows one source's frames in order: use --engine local, "
            "or set detect.track: none",
        )
