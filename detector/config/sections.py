"""The config's sections (source, model, detect, output, run, serve, ...) and the frozen Config."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.config.fields import (
    DEFAULT_THRESHOLD,
    DETECTION,
    ENGINE,
    EVENTS,
    OD_INPUT,
    OD_OUTPUTS,
    OUTPUTS,
    SOURCE_AND_MODEL,
    Flag,
    _enum,
    _f,
    _switch,
)
from detector.events import options as events_options
from detector.events import spec as events_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceConfig:
    """``source:`` — what to read. ``uri`` is a camera index, a URL, or an absolute path/glob;
    or a list of them (several sources in one run: ``uris`` is always the list)."""

    uri: str | tuple[str, ...] = _f(
        "${samples}/vtest.avi",
        "uri",
        flag=Flag(
            "camera index (0), video file, rtsp:// or http(s):// URL, image folder, glob or "
            "image, or a folder of videos (one run each); give it several times for several "
            "sources in one run (one model, a sub-folder each)",
            SOURCE_AND_MODEL,
            "source",
            "URI",
            repeat=True,
        ),
    )
    width: int | None = _f(None, "int", null=True, lo=1)
    height: int | None = _f(None, "int", null=True, lo=1)
    # Live sources (cameras, live streams) only: reconnect attempts per outage (None:
    # forever, 0: never), the first and the longest wait between them, and the watchdog.
    reconnect: int | None = _f(None, "attempts", null=True, lo=0)
    reconnect_delay_s: float = _f(0.5, "float", lo=0.0)
    reconnect_max_delay_s: float = _f(10.0, "float", lo=0.0)
    stall_timeout_s: float = _f(10.0, "float", lo=0.0, lo_open=True)

    @property
    def uris(self) -> tuple[str, ...]:
        """Every source given, in order (one for a plain ``uri``)."""
        return (self.uri,) if isinstance(self.uri, str) else tuple(self.uri)


@dataclass(frozen=True)
class ModelConfig:
    """``model:`` — which graph, its tensor names, and how TensorFlow runs it."""

    # RUF009 noqa: _f returns a dataclasses.field, not a default evaluated once and shared
    path: Path = _f(
        "${models}/ssd_mobilenet_v2_coco/frozen_inference_graph.pb",
        "path",
        flag=Flag(
            "frozen .pb, SavedModel folder or checkpoint folder", SOURCE_AND_MODEL, "model", "PATH"
        ),
    )
    labels: Path | None = _f(
        "${models}/ssd_mobilenet_v2_coco/label_map.pbtxt",
        "path",
        null=True,
        flag=Flag("label map (.pbtxt or .txt); 'null' for none", SOURCE_AND_MODEL, metavar="PATH"),
    )
    input_tensor: str = _f(OD_INPUT, "str")
    boxes_tensor: str = _f(OD_OUTPUTS[0], "str")
    scores_tensor: str = _f(OD_OUTPUTS[1], "str")
    classes_tensor: str = _f(OD_OUTPUTS[2], "str")
    num_tensor: str = _f(OD_OUTPUTS[3], "str")
    signature: str = _f("serving_default", "str")
    device: str = _enum(("auto", "cpu", "gpu"), "where the model runs", SOURCE_AND_MODEL)
    allow_memory_growth: bool = _f(True, "bool")
    intra_op_threads: int = _f(1, "int", lo=0)
    inter_op_threads: int = _f(-1, "int", lo=-1)
    workers: int = _f(
        2,
        "int",
        lo=1,
        flag=Flag("inference threads for files and folders", SOURCE_AND_MODEL, metavar="N"),
    )
    allow_unsafe_ops: bool = _switch(
        False,
        "load graphs with ops outside the safe allowlist (trusted graphs only)",
        SOURCE_AND_MODEL,
    )
    init_missing: bool = _switch(
        False,
        "a checkpoint holding a subset of its graph's variables: the others take their "
        "initial values (logged) instead of failing",
        SOURCE_AND_MODEL,
    )
    precision: str = _enum(
        ("auto", "bf16", "fp32", "int8"),
        "CPU arithmetic; int8 with --backend openvino after 'model quantize'",
        SOURCE_AND_MODEL,
    )
    split: bool = _f(False, "bool")
    backend: str = _enum(
        ("auto", "tf", "openvino"),
        "what runs the model: auto (default: openvino on the CPU when the graph passes its "
        "parity gate, else tf), tf, or openvino (frozen SSD graphs, CPU; needs the "
        "'openvino' extra)",
        SOURCE_AND_MODEL,
    )
    cache_dir: Path | None = _f(None, "path", null=True)


@dataclass(frozen=True)
class DetectConfig:
    """``detect:`` — which detections to keep, how often to run the model, what to log."""

    threshold: float = _f(
        DEFAULT_THRESHOLD,
        "float",
        lo=0.0,
        hi=1.0,
        flag=Flag("minimum score in [0, 1]", DETECTION, metavar="SCORE"),
    )
    classes: tuple[str | int, ...] = _f(
        [],
        "classes",
        flag=Flag(
            "classes to keep, names or ids, comma-separated (e.g. person,car)",
            DETECTION,
            metavar="LIST",
        ),
    )
    max_boxes: int = _f(100, "int", lo=1)
    detect_every: int = _f(
        1,
        "int",
        lo=1,
        flag=Flag("run the model on every Nth frame, carry boxes between", DETECTION, metavar="N"),
    )
    report_every: int = _f(75, "int", lo=0)
    report_threshold: float = _f(DEFAULT_THRESHOLD, "float", lo=0.0, hi=1.0)
    track: str = _enum(
        ("none", "bytetrack", "sort"),
        "follow objects with persistent ids (default tracker: bytetrack); between "
        "model runs the boxes move with them",
        DETECTION,
        const="bytetrack",
    )
    track_low_threshold: float = _f(0.1, "float", lo=0.0, hi=1.0)
    track_lost_s: float = _f(1.0, "float", lo=0.0)
    track_min_iou: float | None = _f(None, "float", null=True, lo=0.0, hi=1.0)
    track_motion: str = _enum(("flow", "kalman"))
    thresholds: tuple[tuple[str | int, float], ...] = _f(
        [],
        "thresholds",
        flag=Flag("per-class minimum scores, e.g. person=0.6", EVENTS, metavar="CLASS=SCORE,..."),
    )
    min_area: float | None = _f(
        None,
        "area",
        null=True,
        flag=Flag("smallest box: pixels, or <= 1: frame fraction", EVENTS, metavar="A"),
    )
    max_area: float | None = _f(
        None,
        "area",
        null=True,
        flag=Flag("largest box: pixels, or <= 1: frame fraction", EVENTS, metavar="A"),
    )
    ignore: tuple[events_spec.MaskSpec, ...] = _f([], "masks")


@dataclass(frozen=True)
class OutputConfig:
    """``output:`` — where results go: run folder, window, video, images, JSON lines."""

    dir: Path = _f(
        "${runs}",
        "path",
        flag=Flag("folder holding the run folders (runs/)", OUTPUTS, "output", "DIR"),
    )
    name: str | None = _f(
        None,
        "name",
        null=True,
        flag=Flag("run folder name (default: the source's)", OUTPUTS, metavar="NAME"),
    )
    show: bool = _switch(
        False, "show a window (q or Esc quits); with no display the run goes on disk-only", OUTPUTS
    )
    video: bool = _switch(True, "write the annotated video", OUTPUTS)
    video_format: str = _enum(("mp4", "avi"), "video container", OUTPUTS)
    video_codec: str = _enum(
        ("h264", "mp4v", "mjpg"),
        "h264 (default; plays in browsers, crash-safe .mp4), or mp4v / mjpg through OpenCV",
        OUTPUTS,
    )
    images: bool = _switch(False, "write every annotated frame as an image", OUTPUTS)
    jsonl: bool = _switch(True, "write one JSON line per frame", OUTPUTS)
    coco: bool = _switch(
        False, "write coco_results.json (COCO results) and coco_images.json", OUTPUTS
    )
    csv: bool = _switch(False, "write detections.csv, a row per detection", OUTPUTS)
    mot: bool = _switch(
        False, "write mot.txt, MOT Challenge lines (confirmed tracks above the threshold)", OUTPUTS
    )
    mot_all: bool = _switch(
        False,
        "write every tracked row into mot.txt (unconfirmed ids -1, low-score matches)",
        OUTPUTS,
    )
    progress: str = _enum(
        ("auto", "bar", "log", "off"),
        "files and folders: a bar on a terminal (auto), a log line every few seconds, or none",
        OUTPUTS,
    )
    hud: bool = _switch(True, "draw FPS and inference time on the frames", OUTPUTS)
    serve: str | None = _f(
        None,
        "serve",
        null=True,
        flag=Flag(
            "serve a live page of every source at http://HOST:PORT/, with /healthz, /readyz "
            "and /metrics (HOST 127.0.0.1 unless given; beyond it an API token is required: "
            "serve.token, --token-file or DETECTOR_API_TOKEN)",
            OUTPUTS,
            metavar="[HOST:]PORT",
        ),
    )


@dataclass(frozen=True)
class RunConfig:
    """``run:`` — how long to run and how to measure it."""

    max_frames: int | None = _f(
        None, "int", null=True, lo=1, flag=Flag("stop after N frames", DETECTION, metavar="N")
    )
    fps_interval_s: float = _f(5.0, "float", lo=0.0, lo_open=True)
    warmup_frames: int = _f(2, "int", lo=0)
    engine: str = _enum(
        ("local", "ray"),
        "local threads (default) or a pool of Ray actors, local or on a cluster",
        ENGINE,
    )
    ray_address: str | None = _f(
        None,
        "str",
        null=True,
        flag=Flag("join this Ray cluster (host:6379 or auto)", ENGINE, metavar="ADDR"),
    )
    ray_actors: int = _f(
        2, "int", lo=1, flag=Flag("Ray actors, one model copy each", ENGINE, metavar="N")
    )
    ray_batch_size: int = _f(
        8, "int", lo=1, flag=Flag("image files per actor call", ENGINE, metavar="N")
    )
    ray_cpus_per_actor: float = _f(
        1.0, "float", lo=0.0, flag=Flag("CPUs Ray reserves per actor", ENGINE, metavar="N")
    )
    ray_gpus_per_actor: float = _f(
        0.0, "float", lo=0.0, flag=Flag("GPUs Ray reserves per actor", ENGINE, metavar="N")
    )
    ray_ranges_per_video: int = _f(0, "int", lo=0)
    ray_cpus_per_source: float = _f(
        1.0,
        "float",
        lo=0.0,
        flag=Flag("CPUs Ray reserves per camera or stream worker", ENGINE, metavar="N"),
    )
    ray_max_restarts: int = _f(
        3,
        "int",
        lo=0,
        flag=Flag("restarts of a dead camera worker before its source fails", ENGINE, metavar="N"),
    )
    ray_outputs: str = _enum(
        ("shared", "driver"),
        "where camera workers write: the output folder (shared by the nodes), or "
        "their node's scratch folder, sent to this machine as it is written",
        ENGINE,
    )
    ray_placement: tuple[tuple[str, str, float], ...] = _f(
        [],
        "placement",
        flag=Flag(
            "the Ray custom resource (node label) a source's worker needs",
            ENGINE,
            metavar="SOURCE=RESOURCE[:N],...",
        ),
    )


@dataclass(frozen=True)
class ServeConfig:
    """``serve:`` — the HTTP server of ``--serve`` and ``detector serve``: access and limits."""

    token: str | None = _f(None, "str", null=True)
    token_file: Path | None = _f(
        None,
        "path",
        null=True,
        flag=Flag("the server's API token: the file's first line", OUTPUTS, metavar="FILE"),
    )
    insecure: bool = _switch(
        False,
        "serve beyond 127.0.0.1 with no API token (anyone on the network sees the video)",
        OUTPUTS,
    )
    max_body_mb: float = _f(20.0, "float", lo=0.0, lo_open=True)
    max_megapixels: float = _f(40.0, "float", lo=0.0, lo_open=True)
    rate_limit: float = _f(50.0, "float", lo=0.0)
    batch_size: int = _f(8, "int", lo=1)
    batch_wait_ms: float = _f(5.0, "float", lo=0.0)
    batch_side: int = _f(300, "int", lo=0)
    queue: int = _f(32, "int", lo=1)
    stalled_after_s: float = _f(5.0, "float", lo=0.0, lo_open=True)


SECTIONS: dict[str, type] = {
    "source": SourceConfig,
    "model": ModelConfig,
    "detect": DetectConfig,
    "output": OutputConfig,
    "run": RunConfig,
    "serve": ServeConfig,
    "events": events_options.EventsConfig,
}
KEYS: tuple[str, ...] = tuple(
    f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)
)


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; ``path`` is the file it came from (None: defaults)."""

    source: SourceConfig
    model: ModelConfig
    detect: DetectConfig
    output: OutputConfig
    run: RunConfig
    serve: ServeConfig = field(default_factory=ServeConfig)
    events: events_options.EventsConfig = field(default_factory=events_options.EventsConfig)
    zones: tuple[events_spec.ZoneSpec, ...] = ()
    lines: tuple[events_spec.LineSpec, ...] = ()
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready sections (paths as strings, tuples as lists)."""

        plain = events_spec.plain
        out: dict[str, Any] = {
            s: {
                f.name: plain(getattr(getattr(self, s), f.name))
                for f in dataclasses.fields(SECTIONS[s])
            }
            for s in SECTIONS
        }
        if out["serve"]["token"]:  # a secret never leaves the process
            out["serve"]["token"] = "***"
        out["detect"]["thresholds"] = dict(self.detect.thresholds)
        out.update(zones=plain(self.zones), lines=plain(self.lines))
        return out
