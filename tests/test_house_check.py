"""``.ci/house-check``: the size rules fail (exit 1) when broken, and the package keeps them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / ".ci" / "house-check"


def _check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def _function(name: str, lines: int) -> str:
    body = "".join(f"    x{i} = {i}\n" for i in range(lines - 1))
    return f"def {name}():\n{body}"


def test_a_package_that_breaks_the_rules_fails(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for i in range(15):  # one module over the root's 14
        (pkg / f"m{i}.py").write_text('"""A module."""\n')
    (pkg / "sub").mkdir()
    for n in range(3):  # 21 functions of 61 lines, one over the 20 allowed
        text = "".join(_function(f"f{n}{i}", 61) for i in range(7))
        (pkg / "sub" / f"long{n}.py").write_text(text)
    (pkg / "sub" / "big.py").write_text("x = 1\n" * 501)
    done = _check("--root", pkg)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    for broken in ("1 file(s) over 500", "21 functions over 60", "15 modules at the root"):
        assert broken in out.split("BROKEN: ")[1], out
    assert "pkg/sub/long0.py:1 f00" in out and "501  pkg/sub/big.py" in out
    report = _check("--root", pkg, "--report")  # the same figures, never a failure
    assert report.returncode == 0 and "report only" in report.stdout


def test_a_package_within_the_limits_passes(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "ok.py").write_text(_function("f", 60) + "x = 1\n" * 400)
    done = _check("--root", pkg)
    assert done.returncode == 0 and "every rule kept" in done.stdout, done.stdout


def test_the_detector_package_keeps_the_rules() -> None:
    done = _check()
    assert done.returncode == 0, done.stdout + done.stderr
