"""The live view's routes: the page, MJPEG streams, snapshots, status JSON and server-sent events.

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

Streams are raw ASGI responses: each send has a deadline (a viewer that accepts nothing for
``send_timeout_s`` has its connection aborted), and a disconnect ends the stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from detector.outputs.web.broadcast import Broadcaster
from detector.outputs.web.hub import Feed, Hub

log = logging.getLogger(__name__)

BOUNDARY = "frame"
KEEPALIVE_S = 10.0  # an SSE comment this often finds clients that went away
TRANSPORT_KEY = "detector.transport"  # where the server's protocol puts the connection

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


def page_html() -> bytes:
    """The page, read from the package."""
    return resources.files("detector.outputs.web").joinpath("page.html").read_bytes()


def not_found(what: str) -> JSONResponse:
    """A 404 with a JSON error and where to look instead."""
    return JSONResponse(
        {"error": f"not found: {what}", "hint": "try /, /stream.mjpg, /api/status, /docs"}, 404
    )


class _Stream(Response):
    """A response that writes parts until its source ends, the server stops or the viewer goes.

    Subclasses implement :meth:`parts`. A send that does not complete within
    ``send_timeout_s`` (the viewer stopped reading) aborts the connection.
    """

    media_type = "application/octet-stream"

    def __init__(self, broadcaster: Broadcaster, send_timeout_s: float) -> None:
        super().__init__(media_type=self.media_type)
        self.broadcaster = broadcaster
        self.send_timeout_s = send_timeout_s
        self.dropped = False

    async def parts(self, gone: asyncio.Event) -> Any:  # an async iterator of bytes
        raise NotImplementedError
        yield b""  # pragma: no cover

    def started(self) -> None:
        """Called once the response head is sent."""

    def finished(self) -> None:
        """Called however the stream ends (``dropped`` says whether the viewer was lost)."""

    def closing(self) -> bytes:
        return b""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [
            (b"content-type", self.media_type.encode()),
            (b"cache-control", b"no-store"),
            (b"pragma", b"no-cache"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.Event()
        watcher = asyncio.create_task(self._watch(receive, gone))
        self.started()
        try:
            async for part in self.parts(gone):
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": part, "more_body": True}),
                    self.send_timeout_s,
                )
            if gone.is_set():
                self.dropped = True
            else:
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": self.closing()}),
                    self.send_timeout_s,
                )
        except (TimeoutError, asyncio.TimeoutError, OSError):
            self.dropped = True  # a viewer that stopped reading: cut it off
            transport = scope.get("extensions", {}).get(TRANSPORT_KEY)
            if transport is not None:
                transport.abort()
            log.debug("web: viewer %s dropped", scope.get("client"))
        finally:
            watcher.cancel()
            self.finished()

    async def _watch(self, receive: Receive, gone: asyncio.Event) -> None:
        with contextlib.suppress(Exception):
            while (await receive())["type"] != "http.disconnect":
                pass
        gone.set()
        await self.broadcaster.wake()


class MjpegStream(_Stream):
    """``multipart/x-mixed-replace`` JPEGs of one feed: the newest frame each time."""

    media_type = f"multipart/x-mixed-replace; boundary={BOUNDARY}"

    def __init__(self, broadcaster: Broadcaster, feed: Feed, send_timeout_s: float) -> None:
        super().__init__(broadcaster, send_timeout_s)
        self.feed = feed

    async def parts(self, gone: asyncio.Event) -> Any:
        async for data in self.broadcaster.frames(self.feed, gone):
            yield (
                b"--" + BOUNDARY.encode() + b"\r\nContent-Type: image/jpeg\r\n"
                b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n"
            )

    def started(self) -> None:
        self.feed.viewer_joined()

    def finished(self) -> None:
        self.feed.viewer_left(dropped=self.dropped)

    def closing(self) -> bytes:
        return b"--" + BOUNDARY.encode() + b"--\r\n"


class EventStream(_Stream):
    """``text/event-stream``: every frame's record as it is published (one source or all)."""

    media_type = "text/event-stream"

    def __init__(self, broadcaster: Broadcaster, only: str | None, send_timeout_s: float) -> None:
        super().__init__(broadcaster, send_timeout_s)
        self.only = only
        self.after = broadcaster.hub.events_published

    async def parts(self, gone: asyncio.Event) -> Any:
        b = self.broadcaster
        while not gone.is_set() and not b.stopped and not b.hub.closed:
            events = await b.events(self.after, KEEPALIVE_S)
            if not events:
                yield b": keep-alive\n\n"
                continue
            chunk = self._chunk(events)
            if chunk:
                yield chunk
        last = b.hub.wait_events(self.after, 0.0)  # the run's final figures, sent on close
        chunk = self._chunk(last) if last and not gone.is_set() else b""
        if chunk:
            yield chunk

    def _chunk(self, events: list[tuple[int, dict[str, Any]]]) -> bytes:
        self.after = events[-1][0]
        return b"".join(
            b"id: %d\ndata: %s\n\n" % (n, json.dumps(r).encode())
            for n, r in events
            if self.only is None or r.get("feed") in (self.only, None)
        )

    def started(self) -> None:
        with self.broadcaster.hub.cond:
            self.broadcaster.hub.event_listeners += 1

    def finished(self) -> None:
        with self.broadcaster.hub.cond:
            self.broadcaster.hub.event_listeners -= 1


def web_router(
    hub: Hub, broadcaster: Broadcaster, *, title: str, send_timeout_s: float
) -> APIRouter:
    """The live view's routes over ``hub``."""
    router = APIRouter(tags=["live view"])
    page = page_html()

    @router.get("/", include_in_schema=False)
    @router.get("/index.html", include_in_schema=False)
    async def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    @router.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @router.get("/api/status")
    async def status() -> dict[str, Any]:
        """Every source's figures: state, frame, rates, latency, detections, viewers."""
        return {**hub.status(), "title": title}

    @router.get("/api/events")
    async def events(source: str | None = None) -> Response:
        """Each frame's JSON-lines record as a server-sent event (``?source=<k>``: one)."""
        return EventStream(broadcaster, source, send_timeout_s)

    def stream(key: str) -> Response:
        feed = hub.feed(key)
        if feed is None:
            return not_found(f"no source {key!r}")
        return MjpegStream(broadcaster, feed, send_timeout_s)

    @router.get("/stream.mjpg", summary="MJPEG stream of the first source")
    async def first_stream() -> Response:
        return stream("0")

    @router.get("/stream/{key}.mjpg", summary="MJPEG stream of one source")
    async def one_stream(key: str) -> Response:
        return stream(key)

    @router.get("/snapshot/{key}.jpg", summary="The newest frame of one source as JPEG")
    async def snapshot(key: str, request: Request) -> Response:
        feed = hub.feed(key)
        data = await broadcaster.snapshot(feed) if feed is not None else None
        if data is None:
            return not_found(f"no frame from source {key!r} yet")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    return router
