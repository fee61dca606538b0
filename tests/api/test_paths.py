"""Where files live: a checkout's own folders, or (installed) the user cache and ``./runs``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli_run import ROOT

from detector import paths
from detector.config import load_config
from detector.errors import ConfigError

_REPORT = (
    "import json, detector.paths as p; from detector.config import load_config; "
    "c = load_config(None); "
    "print(json.dumps({'checkout': p.IS_CHECKOUT, 'models': str(p.MODELS_DIR), "
    "'samples': str(p.SAMPLES_DIR), 'cache': str(p.CACHE_DIR), 'fetch': p.FETCH_COMMAND, "
    "'model': str(c.model.path), 'source': c.source.uri, 'runs': str(c.output.dir)}))"
)


def _report(cwd: Path, pythonpath: Path, **env: str) -> dict[str, object]:
    base = {k: v for k, v in os.environ.items() if k not in ("DETECTOR_HOME", "XDG_CACHE_HOME")}
    done = subprocess.run(
        [sys.executable, "-c", _REPORT],
        cwd=cwd,
        env={**base, "PYTHONPATH": str(pythonpath), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_checkout_uses_its_own_folders() -> None:
    assert paths.IS_CHECKOUT
    cfg = load_config(None)
    assert cfg.path == paths.DEFAULT_CONFIG == ROOT / "detector" / "default.yml"
    assert cfg.model.path == ROOT / "models/ssd_mobilenet_v2_coco/frozen_inference_graph.pb"
    assert cfg.output.dir == ROOT / "runs"


def test_installed_package_uses_the_user_cache(tmp_path: Path) -> None:
    site = tmp_path / "site"
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "detector", site / "detector", ignore=skip)
    work = tmp_path / "work"
    work.mkdir()
    xdg = tmp_path / "xdg"
    got = _report(work, site, XDG_CACHE_HOME=str(xdg))
    home = xdg / "detector"
    assert got["checkout"] is False and got["fetch"] == "detector fetch"
    assert got["models"] == str(home / "models") and got["cache"] == str(home)
    assert got["model"] == str(home / "models/ssd_mobilenet_v2_coco/frozen_inference_graph.pb")
    assert got["source"] == str(home / "samples/vtest.avi")
    assert got["runs"] == str(work / "runs")
    explicit = _report(work, site, XDG_CACHE_HOME=str(xdg), DETECTOR_HOME=str(tmp_path / "h"))
    assert explicit["models"] == str(tmp_path / "h" / "models")


def test_detector_home_moves_a_checkouts_model(tmp_path: Path) -> None:
    got = _report(tmp_path, ROOT, DETECTOR_HOME=str(tmp_path / "home"))
    assert got["checkout"] is True and got["fetch"] == "python main.py fetch"
    assert got["model"].startswith(str(tmp_path / "home" / "models"))
    assert got["runs"] == str(ROOT / "runs")


def test_home_placeholders_in_a_config(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text("source:\n  uri: ${samples}/photos\n")
    assert load_config(tmp_path / "c.yml").source.uri == str(paths.SAMPLES_DIR / "photos")
    (tmp_path / "bad.yml").write_text("model:\n  path: ${modles}/x.pb\n")
    with pytest.raises(ConfigError, match=r"model\.path: expected a path starting with \$\{models"):
        load_config(tmp_path / "bad.yml")
