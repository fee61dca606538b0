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
from detector.model.backends import check_backend
from detector.pipeline.local import (  # the public API builds on these too
    load_configured_model,
    run_local,
)
from detector.pipeline.prelude import prepare
from detector.pipeline.source_run import (
    analysis_stages,
    model_threshold,
    reconnect_policy,
    track_settings,
)
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
    if config.run.engine == "ray":  # the same run on Ray actors
        return run_ray(prepare(config), out)
    return run_local(prepare(config), out)
