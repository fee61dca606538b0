"""Every module of the package imports on its own terms: none imports TensorFlow at import time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CODE = """
import importlib, pkgutil, sys
import detector
names = [m.name for m in pkgutil.walk_packages(detector.__path__, "detector.")]
for name in names:
    importlib.import_module(name)
print(len(names), sorted({"tensorflow", "keras"} & set(sys.modules)))
"""


def test_importing_every_module_loads_no_tensorflow() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    count, loaded = out.stdout.split(maxsplit=1)
    assert int(count) > 100
    assert loaded.strip() == "[]", out.stdout
