"""The live web view (``--serve``): a page, MJPEG streams, status JSON and events over HTTP.

:class:`Hub` holds each source's latest frame (:class:`Feed`), :class:`WebSink` publishes
into it from the pipeline, :class:`WebServer` serves it to browsers. The pipeline never
waits on a viewer; see :mod:`detector.outputs.web.hub`.
"""

from __future__ import annotations

from detector.outputs.web.hub import Feed, Hub
from detector.outputs.web.server import WebServer, is_loopback
from detector.outputs.web.sink import WebSink

__all__ = ["Feed", "Hub", "WebServer", "WebSink", "is_loopback"]
