"""A real MQTT broker for tests: Debian's ``mosquitto`` on 127.0.0.1 (a free port), one per test
session, and ``mosquitto_sub`` as an independent subscriber.

``bash .ci/setup`` installs ``mosquitto`` and ``mosquitto-clients`` as root; elsewhere a test
that needs them skips with the reason, except under CI, where it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"


def _missing() -> str | None:
    for exe in (MOSQUITTO, MOSQUITTO_SUB):
        if not os.access(exe, os.X_OK):
            return f"{exe} is missing: apt-get install mosquitto mosquitto-clients (bash .ci/setup)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One mosquitto process on ``127.0.0.1:port``; ``stop`` / ``start`` keep the port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.log = folder / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self, timeout_s: float = 10.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port}:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


class Subscriber:
    """``mosquitto_sub -v`` on ``topic`` in the background; ``messages()`` parses its lines."""

    def __init__(self, broker: Broker, topic: str, folder: Path, *extra: str) -> None:
        self.out = folder / f"sub-{time.monotonic_ns()}.txt"
        self._file = self.out.open("wb")
        self.proc = subprocess.Popen(
            [MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-v",
             "-q", "1", *extra],
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def messages(self) -> list[tuple[str, str]]:
        rows = []
        for line in self.out.read_text(encoding="utf-8", errors="replace").splitlines():
            topic, _, payload = line.partition(" ")
            rows.append((topic, payload))
        return rows

    def wait_for(self, predicate, timeout_s: float = 30.0) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.messages()
            if predicate(got):
                return got
            time.sleep(0.05)
        raise AssertionError(f"subscriber did not get what was expected: {self.messages()[-5:]}")

    def stop(self) -> list[tuple[str, str]]:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self._file.close()
        return self.messages()


def retained(broker: Broker, topic: str, timeout_s: float = 3.0) -> dict[str, str]:
    """The retained messages under ``topic`` (a fresh subscriber, stopped after ``timeout_s``
    without a new message)."""
    proc = subprocess.run(
        [MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-v",
         "--retained-only", "-W", str(int(timeout_s))],
        capture_output=True,
        timeout=timeout_s + 10,
    )  # fmt: skip
    out = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        t, _, payload = line.partition(" ")
        out[t] = payload
    return out


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One mosquitto for the whole session (tests use their own topic prefix)."""
    problem = _missing()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    b = Broker(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield b
    finally:
        b.stop()
