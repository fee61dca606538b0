"""The public Python API: a ``Detector`` owning one model (``predict``, ``stream``) and ``run``.

Everything here is built from the app's own parts: the config module reads the keyword
settings (the same keys as the YAML file and the command line), the app's loader loads the
model (any format and backend), :func:`detector.pipeline.stages.run_pipeline` runs a stream
(sources, reconnect, ``detect_every``, tracking), and :func:`run` is what ``detector run``
runs. Images are BGR ``uint8 (H, W, 3)``; boxes pixel ``xyxy``; class ids label-map ids.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from detector.app import (
    analysis_stages,
    load_configured_model,
    model_threshold,
    reconnect_policy,
    run_app,
    track_settings,
)
from detector.config import Config, keyword_overrides, load_config, with_overrides
from detector.engine import Engine
from detector.errors import ConfigError, SourceError
from detector.events.collect import EventCollector
from detector.events.setup import open_events
from detector.events.stage import EventStage
from detector.imagefiles import read_image
from detector.labels import LabelMap, load_label_map
from detector.model.backends import check_backend
from detector.model.loader import require_model_path
from detector.model.options import ModelOptions
from detector.paths import display_path
from detector.pipeline.channel import Channel, Closed
from detector.pipeline.prelude import model_entry
from detector.pipeline.signals import new_run
from detector.pipeline.stages import PipelineOptions, inference_workers, run_pipeline
from detector.sources import Source, open_source
from detector.sources.spec import expand_sources
from detector.types import Detections, Frame, FrameResult, RunStats, SourceInfo

if TYPE_CHECKING:
    from detector.engine import Engine

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
#: What ``predict`` takes: a BGR ``uint8`` image (``(H, W, 3)``; ``(H, W)`` grey and
#: ``(H, W, 4)`` BGRA are converted), or the path of an image file.
ImageLike = np.ndarray | PathLike
#: What ``stream`` reads: a camera index, a video file, a stream URL, an image folder or glob,
#: or an opened :class:`detector.sources.Source`.
SourceLike = PathLike | int | Source

_JOIN_TIMEOUT_S = 15.0


class Detector:
    """One detection model, loaded once, safe to call from several threads at once.

    Args:
        model: A frozen graph (``.pb``), SavedModel folder or checkpoint folder; ``None`` is
            the default SSD MobileNet V2 COCO (``detector fetch`` fetches it).
        labels: A label map (``.pbtxt``, or ``.txt`` of names); ``None``: the config's
            (the default model's own label map).
        backend: ``auto``, ``tf`` or ``openvino``; ``None``: the config's (``auto``: openvino
            on the CPU when the graph passes its parity gate, else tf).
        threshold: Minimum score in ``[0, 1]``; ``None``: the config's (0.5).
        classes: Class names or ids to keep, e.g. ``["person", "car"]``; ``None``: all.
        config: A YAML config file to start from (``None``: the packaged defaults).
        **settings: Any other config key, by its field name (``max_boxes=20``,
            ``device="cpu"``, ``workers=4``) or dotted (``**{"model.precision": "fp32"}``).

    Raises:
        ConfigError: An unknown setting or a bad value (what, where, the closest key).
        ModelError: The model is missing (the hint quotes the fetch command) or unusable.
    """

    def __init__(
        self,
        model: PathLike | None = None,
        *,
        labels: PathLike | None = None,
        backend: str | None = None,
        threshold: float | None = None,
        classes: list[str | int] | tuple[str | int, ...] | None = None,
        config: PathLike | None = None,
        **settings: object,
    ) -> None:
        given = dict(
            model=model, labels=labels, backend=backend, threshold=threshold, classes=classes
        )
        self._config_file = config
        self._overrides: dict[str, object] | None = keyword_overrides({**given, **settings})
        self._load(load_config(config, self._overrides))

    @classmethod
    def from_config(cls, config: Config) -> Detector:
        """A detector for a loaded :class:`~detector.config.Config` (its ``model`` and
        ``detect`` sections; the other sections are kept for :meth:`stream`)."""
        self = cls.__new__(cls)
        self._config_file, self._overrides = None, None
        self._load(config)
        return self

    def _load(self, config: Config) -> None:
        new_run()  # a Ctrl-C an earlier run received does not count against this one
        self.config: Config = config
        mc = self.config.model
        check_backend(mc.backend, mc.precision)
        require_model_path(mc.path)
        self.label_map = load_label_map(mc.labels) if mc.labels is not None else LabelMap({})
        self._class_ids = self.label_map.resolve_classes(self.config.detect.classes)
        self._model: Any = load_configured_model(mc, mc.workers)
        try:
            warmup_ms = self._model.warm_up(runs=max(1, self.config.run.warmup_frames))
        except BaseException:
            self._model.close()
            raise
        options = ModelOptions.from_model(mc).sharing(mc.workers)
        self._entry = model_entry(options, self._model, warmup_ms)
        dc = self.config.detect
        self._engine: Engine = Engine(self._model, dc.threshold, self._class_ids, dc.max_boxes)
        self._closed = False

    @property
    def names(self) -> dict[int, str]:
        """Class id → name, from the label map."""
        return dict(self.label_map.names)

    @property
    def model_path(self) -> Path:
        """The model file or folder this detector runs."""
        return Path(self.config.model.path)

    @property
    def model(self) -> Any:
        """The loaded model (``predict(images_rgb)`` → TF OD API arrays; thread-safe): what
        a service shares between its detection API and its sources."""
        self._check_open()
        return self._model

    @property
    def engine(self) -> Engine:
        """The model behind the app's :class:`~detector.engine.Engine` (this detector's
        threshold, classes and ``max_boxes``)."""
        self._check_open()
        return self._engine

    def describe(self) -> dict[str, Any]:
        """What runs the model, as ``run.json`` records it: path, backend (and why),
        format, device, precision, load and warm-up times."""
        return dict(self._entry)

    def predict(self, image: ImageLike) -> Detections:
        """Detect objects in one image.

        Args:
            image: A BGR ``uint8`` array ``(H, W, 3)`` (as OpenCV reads it; grey and BGRA
                are converted), or the path of an image file.

        Returns:
            Detections above the threshold, best first: pixel ``xyxy``, ``scores``,
            ``class_ids`` and ``labels`` (class names).

        Raises:
            ValueError: The array is not an 8-bit image.
            SourceError: The file cannot be read or decoded (the reason is in the message).
        """
        self._check_open()
        frame = Frame(0, 0.0, _as_bgr(image))
        detections, _ = self._engine(frame)
        return detections.named(self.label_map.name)

    def stream(
        self,
        source: SourceLike,
        *,
        track: str | None = None,
        detect_every: int | None = None,
        max_frames: int | None = None,
        buffer: int = 8,
        **settings: object,
    ) -> ResultStream:
        """Run the app's pipeline over a source and yield a ``FrameResult`` per frame.

        Capture and inference run in threads of their own (files: ``workers`` frames in
        flight, nothing dropped; cameras and streams: the newest frame wins, reconnecting
        when they drop). Results come in frame order. Leaving the loop (``break``, an
        exception) or closing the stream stops and joins every thread.

        Args:
            source: A camera index, video file, ``rtsp://`` / ``http://`` URL, image
                folder, glob or image; or an opened :class:`detector.sources.Source`.
            track: ``bytetrack`` or ``sort`` gives each object a persistent id
                (``detections.track_ids``); ``None``: the config's (``none``).
            detect_every: Run the model on every Nth frame; the frames between carry the
                boxes (moved with their objects when tracking).
            max_frames: Stop after this many frames.
            buffer: Results that may wait for the caller (at least 1).
            **settings: Other ``source``, ``detect`` and ``run`` keys (``reconnect=3``,
                ``stall_timeout_s=5``, ``track_motion="kalman"``, ...), and ``workers``
                (inference threads for files: frames in flight); ``zones`` and ``lines``
                (as in a config, tracking switches on) and ``events`` keys (``mqtt=...``).

        Returns:
            An iterator of ``FrameResult`` and a context manager; ``.events()`` iterates the
            events of its tracked objects instead; ``.stats`` after the end (with
            ``counts`` when zones or lines were given).

        Raises:
            ConfigError: A bad setting, a model setting (fixed when the detector was made),
                or a source that expands to several (use :func:`run` for those).
            SourceError: The source cannot be opened.
        """
        self._check_open()
        given = dict(track=track, detect_every=detect_every, max_frames=max_frames)
        extra = keyword_overrides({**given, **settings})
        # workers (frames in flight) may change; the loaded model's own settings cannot
        fixed = sorted(k for k in extra if k.startswith("model.") and k != "model.workers")
        if fixed:
            raise ConfigError(
                f"stream(): {', '.join(fixed)} cannot change per stream",
                hint="model settings are fixed when the Detector is made: "
                "Detector(..., **settings)",
            )
        if buffer < 1:
            raise ConfigError(f"stream(): buffer must be at least 1; got {buffer}")
        config = self._config_with(extra)
        engine = self._engine_for(config)  # a tracker's errors come before the source
        opened = _open(source, config)
        outcome = _Outcome()  # shared with the pipeline's thread, which must not hold the stream
        results = _results(opened, config, engine, self.label_map, buffer, outcome)
        return ResultStream(opened, results, outcome)

    def close(self) -> None:
        """Release the model (its session and threads); later calls raise ``RuntimeError``."""
        if not self._closed:
            self._closed = True
            self._model.close()

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def backend(self) -> str:
        """What runs the model: ``tf`` or ``openvino`` (``auto`` resolved)."""
        return str(getattr(self._model, "backend", "tf"))

    def __repr__(self) -> str:
        path = str(self.config.model.path)
        return f"Detector({path!r}, backend={self.backend!r}, classes={len(self.label_map)})"

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Detector is closed")

    def _config_with(self, extra: dict[str, object]) -> Config:
        """This detector's config with ``extra`` keys over it (a stream's settings)."""
        if self._overrides is None:  # made from a Config
            return with_overrides(self.config, extra, "stream()")
        return load_config(self._config_file, {**self._overrides, **extra})

    def _engine_for(self, config: Config) -> Engine:
        """The engine a stream runs (ByteTrack also takes low scores) and its tracker settings."""

        settings = track_settings(config)
        threshold = model_threshold(config, self.label_map, settings)
        return Engine(self._model, threshold, self._class_ids, config.detect.max_boxes)


class _Outcome:
    """What the pipeline thread leaves behind: its numbers, or the error it ended with; and
    the events of the stream's objects as they come."""

    def __init__(self) -> None:
        self.stats: RunStats | None = None
        self.error: BaseException | None = None
        self.events = EventCollector()


class ResultStream:
    """The results of :meth:`Detector.stream`: iterate it, or use it in a ``with`` block.

    Attributes:
        info: What the source is (kind, live or not, size, frame rate, frame count).
    """

    def __init__(
        self, source: Source, results: Generator[FrameResult, None, None], outcome: _Outcome
    ) -> None:
        self.info: SourceInfo = source.info
        self._source = source
        self._results = results
        self._outcome = outcome

    @property
    def stats(self) -> RunStats | None:
        """The run's numbers once it has ended (``None`` until then)."""
        return self._outcome.stats

    def __iter__(self) -> Iterator[FrameResult]:
        return self

    def events(self) -> Iterator[dict[str, Any]]:
        """Read the stream to its end, yielding each event of its tracked objects as it comes
        (``new``, ``enter``, ``cross``, ..., ``end``: the dicts ``events.jsonl`` holds)."""
        for _ in self:
            yield from self._outcome.events.drain()
        yield from self._outcome.events.drain()  # the ends of the objects still in view

    def __next__(self) -> FrameResult:
        return next(self._results)

    def close(self) -> None:
        """Stop the pipeline, join its threads and close the source (idempotent)."""
        self._results.close()
        self._source.close()

    def __enter__(self) -> ResultStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:  # a loop left by break drops the last reference
        if hasattr(self, "_results"):
            self.close()


def _results(
    source: Source,
    config: Config,
    engine: Engine,
    labels: LabelMap,
    buffer: int,
    outcome: _Outcome,
) -> Generator[FrameResult, None, None]:
    """Run the pipeline on a thread of its own and hand its results over a channel.

    Holds no reference to the :class:`ResultStream`, so dropping that closes this.
    """
    options = _pipeline_options(config, source.info)
    out: Channel[FrameResult] = Channel(buffer, "block")
    halt = threading.Event()
    sinks = ExitStack()  # MQTT / webhook when configured: closed when the stream ends
    consume, events = _stages(config, labels, source.info, outcome, sinks, out, halt)

    def work() -> None:
        try:
            stats = run_pipeline(source, engine, consume, options, stop=halt)
            events.finish()  # the objects still in view end with the stream
            counts = events.counts() if events.zones or events.lines else None
            outcome.stats = replace(stats, counts=counts)
        except BaseException as exc:
            outcome.error = exc
        finally:
            out.close()
            sinks.close()

    thread = threading.Thread(target=work, name="detector-stream", daemon=True)
    thread.start()
    try:
        while True:
            try:
                yield out.get()
            except Closed:
                break
        thread.join()
        if outcome.error is not None:
            raise outcome.error
    finally:
        halt.set()
        out.close()
        thread.join(_JOIN_TIMEOUT_S)
        source.close()
        if thread.is_alive():
            log.error("the stream's pipeline did not stop within %.0f s", _JOIN_TIMEOUT_S)


def _pipeline_options(config: Config, info: SourceInfo) -> PipelineOptions:
    """The pipeline's options for a stream of ``info`` (the config's, as a run's)."""
    return PipelineOptions(
        detect_every=config.detect.detect_every,
        workers=inference_workers(info.live, config.model.workers),
        max_frames=config.run.max_frames,
        fps_interval_s=config.run.fps_interval_s,
        warmup_frames=config.run.warmup_frames,
        label="stream",
    )


def _stages(
    config: Config,
    labels: LabelMap,
    info: SourceInfo,
    outcome: _Outcome,
    sinks: ExitStack,
    out: Channel[FrameResult],
    halt: threading.Event,
) -> tuple[Any, EventStage]:
    """The stream's consumer (filter, tracker, events, then the hand-over to ``out``,
    named results) and its event stage (sinks open in ``sinks``)."""
    name = labels.name

    def hand_over(result: FrameResult) -> bool:
        named = replace(result, detections=result.detections.named(name))
        return out.put(named) and not halt.is_set()

    who = (str(info.kind), 0, info.uri)  # a stream is its run's only source
    events = open_events(config, None, labels, info, sinks, source=who, extra=[outcome.events])
    assert events is not None
    consume, _, _ = analysis_stages(config, labels, info, events.wrap(hand_over), who)
    return consume, events


def _open(source: SourceLike, config: Config) -> Source:
    """An opened source: as given, or the one URI ``source`` names (reconnecting if live)."""
    if isinstance(source, Source):
        return source
    uri = os.fspath(source) if isinstance(source, os.PathLike) else source
    specs = expand_sources(str(uri))
    if len(specs) != 1 or specs[0].uri != str(uri).strip():
        raise ConfigError(
            f"stream(): {str(uri)!r} holds {len(specs)} sources",
            hint="stream one source at a time, or run them all with detector.run(source=...)",
        )
    return open_source(
        specs[0],
        width=config.source.width,
        height=config.source.height,
        reconnect=reconnect_policy(config),
    )


def _as_bgr(image: ImageLike) -> np.ndarray:
    """A BGR ``uint8 (H, W, 3)`` array from an array or an image file."""
    import cv2

    if not isinstance(image, np.ndarray):
        path = Path(os.fspath(image))
        bgr, reason = read_image(path)
        if bgr is None:
            raise SourceError(
                f"cannot read image '{display_path(path)}': {reason}",
                hint="give a BGR uint8 array, or the path of a JPEG, PNG, BMP, TIFF or WebP",
            )
        return bgr
    if image.dtype != np.uint8:
        raise ValueError(
            f"predict() takes a uint8 image; got dtype {image.dtype} "
            "(scale floats in [0, 1] with (image * 255).astype(np.uint8))"
        )
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"predict() takes a BGR image (H, W, 3); got shape {image.shape}")
    return np.ascontiguousarray(image)


def run(
    config: PathLike | None = None, *, out: TextIO | None = None, **settings: object
) -> RunStats:
    """Run the whole app, as ``detector run`` does: sources, model, outputs, ``run.json``.

    Args:
        config: A YAML config file (``None``: the packaged defaults).
        out: Where the run summary is printed (default: stdout).
        **settings: Config keys over the file's: by field name (``source="clip.mp4"``,
            ``coco=True``, ``threshold=0.4``), the short names ``source``, ``model`` and
            ``output`` (the run folders' parent), or dotted (``**{"detect.track": "sort"}``).
            Values as in YAML, or strings as on the command line.

    Returns:
        The run's numbers (frames, FPS, inference times; several sources: their sums).

    Raises:
        DetectorError: A config (``exit_code`` 2), source, model, sink or stage error.
        KeyboardInterrupt: Ctrl-C, after the outputs were finalized.
    """
    return run_app(load_config(config, keyword_overrides(settings)), out=out)
