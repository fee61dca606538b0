"""``import detector`` stays light: no TensorFlow, no OpenCV; the public names load on use."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers.cli_run import ROOT

import detector


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_and_public_names_without_tensorflow() -> None:
    out = _python(
        "import sys, detector\n"
        "print('cv2' in sys.modules, 'tensorflow' in sys.modules)\n"
        "detector.Detector, detector.run, detector.Detections, detector.ResultStream\n"
        "print('tensorflow' in sys.modules)\n"
    )
    assert out.split() == ["False", "False", "False"]


def test_public_surface() -> None:
    for name in detector.__all__:
        assert getattr(detector, name) is not None
    assert set(detector.__all__) <= set(dir(detector))
    assert detector.Detector is detector.api.Detector
    with pytest.raises(AttributeError, match="no attribute 'Detectr'"):
        detector.Detectr  # noqa: B018
