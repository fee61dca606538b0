"""The HTTP server of ``--serve`` and ``detector serve``: one FastAPI app, uvicorn, one thread.

The app always has the live view (:mod:`detector.outputs.web.routes`) and the access rules
(:mod:`detector.outputs.web.access`); the detection service adds its own routers. uvicorn's
event loop runs on one daemon thread beside the pipeline: viewers are coroutines there, the
pipeline only publishes into the hub, so no viewer can hold it up. Connections are guarded
against slow clients: request headers must arrive within ``header_timeout_s`` (slowloris),
bodies piece by piece within the access rules' deadline, and a viewer that accepts no data
for ``send_timeout_s`` is cut off; past ``max_connections`` new requests get 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request
from uvicorn import Config as UvicornConfig
from uvicorn import Server as UvicornServer
from uvicorn.protocols.http.h11_impl import H11Protocol

from detector.config import DEFAULT_SERVE_HOST as DEFAULT_HOST
from detector.config import Config, parse_address
from detector.errors import ConfigError, SinkError
from detector.outputs.web.access import Access, AccessMiddleware, access_from
from detector.outputs.web.broadcast import Broadcaster
from detector.outputs.web.health import health_router
from detector.outputs.web.hub import Hub
from detector.outputs.web.metrics import WebMetrics
from detector.outputs.web.routes import TRANSPORT_KEY, web_router

log = logging.getLogger(__name__)

# A fixed send buffer (no autotuning up to megabytes): a viewer that stops reading is
# found out after a frame or two instead of after seconds of stale frames.
_SNDBUF_BYTES = 256 * 1024
_START_TIMEOUT_S = 15.0
_MAX_HEADER_BYTES = 16 * 1024


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (no one else can reach the page)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's head (slowloris),
    a small send buffer, and the connection handed to the app (to cut off stalled viewers)."""

    header_timeout_s = 10.0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF_BYTES)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._armed_for = self.cycle
        self._deadline = self.loop.call_later(self.header_timeout_s, self._expired)

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.debug("web: %s sent no complete request head in time: closed", self.client)
            self.transport.abort()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and self.cycle is not self._armed_for:
            extensions: Any = self.cycle.scope.setdefault("extensions", {})
            extensions[TRANSPORT_KEY] = self.transport
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._deadline is None and not self.transport.is_closing():
            self._arm()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()  # type: ignore[union-attr]
            self._deadline = None
        super().connection_lost(exc)


def build_app(
    hub: Hub,
    broadcaster: Broadcaster,
    *,
    title: str,
    send_timeout_s: float,
    access: Access,
    metrics: WebMetrics,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The one app: the live view, health and metrics, then ``routers``, behind the access
    rules."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pump = asyncio.create_task(broadcaster.run())
        try:
            yield
        finally:
            broadcaster.stop()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(pump, 2.0)

    app = FastAPI(
        title=title,
        summary="Live view, detection API, health and metrics of detector.",
        lifespan=lifespan,
    )
    app.include_router(web_router(hub, broadcaster, title=title, send_timeout_s=send_timeout_s))
    app.include_router(health_router(hub, metrics))
    for router in routers:
        app.include_router(router)
    app.add_middleware(AccessMiddleware, access=access)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(request, exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return error_response(request, 422, f"invalid request: {where}")

    return app


def error_response(
    request: Request, status: int, message: str, headers: Any = None, hint: str | None = None
) -> JSONResponse:
    """A JSON error: ``{"error", "hint"}``, or DeepStack's ``{"success": false, "error"}``
    on its routes (its clients read those fields)."""
    if request.url.path.startswith("/v1/"):
        body: dict[str, Any] = {"success": False, "error": message, "code": status}
    else:
        body = {"error": message}
        if hint:
            body["hint"] = hint
    return JSONResponse(body, status, headers=headers)


class WebServer:
    """Serve ``hub`` (and any extra routers) over HTTP in a background thread until :meth:`close`.

    Args:
        hub: The feeds and events to show.
        host: Address to bind (``127.0.0.1``: this machine only).
        port: TCP port (0: a free one, see :attr:`port`).
        send_timeout_s: A viewer that accepts no data for this long is dropped.
        title: Shown in the page's heading and the API docs.
        access: Token and limits; beyond loopback a token is required.
        insecure: Allow binding beyond loopback with no token (a warning is logged).
        routers: More routes for the same app (the detection service's).
        max_connections: Open connections and requests beyond which new ones get 503.
        header_timeout_s: A connection whose request head is not complete by then is closed.

    Raises:
        SinkError: The port is in use or the address cannot be bound (from :meth:`start`).
        ConfigError: Bound beyond loopback without a token and without ``insecure``.
    """

    def __init__(
        self,
        hub: Hub,
        host: str = DEFAULT_HOST,
        port: int = 8080,
        *,
        send_timeout_s: float = 5.0,
        title: str = "detector",
        access: Access | None = None,
        insecure: bool = False,
        routers: Sequence[APIRouter] = (),
        max_connections: int = 512,
        header_timeout_s: float = 10.0,
    ) -> None:
        self.hub = hub
        self.host = host
        self.port = port
        self.send_timeout_s = float(send_timeout_s)
        self.title = title
        self.access = access or Access()
        self.insecure = insecure
        self.routers = list(routers)
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.stopping = threading.Event()
        self.broadcaster = Broadcaster(hub)
        self.metrics = WebMetrics(hub)
        self._server: UvicornServer | None = None
        self._thread: threading.Thread | None = None
        self._app: FastAPI | None = None

    @classmethod
    def for_run(cls, hub: Hub, config: Config, title: str) -> WebServer:
        """The server a run's ``output.serve`` and ``serve:`` section ask for (not started)."""
        assert config.output.serve is not None
        host, port = parse_address(config.output.serve)
        access = access_from(config.serve)
        return cls(hub, host, port, title=f"detector — {title}", access=access,
                   insecure=config.serve.insecure)  # fmt: skip

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> WebServer:
        """Bind and serve in a thread; returns self once the server accepts connections."""
        self.check_access()
        sock = self._bind()
        self.port = int(sock.getsockname()[1])
        app = build_app(
            self.hub,
            self.broadcaster,
            title=self.title,
            send_timeout_s=self.send_timeout_s,
            access=self.access,
            metrics=self.metrics,
            routers=self.routers,
        )
        self._app = app
        protocol = type("_Guarded", (_Protocol,), {"header_timeout_s": self.header_timeout_s})
        config = UvicornConfig(
            app,
            http=protocol,
            loop="asyncio",
            lifespan="on",
            log_config=None,  # the application's logging stays as the CLI set it
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=2,
            limit_concurrency=self.max_connections,
            h11_max_incomplete_event_size=_MAX_HEADER_BYTES,
        )
        server = UvicornServer(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="detector-web", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            self.close()
            sock.close()
            raise SinkError(f"the web server on {self.url} did not start")
        if not is_loopback(self.host) and self.access.token is None:
            log.warning(
                "web view on %s is reachable from other machines and has no "
                "authentication: anyone who can reach this port sees the video",
                self.url,
            )
        log.info("web view: %s", self.url)
        return self

    def include(self, routers: Sequence[APIRouter]) -> None:
        """Add ``routers`` to the app, before or after :meth:`start` (a run adds the detection
        API and run-time sources once its model is loaded; the page is up before that)."""
        self.routers += routers
        if self._app is not None:
            for router in routers:
                self._app.include_router(router)
            self._app.openapi_schema = None  # /docs shows the new routes

    def check_access(self) -> None:
        """Refuse (``ConfigError``, exit 2) to serve beyond loopback with no token unless
        ``insecure``; called by :meth:`start`, and earlier by whoever wants to fail fast."""
        if is_loopback(self.host) or self.access.token is not None or self.insecure:
            return
        raise ConfigError(
            f"refusing to serve on {self.host}:{self.port} without an API token: anyone who "
            "can reach that port would see the video and could use the model",
            hint="set a token (serve.token, serve.token_file or the DETECTOR_API_TOKEN "
            "variable), bind 127.0.0.1, or pass --insecure to serve openly anyway",
        )

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
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
        return sock

    def close(self) -> None:
        """Stop serving: open streams end, the listening socket closes. Idempotent."""
        self.stopping.set()
        self.hub.close()
        self.broadcaster.stop()
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def __enter__(self) -> WebServer:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()
