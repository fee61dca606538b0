"""Run ``main.py`` in a subprocess as a user would, and read back what a run left on disk.

``run_cli`` returns the exit code and both streams; ``CliResult.assert_failed`` checks the
documented contract of a failure (exit code, the message naming the value, a hint, no
traceback). ``RunOutputs`` reads a run folder: ``run.json``, every JSON line (each must
parse), and the annotated video decoded to the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "main.py"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment a subprocess run gets: unbuffered, no display unless given."""
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass(frozen=True)
class CliResult:
    """One finished ``main.py`` run."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def assert_ok(self) -> None:
        assert self.code == 0, f"exit {self.code}\n{self.text}"
        assert "Traceback" not in self.text, self.text

    def assert_failed(self, code: int, *needles: str, hint: bool = True) -> None:
        """Exit ``code``, every needle in the output, ``hint:`` given, no traceback."""
        assert self.code == code, f"exit {self.code}, expected {code}\n{self.text}"
        assert "Traceback" not in self.text, self.text
        for needle in needles:
            assert needle in self.text, f"{needle!r} not in the output:\n{self.text}"
        if hint:
            assert "hint:" in self.err, f"no hint:\n{self.text}"
        error_at = self.err.find("error:")
        if error_at >= 0:  # third-party chatter must not come before our message
            before = self.err[:error_at]
            for noise in (
                "[ WARN",
                "[ERROR",
                "cap_ffmpeg",
                "I tensorflow",
                "W tensorflow",
                "oneDNN",
                "absl::",
            ):
                assert noise not in before, f"{noise!r} printed before the error:\n{self.err}"


def tiny_model_flags(model: Path, labels: Path | None, out: Path) -> list[str]:
    """Flags of a run of a tiny test model on the CPU, every detection ≥ 0.1, into ``out``."""
    model_flags = ["--model", str(model), "--labels", str(labels) if labels else "null"]
    return [*model_flags, "--output", str(out), "--device", "cpu", "--threshold", "0.1"]


def _argv(args: Sequence[str | os.PathLike[str] | bytes]) -> list[str | bytes]:
    out: list[str | bytes] = [sys.executable, str(MAIN)]
    for a in args:
        out.append(a if isinstance(a, bytes) else os.fspath(a))
    return out


def run_cli(
    *args: str | os.PathLike[str] | bytes,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 300.0,
    preexec_fn: Callable[[], None] | None = None,
) -> CliResult:
    """Run ``python main.py ARGS`` to its end (bounded by ``timeout_s``)."""
    proc = subprocess.run(
        _argv(args),
        cwd=cwd or ROOT,
        env=env or cli_env(),
        capture_output=True,
        timeout=timeout_s,
        preexec_fn=preexec_fn,
    )
    return CliResult(
        tuple(map(str, args)),
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


class RunningCli:
    """A ``main.py`` run in the background, to signal or to watch."""

    def __init__(
        self,
        *args: str | os.PathLike[str] | bytes,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.args = tuple(map(str, args))
        self._err_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"cli-{os.getpid()}-{id(self)}"
        self._err = open(self._err_path, "w+b")  # noqa: SIM115 - read while it runs
        self.proc = subprocess.Popen(
            _argv(args),
            cwd=cwd or ROOT,
            env=env or cli_env(),
            stdout=subprocess.PIPE,
            stderr=self._err,
        )

    def stderr_so_far(self) -> str:
        return self._err_path.read_bytes().decode(errors="replace")

    def wait_for(
        self, predicate: Callable[[], bool], timeout_s: float = 300.0, what: str = "condition"
    ) -> None:
        """Poll ``predicate`` until true; fails (with the log) on timeout or early exit."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"run ended (exit {self.proc.returncode}) before {what}:\n"
                    f"{self.stderr_so_far()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"timed out waiting for {what}:\n{self.stderr_so_far()}")
            time.sleep(0.05)

    def wait_for_line(self, pattern: str, timeout_s: float = 120.0) -> re.Match[str]:
        """The first match of ``pattern`` in the run's stderr (a log line), once it is there."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            m = re.search(pattern, self.stderr_so_far())
            if m:
                found.append(m)
            return m is not None

        self.wait_for(seen, timeout_s, f"a line matching {pattern!r}")
        return found[0]

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    def finish(self, timeout_s: float = 300.0) -> CliResult:
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            out, _ = self.proc.communicate()
            raise AssertionError(
                f"run did not end within {timeout_s} s:\n{self.stderr_so_far()}"
            ) from None
        err = self.stderr_so_far()
        self._err.close()
        self._err_path.unlink(missing_ok=True)
        return CliResult(self.args, self.proc.returncode, out.decode(errors="replace"), err)


@dataclass
class RunOutputs:
    """What one run folder holds."""

    folder: Path
    run: dict[str, Any]
    lines: list[dict[str, Any]]
    video_frames: int | None
    video_duration_s: float | None

    @classmethod
    def read(cls, folder: Path) -> RunOutputs:
        run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        lines: list[dict[str, Any]] = []
        jsonl = folder / "detections.jsonl"
        if jsonl.exists():
            for n, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines()):
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise AssertionError(f"{jsonl} line {n + 1} is not JSON: {line!r}") from exc
        videos = sorted(folder.glob("annotated.*"))
        frames = duration = None
        if videos:
            frames, duration = decode_video(videos[0])
        return cls(folder, run, lines, frames, duration)


def decode_video(path: Path) -> tuple[int, float | None]:
    """Frames that decode from ``path`` and its duration (last timestamp, seconds)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        return 0, None
    n = 0
    last_ms = 0.0
    while cap.grab():
        n += 1
        last_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
    cap.release()
    return n, last_ms / 1000.0 if n else None


def only_run_folder(base: Path) -> Path:
    """The one run folder under ``base`` (fails if there is not exactly one)."""
    folders = [p for p in base.iterdir() if p.is_dir()]
    assert len(folders) == 1, f"expected one run folder in {base}, found {folders}"
    return folders[0]
