"""The fleet's one page: the driver serves every worker's source as a local ``--serve`` run does.

The driver runs the web view of a local run (:mod:`detector.outputs.web`: the page, the MJPEG
streams, ``/api/status``, ``/healthz``, ``/readyz``, ``/metrics``) over a :class:`RemoteFeed`
per live source. A remote feed holds what its worker last reported (the supervisor asks each
worker every second, :mod:`detector.distributed.fleet`): the figures of the worker's own
feed, where it runs, its restarts, and its latest annotated frame as JPEG bytes, passed on as
they came (no decode, no re-encode). The page's picture therefore moves at the report rate
(about one frame a second); the figures are the worker's own.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Any

from detector.config import Config
from detector.outputs.web.hub import ENDED, Feed, Hub
from detector.sources.spec import SourceSpec

log = logging.getLogger(__name__)


class RemoteFeed(Feed):
    """A source whose pipeline runs on a Ray worker: its figures and frame as last reported."""

    def __init__(self, hub: Hub, key: str, name: str, uri: str) -> None:
        super().__init__(hub, key, name, uri, True, None, None)
        self.report: dict[str, Any] = {}
        self._remote_jpeg: bytes | None = None

    def update(self, report: dict[str, Any]) -> None:
        """A worker's report: its figures, and (when watched) the newest frame's JPEG."""
        jpeg = report.get("jpeg")
        with self.hub.cond:
            self.report = {k: v for k, v in report.items() if k != "jpeg"}
            if jpeg and jpeg != self._remote_jpeg:
                self._remote_jpeg = bytes(jpeg)
                self.seq += 1
            self.hub.cond.notify_all()

    def jpeg(self) -> tuple[int, bytes] | None:
        with self.hub.cond:
            return None if self._remote_jpeg is None else (self.seq, self._remote_jpeg)

    def state(self) -> str:
        return ENDED if self.ended else str(self.report.get("state") or "waiting")

    def health(self) -> str:
        return "ended" if self.ended else str(self.report.get("health") or "starting")

    def reconnects(self) -> int:
        return int(self.report.get("reconnects") or 0)

    def counts(self) -> dict[str, int]:
        got = self.report.get("counts") or {}
        return {k: int(got.get(k, 0)) for k in ("read", "processed", "dropped")}

    def status(self) -> dict[str, Any]:
        with self.hub.cond:
            report = dict(self.report)
        shown = {
            k: report.get(k)
            for k in (
                "frame",
                "frames_output",
                "width",
                "height",
                "fps",
                "inference_ms",
                "latency_ms",
                "detections",
                "dropped",
            )
        }
        return {
            "key": self.key,
            "name": self.name,
            "uri": self.uri,
            "live": True,
            "state": self.state(),
            "health": self.health(),
            "stream": f"/stream/{self.key}.mjpg",
            "total": None,
            "eta_s": None,
            "skipped": 0,
            "viewers": self.viewers,
            "viewers_dropped": self.viewers_dropped,
            "jpeg_encodes": 0,
            **shown,
            "worker": {k: report.get(k) for k in ("host", "pid", "node_id", "part")},
        }


class FleetView:
    """The driver's web server over a :class:`RemoteFeed` per live source."""

    def __init__(self, hub: Hub, feeds: dict[int, RemoteFeed]) -> None:
        self.hub = hub
        self.feeds = feeds

    @classmethod
    def start(
        cls, config: Config, specs: tuple[SourceSpec, ...], stack: ExitStack
    ) -> FleetView | None:
        """Serve the page when ``output.serve`` asks (closed with ``stack``), else None."""
        if config.output.serve is None:
            return None
        from detector.outputs.web import WebServer

        hub = Hub()
        feeds: dict[int, RemoteFeed] = {}
        for i, spec in enumerate(specs):
            if spec.live:
                with hub.cond:
                    feed = RemoteFeed(hub, str(len(hub.feeds)), spec.run_name, spec.shown)
                    hub.feeds.append(feed)
                feeds[i] = feed
        hub.model = {"path": str(config.model.path), "backend": config.model.backend}
        server = WebServer.for_run(hub, config, f"{len(feeds)} sources on Ray")
        stack.enter_context(server)
        return cls(hub, feeds)

    def update(self, index: int, report: dict[str, Any]) -> None:
        """The supervisor's report for the source at ``index`` of the run."""
        feed = self.feeds.get(index)
        if feed is not None:
            feed.update(report)
