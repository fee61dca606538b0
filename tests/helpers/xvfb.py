"""A virtual X server for the window tests: ``Xvfb -displayfd`` picks a free display."""

from __future__ import annotations

import subprocess


class Xvfb:
    """``with Xvfb() as x:`` — ``x.display`` is ``":N"``; the server stops at the end (or at
    ``x.kill()``, to take the display away from a running program)."""

    def __init__(self, screen: str = "320x240x24") -> None:
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", "1", "-screen", "0", screen],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.display = f":{self.proc.stdout.readline().strip()}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def __enter__(self) -> Xvfb:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)
