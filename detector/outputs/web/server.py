"""The HTTP server of ``--serve``: the live page, MJPEG streams, status JSON and server-sent events.

Routes (``<k>`` is a source's key, ``0``, ``1``, ...):

* ``/`` — the page (``page.html``, a static file in this package);
* ``/stream.mjpg`` (the first source) and ``/stream/<k>.mjpg`` — ``multipart/x-mixed-replace``
  JPEGs, the newest frame each time the viewer is ready for one;
* ``/snapshot/<k>.jpg`` — the newest frame as one JPEG (the same bytes the streams send; the
  page polls it for sources beyond the fourth, as browsers open at most six connections to one
  server);
* ``/api/status`` — JSON: every source's figures (see :meth:`Hub.status`);
* ``/api/events`` — ``text/event-stream``: each frame's JSON-lines record as it is produced
  (``?source=<k>`` for one source).

Built on the standard library's ``ThreadingHTTPServer``: one thread per connection is right
for a handful of viewers, the work per connection is a blocking ``sendall`` with a timeout,
and it adds no dependency. Each connection's socket has a send timeout, so a viewer that
stops reading is dropped after ``send_timeout_s`` without the pipeline ever noticing.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from detector.config import DEFAULT_SERVE_HOST as DEFAULT_HOST
from detector.errors import SinkError
from detector.outputs.web.hub import Hub

log = logging.getLogger(__name__)

BOUNDARY = "frame"
_WAIT_S = 1.0  # how often a waiting stream re-checks that the server is still up
_KEEPALIVE_S = 10.0  # an SSE comment this often finds clients that went away
# A fixed send buffer (no autotuning up to megabytes): a viewer that stops reading is
# found out after a frame or two instead of after seconds of stale frames.
_SNDBUF_BYTES = 256 * 1024


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (no one else can reach the page)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def page_html() -> bytes:
    """The page, read from the package."""
    return resources.files("detector.outputs.web").joinpath("page.html").read_bytes()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck viewer never holds the process at exit
    web: WebServer

    def server_bind(self) -> None:
        if ":" in str(self.server_address[0]):  # an IPv6 host: the base made an IPv4 socket
            self.socket.close()
            self.address_family = socket.AF_INET6
            self.socket = socket.socket(self.address_family, self.socket_type)
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A viewer that vanished is normal; never print a traceback for it.
        log.debug("web: connection from %s ended with an error", client_address, exc_info=True)


class WebServer:
    """Serve ``hub`` over HTTP in a background thread until :meth:`close`.

    Args:
        hub: The feeds and events to show.
        host: Address to bind (``127.0.0.1``: this machine only).
        port: TCP port (0: a free one, see :attr:`port`).
        send_timeout_s: A viewer that accepts no data for this long is dropped.
        title: Shown in the page's heading.

    Raises:
        SinkError: The port is in use or the address cannot be bound (from :meth:`start`).
    """

    def __init__(
        self,
        hub: Hub,
        host: str = DEFAULT_HOST,
        port: int = 8080,
        *,
        send_timeout_s: float = 5.0,
        title: str = "detector",
    ) -> None:
        self.hub = hub
        self.host = host
        self.port = port
        self.send_timeout_s = float(send_timeout_s)
        self.title = title
        self.stopping = threading.Event()
        self._page = page_html()
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> WebServer:
        """Bind and serve in a thread; returns self."""
        try:
            server = _HttpServer((self.host, self.port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SinkError(
                    f"cannot serve on {self.host}:{self.port}: port {self.port} is already in use",
                    hint=f"choose another port (--serve {self.port + 1}), or stop "
                    "the program using it (e.g. 'ss -ltnp | grep "
                    f":{self.port}')",
                ) from exc
            raise SinkError(
                f"cannot serve on {self.host}:{self.port}: {exc.strerror or exc}",
                hint="check the address belongs to this machine (127.0.0.1 for "
                "local viewing, 0.0.0.0 for every interface)",
            ) from exc
        server.web = self
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="detector-web",
            daemon=True,
        )
        self._thread.start()
        if not is_loopback(self.host):
            log.warning(
                "web view on %s is reachable from other machines and has no "
                "authentication: anyone who can reach this port sees the video",
                self.url,
            )
        log.info("web view: %s", self.url)
        return self

    def close(self) -> None:
        """Stop serving: open streams end, the listening socket closes. Idempotent."""
        self.stopping.set()
        self.hub.close()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def __enter__(self) -> WebServer:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "detector-web"
    protocol_version = "HTTP/1.0"  # one response per connection; streams end by closing

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.web.send_timeout_s)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF_BYTES)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("web: %s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        web = self.server.web
        url = urlsplit(self.path)
        path = url.path
        try:
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", web._page)
            elif path == "/api/status":
                status = web.hub.status()
                status["title"] = web.title
                self._send(HTTPStatus.OK, "application/json", json.dumps(status).encode())
            elif path == "/api/events":
                only = parse_qs(url.query).get("source", [None])[0]
                self._events(web, only)
            elif path == "/stream.mjpg" or (path.startswith("/stream/") and path.endswith(".mjpg")):
                key = "0" if path == "/stream.mjpg" else path[len("/stream/") : -len(".mjpg")]
                self._stream(web, key)
            elif path.startswith("/snapshot/") and path.endswith(".jpg"):
                self._snapshot(web, path[len("/snapshot/") : -len(".jpg")])
            elif path == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, "image/x-icon", b"")
            else:
                self._send(
                    HTTPStatus.NOT_FOUND,
                    "text/plain; charset=utf-8",
                    b"not found: try /, /stream.mjpg, /snapshot/0.jpg, /api/status, /api/events\n",
                )
        except OSError:
            log.debug("web: viewer %s went away", self.address_string())

    def _send(self, status: HTTPStatus, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _snapshot(self, web: WebServer, key: str) -> None:
        feed = web.hub.feed(key)
        got = feed.jpeg() if feed is not None else None
        if got is None:
            self._send(
                HTTPStatus.NOT_FOUND,
                "text/plain; charset=utf-8",
                f"no frame from source {key!r} yet\n".encode(),
            )
            return
        self._send(HTTPStatus.OK, "image/jpeg", got[1])

    def _stream(self, web: WebServer, key: str) -> None:
        feed = web.hub.feed(key)
        if feed is None:
            self._send(
                HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", f"no source {key!r}\n".encode()
            )
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        self.end_headers()
        feed.viewer_joined()
        dropped = False
        try:
            sent = 0
            while not web.stopping.is_set():
                if feed.wait_frame(sent, _WAIT_S) is None:
                    if feed.ended:
                        break
                    continue
                got = feed.jpeg()
                if got is None:
                    continue
                sent, data = got
                self.wfile.write(
                    b"--" + BOUNDARY.encode() + b"\r\nContent-Type: image/jpeg\r\n"
                    b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n"
                )
        except OSError as exc:  # timed out (stalled viewer), reset or closed (vanished one)
            dropped = True
            log.debug("web: stream viewer %s dropped: %r", self.address_string(), exc)
        finally:
            feed.viewer_left(dropped=dropped)
        with contextlib.suppress(OSError):  # the closing boundary, for a clean end
            self.wfile.write(b"--" + BOUNDARY.encode() + b"--\r\n")

    def _events(self, web: WebServer, only: str | None) -> None:
        hub = web.hub
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with hub.cond:
            hub.event_listeners += 1
            after = hub.events_published
        try:
            idle_s = 0.0
            while not web.stopping.is_set() and not hub.closed:
                events = hub.wait_events(after, _WAIT_S)
                if not events:
                    idle_s += _WAIT_S
                    if idle_s >= _KEEPALIVE_S:
                        self.wfile.write(b": keep-alive\n\n")
                        idle_s = 0.0
                    continue
                idle_s = 0.0
                after = events[-1][0]
                chunks = [
                    b"id: %d\ndata: %s\n\n" % (n, json.dumps(r).encode())
                    for n, r in events
                    if only is None or r.get("feed") == only
                ]
                if chunks:
                    self.wfile.write(b"".join(chunks))
        except OSError as exc:
            log.debug("web: event viewer %s dropped: %r", self.address_string(), exc)
        finally:
            with hub.cond:
                hub.event_listeners -= 1
