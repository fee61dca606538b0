"""Prometheus metrics of the server (``/metrics``), every series named ``detector_*``, own registry.

Per source (labels ``source``: its name, ``id``: its key): frames read / processed /
dropped, reconnects, frames in flight, viewers, a state gauge per state, inference and
capture-to-output latency histograms, detections by label. For the detection API: requests
by route and status, request latency, images per model call, the request queue's depth.
Model and backend are labels of ``detector_model_info``. Counters the pipeline already keeps
are read at scrape time (a collector over the hub); histograms are fed by an observer the
hub calls once per published frame (a few dict lookups on the pipeline's thread).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from detector.outputs.web.hub import HEALTH, Feed, Hub
from detector.types import FrameResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MODEL_LABELS = ("path", "backend", "format", "device", "precision")
_MS_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class WebMetrics:
    """The registry and the instruments the server, the service and the pipeline feed.

    Args:
        hub: The feeds (one per source) to report; ``hub.model`` gives the model's labels.

    Attributes:
        queue_depth: The detection API's waiting requests now (set by the service).
    """

    def __init__(self, hub: Hub) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.queue_depth: Callable[[], int] | None = None
        per_source = ["source", "id"]
        self.inference = Histogram(
            "detector_inference_seconds",
            "Model time per run on a source's frame, or per API model call (source=api)",
            per_source,
            buckets=_MS_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "detector_end_to_end_latency_seconds",
            "Capture to output of each frame (annotated, written, published)",
            per_source,
            buckets=_MS_BUCKETS,
            registry=self.registry,
        )
        self.detections = Counter(
            "detector_detections",
            "Detections on the sources' output frames, by label",
            [*per_source, "label"],
            registry=self.registry,
        )
        self.requests = Counter(
            "detector_requests",
            "Detection API requests by route and HTTP status",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "detector_request_seconds",
            "Detection API request time (decode, queue, model, answer)",
            ["route"],
            buckets=_MS_BUCKETS,
            registry=self.registry,
        )
        self.batch_images = Histogram(
            "detector_batch_images",
            "Images per model call of the detection API",
            buckets=(1, 2, 4, 8, 16, 32),
            registry=self.registry,
        )
        self.registry.register(_HubCollector(hub, self))
        self._children: dict[str, Any] = {}
        hub.observers.append(self.observe)

    def observe(self, feed: Feed, result: FrameResult, labels: Callable[[int], str]) -> None:
        """One published frame of ``feed`` (the pipeline's thread): timings and detections."""
        self.record(feed, *frame_row(result, labels))

    def record(
        self, feed: Feed, inference_s: float | None, latency_s: float, names: Sequence[str]
    ) -> None:
        """One frame's model time (None: not a detection frame), capture-to-output time and
        detection labels, for ``feed`` (from this process, or as a remote worker shipped it)."""
        kids = self._children.get(feed.key)
        if kids is None:
            kids = self._children[feed.key] = (
                self.inference.labels(feed.name, feed.key),
                self.latency.labels(feed.name, feed.key),
            )
        if inference_s is not None:
            kids[0].observe(inference_s)
        kids[1].observe(latency_s)
        for name in names:
            self.detections.labels(feed.name, feed.key, name).inc()

    def batch(self, images: int, model_ms: float) -> None:
        """One model call of the detection API."""
        self.batch_images.observe(images)
        self.inference.labels("api", "api").observe(model_ms / 1e3)

    def text(self) -> bytes:
        """The exposition text ``/metrics`` answers."""
        return generate_latest(self.registry)


#: One frame as the metrics take it: model seconds (None: tracked, not detected), capture to
#: output seconds, the detections' labels.
FrameRow = tuple[float | None, float, tuple[str, ...]]


def frame_row(result: FrameResult, labels: Callable[[int], str]) -> FrameRow:
    """What the metrics take of one published frame, measured now."""
    fresh = result.fresh and result.inference_ms is not None
    inference = result.inference_ms / 1e3 if fresh and result.inference_ms is not None else None
    latency = max(0.0, time.monotonic() - result.frame.timestamp_s)
    return inference, latency, tuple(labels(int(c)) for c in result.detections.class_ids)


class FrameRows:
    """A hub observer keeping each published frame's :data:`FrameRow` until :meth:`drain`:
    a worker's figures, shipped to the process that serves ``/metrics`` (the newest
    ``limit`` rows between two drains)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._rows: deque[FrameRow] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def __call__(self, feed: Feed, result: FrameResult, labels: Callable[[int], str]) -> None:
        row = frame_row(result, labels)
        with self._lock:
            self._rows.append(row)

    def drain(self) -> list[FrameRow]:
        """The rows since the last drain, oldest first."""
        with self._lock:
            rows = list(self._rows)
            self._rows.clear()
        return rows


class _HubCollector(Collector):
    """Counters and gauges read from the hub at scrape time."""

    def __init__(self, hub: Hub, metrics: WebMetrics) -> None:
        self.hub, self.metrics = hub, metrics

    def collect(self) -> Iterator[Any]:
        yield from _source_families(list(self.hub.feeds))
        yield from self._service_families()

    def _service_families(self) -> Iterator[Any]:
        model = self.hub.model
        if model is not None:
            info = InfoMetricFamily("detector_model", "The loaded model and its backend")
            info.add_metric([], {k: str(model.get(k)) for k in MODEL_LABELS})
            yield info
        depth = GaugeMetricFamily(
            "detector_queue_depth", "Requests waiting for the model", labels=["queue"]
        )
        waiting = self.metrics.queue_depth
        depth.add_metric(["requests"], waiting() if waiting is not None else 0)
        yield depth
        yield GaugeMetricFamily(
            "detector_uptime_seconds",
            "Seconds since the service started",
            value=self.hub.clock() - self.hub.started,
        )


_NAMES = ["source", "id"]


def _source_families(feeds: list[Feed]) -> Iterator[Any]:
    """The per-source series: frames, reconnects, queues, viewers, state, events by sink."""
    fams = {
        "read": CounterMetricFamily(
            "detector_frames_read", "Frames a source delivered", labels=_NAMES
        ),
        "processed": CounterMetricFamily(
            "detector_frames_processed", "Frames through model and outputs", labels=_NAMES
        ),
        "dropped": CounterMetricFamily(
            "detector_frames_dropped",
            "Frames of a live source skipped to keep up (newest frame wins)",
            labels=_NAMES,
        ),
    }
    reconnects = CounterMetricFamily(
        "detector_reconnects", "Outages a live source came back from", labels=_NAMES
    )
    in_flight = GaugeMetricFamily(
        "detector_frames_in_flight", "Frames read but not yet output (queues)", labels=_NAMES
    )
    viewers = GaugeMetricFamily("detector_viewers", "MJPEG viewers now", labels=_NAMES)
    state = GaugeMetricFamily(
        "detector_source_state", "1 for the source's current state", labels=[*_NAMES, "state"]
    )
    events = CounterMetricFamily(
        "detector_events_published",
        "Events a source published, by sink: page (/api/events frame records), jsonl, "
        "mqtt, webhook, python",
        labels=[*_NAMES, "sink"],
    )
    for feed in feeds:
        ids = [feed.name, feed.key]
        counts = feed.counts()
        for key, fam in fams.items():
            fam.add_metric(ids, counts[key])
        reconnects.add_metric(ids, feed.reconnects())
        in_flight.add_metric(ids, max(0, counts["read"] - counts["processed"] - counts["dropped"]))
        viewers.add_metric(ids, feed.viewers)
        now = feed.health()
        for name in HEALTH:
            state.add_metric([*ids, name], 1.0 if name == now else 0.0)
        for sink, n in feed.events_by_sink().items():
            events.add_metric([*ids, sink], n)
    yield from fams.values()
    yield from (reconnects, in_flight, viewers, state, events)
