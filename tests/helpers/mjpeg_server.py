"""A real MJPEG-over-HTTP camera on 127.0.0.1 that a test can stop, restart and make stall.

It serves ``multipart/x-mixed-replace`` JPEG frames (what IP cameras and ``mjpg-streamer``
send), which OpenCV's FFmpeg backend reads as a live stream. Frame ``i`` is a flat image of
grey level ``i % 256`` with a white bar whose width grows with ``i`` (so a test can tell
frames apart after JPEG), unless a ``make_frame`` function is given.

    with MjpegServer(fps=20) as cam:
        cap = cv2.VideoCapture(cam.url, cv2.CAP_FFMPEG)
        cam.stop()      # the camera goes away: port closed, clients cut off
        cam.start()     # back on the same port
        cam.stall()     # connections stay open but no frame is sent
        cam.resume()

With ``user``/``password`` set it demands HTTP basic auth (``cam.url_with_credentials``),
to check that credentials never reach logs or files. Only ever binds 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "frameboundary"


def numbered_frame(index: int, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """BGR frame ``index``: grey level ``index % 256``, a white bar ``index % width`` wide."""
    width, height = size
    image = np.full((height, width, 3), index % 256, np.uint8)
    image[: height // 8, : index % width] = 255
    return image


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass(eq=False)
class MjpegServer:
    """An MJPEG camera served on ``http://127.0.0.1:<port>/<path>``.

    Args:
        fps: Frames sent per second to each client.
        size: Frame ``(width, height)`` in pixels.
        port: Port to bind (0: a free one, kept across :meth:`stop` / :meth:`start`).
        path: URL path of the stream.
        make_frame: ``index -> BGR uint8 image`` (default :func:`numbered_frame`).
        user: With ``password``, demand HTTP basic auth.
        password: The password for ``user``.
        quality: JPEG quality 1-100.
    """

    fps: float = 20.0
    size: tuple[int, int] = (160, 120)
    _: KW_ONLY
    port: int = 0
    path: str = "/stream.mjpg"
    make_frame: Callable[[int], np.ndarray] | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    quality: int = 80
    frames_sent: int = field(default=0, init=False)
    connections: int = field(default=0, init=False)  # stream requests answered (reconnects)
    auth_failures: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._make_frame = self.make_frame or (lambda i: numbered_frame(i, self.size))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._clients: set[socket.socket] = set()
        self._streaming = threading.Event()
        self._streaming.set()
        self._generation = 0

    # -- URLs -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The stream URL (without credentials)."""
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def url_with_credentials(self) -> str:
        """The stream URL with ``user:password@`` in it."""
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.port}{self.path}"

    # -- control ----------------------------------------------------------------------

    def start(self) -> MjpegServer:
        """Listen (again) on 127.0.0.1; the port stays the same across restarts."""
        if self._server is not None:
            return self
        self._server = self._bind()
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="mjpeg-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """The camera goes away: stop listening and cut every client off."""
        server, self._server = self._server, None
        with self._lock:
            self._generation += 1
            clients, self._clients = self._clients, set()
        for sock in clients:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def stall(self) -> None:
        """Keep every connection open but send nothing (a hung camera)."""
        self._streaming.clear()

    def resume(self) -> None:
        """Send frames again after :meth:`stall`."""
        self._streaming.set()

    def wait_for_frames(self, count: int, timeout_s: float = 10.0) -> bool:
        """Wait until ``count`` frames in all have been sent; False on timeout."""
        return self._wait(lambda: self.frames_sent >= count, timeout_s)

    def wait_for_connections(self, count: int, timeout_s: float = 10.0) -> bool:
        """Wait until ``count`` stream requests in all have been answered; False on timeout."""
        return self._wait(lambda: self.connections >= count, timeout_s)

    @staticmethod
    def _wait(done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ----------------------------------------------------------------------

    def _bind(self) -> _Server:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                owner._serve(self)

        # A restart right after stop() may race the old socket's release: retry briefly.
        deadline = time.monotonic() + 5.0
        while True:
            try:
                return _Server(("127.0.0.1", self.port), Handler)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _authorized(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.user is None:
            return True
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return handler.headers.get("Authorization", "") == f"Basic {token}"

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path.split("?", 1)[0] != self.path:
            handler.send_error(404)
            return
        if not self._authorized(handler):
            self.auth_failures += 1
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", 'Basic realm="camera"')
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        sock = handler.connection
        with self._lock:
            generation = self._generation
            self._clients.add(sock)
            self.connections += 1
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            handler.send_header("Cache-Control", "no-cache")
            handler.end_headers()
            period_s = 1.0 / self.fps
            due = time.monotonic()
            while generation == self._generation:
                if not self._streaming.wait(timeout=0.05):
                    due = time.monotonic()
                    continue
                with self._lock:
                    index = self.frames_sent
                    self.frames_sent += 1
                ok, jpeg = cv2.imencode(
                    ".jpg", self._make_frame(index), [cv2.IMWRITE_JPEG_QUALITY, self.quality]
                )
                assert ok
                data = jpeg.tobytes()
                handler.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                    + b"\r\n"
                )
                handler.wfile.flush()
                due += period_s
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    due = time.monotonic()
        except OSError:
            pass  # the client went away or stop() cut it off
        finally:
            with self._lock:
                self._clients.discard(sock)
