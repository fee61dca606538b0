"""Hostile clients against a running service: many viewers, slowloris, oversized headers, path
traversal. Each is answered or refused, the pipeline keeps processing every frame it reads,
and no thread or file descriptor is left behind."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import httpx
import pytest
from helpers.mjpeg_server import MjpegServer
from helpers.service_clients import open_fds, raw, settle, threads

pytestmark = [pytest.mark.e2e, pytest.mark.tf]

VIEWERS = 50
SLOWLORIS = 10


class _Viewer:
    """An MJPEG client that reads (and discards) everything, on its own thread."""

    def __init__(self, port: int, key: str) -> None:
        self.bytes = 0
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(f"GET /stream/{key}.mjpg HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(1 << 16):
                self.bytes += len(chunk)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)


def _counts(http: httpx.Client, key: str) -> dict:
    return http.get(f"api/sources/{key}").json()["frames"]


def test_hostile_clients_are_answered_or_refused_and_the_run_goes_on(service):
    with (
        MjpegServer(fps=12, size=(640, 480)) as cam,
        httpx.Client(base_url=service.url, timeout=60) as http,
    ):
        key = http.post("api/sources", json={"uri": cam.url}).json()["id"]
        assert settle(lambda: _counts(http, key)["processed"] >= 24)
        time.sleep(1.0)  # the server's worker threads exist now
        fds0, threads0 = open_fds(), threads()
        names0 = sorted(t.name for t in threading.enumerate())

        quiet0 = _counts(http, key)
        assert settle(lambda: _counts(http, key)["read"] >= quiet0["read"] + 36)
        quiet1 = _counts(http, key)

        viewers = [_Viewer(service.port, key) for _ in range(VIEWERS)]
        lorises = [socket.create_connection(("127.0.0.1", service.port)) for _ in range(SLOWLORIS)]
        for s in lorises:
            s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
        busy0 = _counts(http, key)
        assert settle(lambda: _counts(http, key)["read"] >= busy0["read"] + 36)
        # the others, while 50 viewers watch
        huge = raw(
            service.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n"
        )
        assert huge.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")) or huge == b"", huge[:80]
        for path in (
            "/snapshot/..%2F..%2F..%2Fetc%2Fpasswd.jpg",
            "/stream/../../../../etc/passwd.mjpg",
            "/../../../etc/passwd",
            "/static/%2e%2e/%2e%2e/etc/passwd",
        ):
            answer = raw(
                service.port,
                f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
            )
            assert answer.split(b" ")[1] in (b"404", b"400"), (path, answer[:80])
            assert b"root:" not in answer
        garbage = raw(service.port, b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400") or garbage == b""
        busy1 = _counts(http, key)
        assert all(v.bytes > 0 for v in viewers)  # every viewer got frames

        # the slowloris connections are cut off by the header deadline
        def closed(s: socket.socket) -> bool:
            s.settimeout(0.05)
            try:
                return s.recv(1) == b""
            except TimeoutError:
                return False
            except OSError:
                return True

        assert settle(lambda: all(closed(s) for s in lorises), 30)
        for s in lorises:
            s.close()
        for v in viewers:
            v.close()
        assert settle(lambda: service.hub.feed(key).viewers == 0)
        # everything the clients held is released (idle server worker threads time out)
        assert settle(lambda: open_fds() <= fds0, 30), (open_fds(), fds0)
        # (the server's pool of worker threads lets idle ones go when next called on)
        assert settle(lambda: http.get("api/status") and threads() <= threads0, 40), "\n".join(
            [*names0, "--", *sorted(t.name for t in threading.enumerate())]
        )
        assert http.get("healthz").json() == {"status": "ok"}
        http.delete(f"api/sources/{key}")

    # Frames processed per frame read, quiet vs under attack: the pipeline kept up.
    def ratio(a: dict, b: dict) -> float:
        return (b["processed"] - a["processed"]) / max(1, b["read"] - a["read"])

    assert ratio(busy0, busy1) >= 0.9 * ratio(quiet0, quiet1), (quiet0, quiet1, busy0, busy1)
