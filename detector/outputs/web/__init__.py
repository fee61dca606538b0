"""The live web view (``--serve``): a page, MJPEG streams, status JSON and events over HTTP.

:class:`Hub` holds each source's latest frame (:class:`Feed`), :class:`WebSink` publishes
into it from the pipeline, :class:`WebServer` serves it (a FastAPI app run by uvicorn in a
thread) behind the :class:`Access` rules. The pipeline never waits on a viewer; see
:mod:`detector.outputs.web.hub` and :mod:`detector.outputs.web.broadcast`.
"""

from __future__ import annotations

from importlib.util import find_spec

from detector.errors import SinkError

if find_spec("fastapi") is None or find_spec("uvicorn") is None:
    raise SinkError(
        "serving over HTTP needs FastAPI and uvicorn, which are not installed",
        hint="install the 'serve' extra: pip install 'detector[serve]' (or .venv/bin/python "
        "-m pip install -e '.[serve]' in a checkout; bash .ci/setup installs it)",
    )

from detector.outputs.web.access import Access, access_from, read_token
from detector.outputs.web.hub import Feed, Hub
from detector.outputs.web.server import WebServer, is_loopback
from detector.outputs.web.sink import WebSink

__all__ = [
    "Access",
    "Feed",
    "Hub",
    "WebServer",
    "WebSink",
    "access_from",
    "is_loopback",
    "read_token",
]
