"""Clients for the service tests: waits, resource counts, raw sockets and Prometheus text."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

WAIT_S = 30.0


def settle(predicate: Callable[[], object], timeout_s: float = WAIT_S) -> bool:
    """Wait until ``predicate()`` is true (polling); whether it became true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def open_fds() -> int:
    """File descriptors this process holds now."""
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return threading.active_count()


def raw(port: int, data: bytes, timeout_s: float = 10.0) -> bytes:
    """Send ``data`` on a new connection and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name`` with ``labels`` in Prometheus exposition ``text``."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None
