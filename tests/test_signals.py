"""Ctrl-C during a run stops that run only: the next run in the same process starts afresh."""

from __future__ import annotations

import signal
import sys

import pytest

from detector.errors import ModelError
from detector.model import session
from detector.model.backends.extra import MissingExtraError, require
from detector.pipeline.signals import StopSignals, new_run, stop_requested


def _ctrl_c_during_a_run() -> None:
    with pytest.raises(KeyboardInterrupt), StopSignals().installed():
        signal.raise_signal(signal.SIGINT)


@pytest.fixture
def tf_import_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import tensorflow`` fails with an ImportError (a broken install)."""
    monkeypatch.setattr(session, "_tf", None)
    monkeypatch.setitem(sys.modules, "tensorflow", None)


def test_a_stop_counts_until_the_next_run_starts(tf_import_fails: None) -> None:
    _ctrl_c_during_a_run()
    assert stop_requested()
    # still this run's stop: a TF import that failed under it is the stop, not a fault
    with pytest.raises(KeyboardInterrupt):
        session.import_tf()
    with StopSignals().installed():  # the next run, in the same process
        assert not stop_requested()
        with pytest.raises(ModelError, match="cannot import TensorFlow"):
            session.import_tf()


def test_a_run_inside_a_run_keeps_the_outer_runs_stop() -> None:
    with StopSignals().installed() as outer:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert outer.fired and stop_requested()
        new_run()  # e.g. a Detector made inside the command: not a new run of the process
        with StopSignals().installed():
            assert stop_requested()
    new_run()
    assert not stop_requested()


def test_an_optional_backend_import_failing_under_a_stop_is_the_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # the import fails
    _ctrl_c_during_a_run()
    with pytest.raises(KeyboardInterrupt):
        require("openvino")
    missing = pytest.raises(MissingExtraError, match="needs the Python package 'openvino'")
    with StopSignals().installed(), missing:  # the next run: a missing extra again
        require("openvino")
