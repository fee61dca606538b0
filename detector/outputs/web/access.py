"""Who may call the server and how much: an API token, a size cap, a body deadline, a rate limit.

One ASGI middleware in front of every route. The token is taken from ``Authorization:
Bearer T``, ``X-API-Key: T``, ``?token=T`` (which also sets a cookie, so a browser opening
``/?token=T`` can load the page's images and figures) or that cookie; ``/healthz`` never
needs it, and the DeepStack route may carry it in its ``api_key`` form field instead (the
route checks that: see :func:`authorized`). Tokens are compared in constant time.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException

from detector.config import ServeConfig
from detector.errors import ConfigError

TOKEN_ENV = "DETECTOR_API_TOKEN"
COOKIE = "detector_token"
SCOPE_KEY = "detector.authorized"  # set on every request: did it carry the token?
TOKEN_KEY = "detector.token"  # the token, for routes that take it in a form field

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Access:
    """The server's access rules.

    Attributes:
        token: The API token; ``None``: no token asked (loopback only, or ``insecure``).
        max_header_bytes: Largest request head (names and values); bigger ones get 431.
        max_body_bytes: Largest request body; bigger ones get 413.
        body_timeout_s: Longest wait for each piece of a request body (a client that
            trickles its upload is cut off with 408).
        rate_per_s: Requests a second one client address may make on average (0: no
            limit); beyond the burst it gets 429 with ``Retry-After``.
        burst: Requests a client may make at once before the rate applies.
        open_paths: Paths that never need the token.
        form_token_paths: Path prefixes whose routes accept the token in a form field.
    """

    token: str | None = None
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 20 * 1024 * 1024
    body_timeout_s: float = 10.0
    rate_per_s: float = 0.0
    burst: int = 50
    open_paths: tuple[str, ...] = ("/healthz",)
    form_token_paths: tuple[str, ...] = ("/v1/vision/",)


def read_token(token: str | None, token_file: str | Path | None) -> str | None:
    """The API token: ``token`` (config), else the ``DETECTOR_API_TOKEN`` variable, else the
    first line of ``token_file``; None when none is given.

    Raises:
        ConfigError: The token file cannot be read or is empty.
    """
    if token:
        return token
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    if token_file is None:
        return None
    path = Path(token_file).expanduser()
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the API token file '{path}': {exc.strerror or exc}",
            hint="give a readable file holding the token on its first line (serve.token_file)",
        ) from exc
    if not text:
        raise ConfigError(f"the API token file '{path}' is empty", hint="write the token in it")
    return text.splitlines()[0].strip()


def access_from(serve: ServeConfig) -> Access:
    """The access rules a config's ``serve:`` section asks for (token read once, here)."""
    return Access(
        token=read_token(serve.token, serve.token_file),
        max_body_bytes=int(serve.max_body_mb * 1024 * 1024),
        rate_per_s=serve.rate_limit,
        burst=max(1, int(2 * serve.rate_limit)),
    )


def matches(given: str | None, token: str | None) -> bool:
    """True when no token is asked, or ``given`` is it (constant-time comparison)."""
    if token is None:
        return True
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def authorized(scope: Mapping[str, Any], form_token: str | None = None) -> bool:
    """Whether this request carried the token: in a header, the query or a cookie (checked
    by the middleware), or as ``form_token`` (a route's form field, e.g. DeepStack's
    ``api_key``)."""
    return bool(scope.get(SCOPE_KEY, False)) or matches(form_token, scope.get(TOKEN_KEY))


def _given_token(scope: Scope) -> tuple[str | None, bool]:
    """The token a request carries, and whether it came in the query string."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    if "x-api-key" in headers:
        return headers["x-api-key"].strip(), False
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0], True
    if "cookie" in headers:
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(headers["cookie"])
        except Exception:
            return None, False
        if COOKIE in cookie:
            return cookie[COOKIE].value, False
    return None, False


class RateLimiter:
    """A token bucket per client address (thread-safe; old buckets are forgotten)."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate_per_s, max(1, burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """0 if ``client`` may go now (and count it), else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            if len(self._buckets) > 10_000:  # many addresses: drop the full buckets
                refill_s = self.burst / self.rate
                for k in [k for k, (_, t) in self._buckets.items() if now - t > refill_s]:
                    del self._buckets[k]
            level, last = self._buckets.get(client, (float(self.burst), now))
            level = min(float(self.burst), level + (now - last) * self.rate)
            if level < 1.0:
                self._buckets[client] = (level, now)
                return (1.0 - level) / self.rate
            self._buckets[client] = (level - 1.0, now)
            return 0.0


async def send_json(send: Send, status: int, body: dict[str, Any], headers: Any = ()) -> None:
    """A complete JSON response."""
    data = json.dumps(body).encode()
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": data})


class AccessMiddleware:
    """Enforce :class:`Access` on every HTTP request before any route runs."""

    def __init__(self, app: App, access: Access) -> None:
        self.app = app
        self.access = access
        self.limiter = RateLimiter(access.rate_per_s, access.burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        a, path = self.access, scope["path"]
        if sum(len(k) + len(v) for k, v in scope["headers"]) > a.max_header_bytes:
            await send_json(
                send,
                431,
                {"error": f"request headers larger than {a.max_header_bytes} bytes"},
            )
            return
        if path in a.open_paths:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        wait = self.limiter.wait_s(client)
        if wait > 0:
            retry = str(max(1, math.ceil(wait))).encode()
            await send_json(
                send,
                429,
                {"error": f"too many requests from {client}", "hint": "slow down"},
                [(b"retry-after", retry)],
            )
            return
        given, from_query = _given_token(scope)
        ok = matches(given, a.token)
        scope[SCOPE_KEY], scope[TOKEN_KEY] = ok, a.token
        if not ok and not any(path.startswith(p) for p in a.form_token_paths):
            await send_json(send, 401 if given is None else 403, _token_error(given is None))
            return
        length = _content_length(scope)
        if length is not None and length > a.max_body_bytes:
            await send_json(send, 413, _too_large(a.max_body_bytes))
            return
        if from_query and ok and a.token is not None:
            send = _with_cookie(send, a.token)
        await self.app(scope, _limited(receive, a), send)


def _token_error(missing: bool) -> dict[str, str]:
    return {
        "error": "an API token is required" if missing else "wrong API token",
        "hint": "send 'Authorization: Bearer TOKEN' (or X-API-Key, ?token=, DeepStack's "
        "api_key field); the server's token comes from serve.token, serve.token_file or "
        f"{TOKEN_ENV}",
    }


def _too_large(limit: int) -> dict[str, str]:
    return {
        "error": f"request body larger than {limit} bytes",
        "hint": "send a smaller image, or raise serve.max_body_mb",
    }


def _content_length(scope: Scope) -> int | None:
    for k, v in scope["headers"]:
        if k.lower() == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


def _limited(receive: Receive, access: Access) -> Receive:
    """``receive`` with a size cap and a deadline on each piece of the body."""
    seen, done = 0, False

    async def wrapped() -> Message:
        nonlocal seen, done
        if done:  # the body is in: what follows is a wait for the disconnect, no deadline
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), access.body_timeout_s)
        except (TimeoutError, asyncio.TimeoutError):
            raise HTTPException(
                408, f"request body stalled for {access.body_timeout_s:g} s"
            ) from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            done = not message.get("more_body", False)
            if seen > access.max_body_bytes:
                raise HTTPException(413, _too_large(access.max_body_bytes)["error"])
        return message

    return wrapped


def _with_cookie(send: Send, token: str) -> Send:
    """``send`` that adds the token cookie to the response head."""
    cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/".encode("latin-1")

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
        await send(message)

    return wrapped
