"""YAML config → frozen, validated ``Config``: unknown keys get a did-you-mean; overrides apply.

Every key, its default and its meaning is documented in ``detector/default.yml`` (shipped
in the package); the defaults below are the same values (a test keeps them in sync). Relative
paths in a config file resolve against that file's folder; relative paths in overrides
(command-line flags, keywords) against the current directory. A path starting with
``${models}``, ``${samples}`` or ``${runs}`` starts in that folder (:func:`detector.paths.homes`).
Build configs with ``load_config`` (``load_config(None, {...})`` in tests): the section
classes' own defaults are the raw values, relative paths not yet resolved.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from detector.errors import ConfigError
from detector.events import options as events_options
from detector.events import spec as events_spec
from detector.paths import CONFIGS_DIR, DEFAULT_CONFIG, homes

DEFAULT_SERVE_HOST = "127.0.0.1"  # output.serve without a host: this machine only

log = logging.getLogger(__name__)


#: The score a detection needs to be kept, drawn and written unless configured.
DEFAULT_THRESHOLD = 0.5
#: The TF Object Detection API's tensor names: what the default model exposes, and the
#: names every model is read with unless ``model.*_tensor`` says otherwise.
OD_INPUT = "image_tensor:0"
OD_OUTPUTS = ("detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0")
#: The same outputs as graph nodes (no ``:0``).
OD_OUTPUT_NODES = tuple(name.partition(":")[0] for name in OD_OUTPUTS)

# The groups of the ``run`` command's flags, in the order ``--help`` shows them.
SOURCE_AND_MODEL = "source and model"
DETECTION = "detection"
ENGINE = "engine (image folders, globs, videos)"
OUTPUTS = "outputs"
EVENTS = "zones, lines and events (tracking switches on with them)"
FLAG_GROUPS = (SOURCE_AND_MODEL, DETECTION, ENGINE, OUTPUTS, EVENTS)


@dataclass(frozen=True)
class Flag:
    """How a key is set from the ``run`` command line (``--help`` is built from these).

    Attributes:
        help: What the flag does.
        group: Which of ``FLAG_GROUPS`` lists it.
        name: The flag without its dashes; ``""``: the key's name with ``-`` for ``_``.
        metavar: What ``--help`` calls its value (enums list their choices instead).
        const: The value of the flag given bare (``--track`` means ``bytetrack``).
        repeat: The flag may be given several times (the key takes the list).
        switch: ``--name`` / ``--no-name`` (``None``: when the key is true/false).
    """

    help: str
    group: str
    name: str = ""
    metavar: str | None = None
    const: str | None = None
    repeat: bool = False
    switch: bool | None = None


def _f(
    default: Any,
    kind: str,
    *,
    null: bool = False,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    choices: tuple[str, ...] = (),
    flag: Flag | None = None,
) -> Any:
    """A dataclass field carrying its validation rule (and its ``run`` flag) in ``metadata``."""
    meta = {
        "kind": kind,
        "null": null,
        "lo": lo,
        "hi": hi,
        "lo_open": lo_open,
        "choices": choices,
        "flag": flag,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def _switch(default: bool, help: str, group: str) -> Any:
    """A true/false key with its ``--name`` / ``--no-name`` flag."""
    return _f(default, "bool", flag=Flag(help, group))


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
    device: str = _f(
        "auto",
        "enum",
        choices=("auto", "cpu", "gpu"),
        flag=Flag("where the model runs", SOURCE_AND_MODEL),
    )
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
    precision: str = _f(
        "auto",
        "enum",
        choices=("auto", "bf16", "fp32", "int8"),
        flag=Flag(
            "CPU arithmetic; int8 with --backend openvino after 'model quantize'", SOURCE_AND_MODEL
        ),
    )
    split: bool = _f(False, "bool")
    backend: str = _f(
        "auto",
        "enum",
        choices=("auto", "tf", "openvino"),
        flag=Flag(
            "what runs the model: auto (default: openvino on the CPU when the graph passes its "
            "parity gate, else tf), tf, or openvino (frozen SSD graphs, CPU; needs the "
            "'openvino' extra)",
            SOURCE_AND_MODEL,
        ),
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
    track: str = _f(
        "none",
        "enum",
        choices=("none", "bytetrack", "sort"),
        flag=Flag(
            "follow objects with persistent ids (default tracker: bytetrack); between "
            "model runs the boxes move with them",
            DETECTION,
            const="bytetrack",
        ),
    )
    track_low_threshold: float = _f(0.1, "float", lo=0.0, hi=1.0)
    track_lost_s: float = _f(1.0, "float", lo=0.0)
    track_min_iou: float | None = _f(None, "float", null=True, lo=0.0, hi=1.0)
    track_motion: str = _f("flow", "enum", choices=("flow", "kalman"))
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
    video_format: str = _f(
        "mp4", "enum", choices=("mp4", "avi"), flag=Flag("video container", OUTPUTS)
    )
    video_codec: str = _f(
        "h264",
        "enum",
        choices=("h264", "mp4v", "mjpg"),
        flag=Flag(
            "h264 (default; plays in browsers, crash-safe .mp4), or mp4v / mjpg through OpenCV",
            OUTPUTS,
        ),
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
    progress: str = _f(
        "auto",
        "enum",
        choices=("auto", "bar", "log", "off"),
        flag=Flag(
            "files and folders: a bar on a terminal (auto), a log line every few seconds, or none",
            OUTPUTS,
        ),
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
    engine: str = _f(
        "local",
        "enum",
        choices=("local", "ray"),
        flag=Flag("local threads (default) or a pool of Ray actors, local or on a cluster", ENGINE),
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
LISTS, _PARSERS = events_spec.LIST_PARSERS, events_options.VALUE_PARSERS  # lists; value kinds
KEYS: tuple[str, ...] = tuple(
    f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)
)


def key_field(key: str) -> dataclasses.Field[Any]:
    """The dataclass field of a dotted key (``"model.backend"``), its rule in ``metadata``."""
    section, _, name = key.partition(".")
    for f in dataclasses.fields(SECTIONS[section]):
        if f.name == name:
            return f
    raise KeyError(key)


def choices(key: str) -> tuple[str, ...]:
    """The values an enum key accepts (``choices("model.backend")``): its one definition."""
    return tuple(key_field(key).metadata["choices"])


#: The flags of keys whose fields live elsewhere: the ``events:`` section, the zone and line lists.
OTHER_FLAGS: dict[str, Flag] = {
    "zones": Flag(
        "a zone: its polygon in pixels or fractions of the frame (repeatable)",
        EVENTS,
        "zone",
        "NAME:X,Y X,Y X,Y...",
        repeat=True,
    ),
    "lines": Flag(
        "a counting line from start to end; 'in' crosses from its right to its left",
        EVENTS,
        "line",
        "NAME:X1,Y1 X2,Y2",
        repeat=True,
    ),
    "events.mqtt": Flag("events and counts to an MQTT broker", EVENTS, metavar="HOST[:PORT]"),
    "events.webhook": Flag("each event as a JSON POST to this URL", EVENTS, metavar="URL"),
    "events.snapshots": Flag("keep each object's best snapshot (frame and crop)", EVENTS),
    "events.clips": Flag(
        "an H.264 clip around each zone entry, crossing and loitering", EVENTS, switch=True
    ),
}


@dataclass(frozen=True)
class FlaggedKey:
    """A key the ``run`` command line can set: its flag, its kind and its choices."""

    key: str
    name: str  # the field's name (the flag's name unless ``flag.name`` says otherwise)
    flag: Flag
    switch: bool
    choices: tuple[str, ...] = ()


def flagged_keys() -> list[FlaggedKey]:
    """Every key the ``run`` command line can set, sections first, in their fields' order."""
    out: list[FlaggedKey] = []
    for s, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            key = f"{s}.{f.name}"
            flag = f.metadata.get("flag") or OTHER_FLAGS.get(key)
            if flag is not None:
                switch = flag.switch if flag.switch is not None else f.metadata["kind"] == "bool"
                out.append(FlaggedKey(key, f.name, flag, switch, tuple(f.metadata["choices"])))
    for key in LISTS:
        if key in OTHER_FLAGS:
            out.append(FlaggedKey(key, key, OTHER_FLAGS[key], False))
    return out


# Keys of configs written for the original app -> today's name (they load, with a warning).
RENAMED: dict[str, str] = {
    "detect.det_interval": "detect.report_every",
    "detect.det_th": "detect.report_threshold",
    "run.fps_interval": "run.fps_interval_s",
}
# Short names of keys whose field name alone would not say what they are.
ALIASES: dict[str, str] = {"source": "source.uri", "model": "model.path", "output": "output.dir"}


def key_for(name: str) -> str:
    """The dotted key a keyword names: a dotted key, a key's field name (every field name is
    unique: ``threshold`` is ``detect.threshold``), or ``source``, ``model``, ``output``.

    Raises:
        ConfigError: No such key (with the closest name as a hint).
    """
    name = RENAMED.get(name, name)
    if name in KEYS or name in LISTS:  # LISTS: zones, lines
        return name
    if name in ALIASES:
        return ALIASES[name]
    by_field = {k.rsplit(".", 1)[1]: k for k in KEYS}
    if name in by_field:
        return by_field[name]
    close = difflib.get_close_matches(name, [*ALIASES, *by_field, *KEYS], n=1, cutoff=0.6)
    raise ConfigError(
        f"unknown setting '{name}'",
        hint=f"did you mean '{close[0]}'?"
        if close
        else "every key is listed in detector/default.yml",
    )


def keyword_overrides(values: Mapping[str, object]) -> dict[str, object]:
    """Keyword arguments (``source="clip.mp4", coco=True``) as :func:`load_config` overrides.

    Paths may be ``os.PathLike``; ``None`` leaves a key at its configured value.
    """
    out: dict[str, object] = {}
    for name, value in values.items():
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        elif isinstance(value, (list, tuple)):
            value = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
        out[key_for(name)] = value
    return out


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


def load_config(
    path: str | os.PathLike[str] | None, overrides: Mapping[str, object] | None = None
) -> Config:
    """Load, merge and validate a config.

    Args:
        path: A YAML file; ``None`` loads the package's ``default.yml``. Keys it does not
            give take the defaults documented there.
        overrides: Dotted keys → values, e.g. ``{"detect.threshold": 0.4, "output.show": True}``,
            typed or strings as given on a command line (``"0.4"``, ``"true"``, ``"null"``,
            ``"person,car"`` for ``detect.classes``). ``None`` values are skipped (a flag
            not given). Relative paths resolve against the current directory.

    Raises:
        ConfigError: Missing or unreadable file, bad YAML, unknown key (with the closest
            key as a hint), wrong type or out-of-range value; the message names the file
            and the dotted key.
    """
    file = Path(path).expanduser().resolve() if path is not None else DEFAULT_CONFIG
    raw = _read_yaml(file)
    origin = f"config '{path if path is not None else file}'"
    lists = {name: parse(raw.pop(name, None), origin) for name, parse in LISTS.items()}
    # dotted key -> (value, folder relative paths resolve against, where it came from)
    merged: dict[str, tuple[Any, Path, str, bool]] = {}
    for sec, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            merged[f"{sec}.{f.name}"] = (default, DEFAULT_CONFIG.parent, "defaults", False)
    for key, value in _flatten(raw, origin).items():
        merged[key] = (value, file.parent, origin, False)
    cwd = Path.cwd()
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        key = RENAMED.get(str(key), str(key))
        if key in LISTS:  # zones / lines from the command line replace the file's
            lists[key] = LISTS[key](value, "command-line override")
            continue
        if key not in merged:
            raise ConfigError(
                f"command-line override: unknown key '{key}'", hint=_did_you_mean(key)
            )
        merged[key] = (value, cwd, "command-line override", True)
    sections: dict[str, Any] = {}
    for sec, cls in SECTIONS.items():
        values = {}
        for f in dataclasses.fields(cls):
            key = f"{sec}.{f.name}"
            value, base, where, from_cli = merged[key]
            values[f.name] = _check(key, value, f.metadata, base, where, from_cli)
        sections[sec] = cls(**values)
    config = Config(**sections, **lists, path=file)
    detect = config.detect
    if detect.report_every and detect.report_threshold < detect.threshold:
        log.warning(
            "detect.report_threshold %g is below detect.threshold %g: the periodic "
            "report lists only kept detections, so it shows scores >= %g",
            detect.report_threshold,
            detect.threshold,
            detect.threshold,
        )
    return config


def with_overrides(config: Config, overrides: Mapping[str, object], where: str) -> Config:
    """``config`` with some keys changed, each checked as a config file's value would be.

    Args:
        config: A loaded config.
        overrides: Dotted keys → values (JSON-typed, or command-line strings).
        where: Names the origin in errors (e.g. ``"POST /api/sources"``).

    Raises:
        ConfigError: An unknown key (with a did-you-mean) or a bad value.
    """
    sections = {s: getattr(config, s) for s in SECTIONS}
    for key, value in overrides.items():
        key = RENAMED.get(str(key), str(key))
        if key not in KEYS:
            raise ConfigError(f"{where}: unknown key '{key}'", hint=_did_you_mean(key))
        sec, name = key.split(".", 1)
        meta = next(f.metadata for f in dataclasses.fields(SECTIONS[sec]) if f.name == name)
        checked = _check(key, value, meta, Path.cwd(), where, isinstance(value, str))
        sections[sec] = dataclasses.replace(sections[sec], **{name: checked})
    return Config(**sections, path=config.path)


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = f"ready configs are in '{CONFIGS_DIR}'" if CONFIGS_DIR.is_dir() else None
        raise ConfigError(f"config file '{file}' does not exist", hint=hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file '{file}': {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"config '{file}'{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config '{file}': expected a mapping of sections "
            f"({', '.join(SECTIONS)}), got {type(data).__name__}"
        )
    return data


def _flatten(raw: dict[str, Any], origin: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sec, body in raw.items():
        if sec not in SECTIONS:
            raise ConfigError(f"{origin}: unknown section '{sec}'", hint=_did_you_mean(str(sec)))
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError(
                f"{origin}: {sec}: expected a mapping of keys, got {type(body).__name__} {body!r}"
            )
        for key, value in body.items():
            dotted = f"{sec}.{key}"
            if dotted in RENAMED:
                new = RENAMED[dotted]
                log.warning("%s: '%s' is deprecated, use '%s'", origin, dotted, new)
                if new in body or new.split(".", 1)[1] in body:
                    raise ConfigError(
                        f"{origin}: both '{dotted}' and '{new}' are set", hint=f"keep only '{new}'"
                    )
                dotted = new
            if dotted not in KEYS:
                raise ConfigError(f"{origin}: unknown key '{dotted}'", hint=_did_you_mean(dotted))
            out[dotted] = value
    return out


def _did_you_mean(key: str) -> str:
    """The closest valid key: by spelling, else the same key name in another section."""
    close = difflib.get_close_matches(key, KEYS + tuple(SECTIONS) + tuple(LISTS), n=1, cutoff=0.6)
    if not close:
        leaf = key.rsplit(".", 1)[-1]
        leaves = {k.rsplit(".", 1)[-1]: k for k in KEYS}
        close = [leaves[m] for m in difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.75)]
    if close:
        return f"did you mean '{close[0]}'?"
    return (
        "valid sections: " + ", ".join(SECTIONS) + " (every key is listed in detector/default.yml)"
    )


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
_NAME_RE = re.compile(r"^[^/\\\x00]+$")


def _check(
    key: str, value: Any, meta: Mapping[str, Any], base: Path, where: str, from_cli: bool
) -> Any:
    """Validate (and for command-line strings, parse) one value; resolve relative paths."""
    kind = meta["kind"]

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: expected {expected}, got {value!r}")

    if from_cli and isinstance(value, str) and value.strip().lower() in ("null", "none", "~"):
        value = None
    if value is None:
        if meta["null"]:
            return None
        raise bad("a value (this key cannot be null)")
    if kind in _PARSERS:
        return _PARSERS[kind](key, value, where)
    if from_cli and isinstance(value, str):
        value = _parse_cli(kind, value.strip())
    if kind == "attempts":  # a count, or forever (null)
        if isinstance(value, str) and value.strip().lower() == "forever":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a number of attempts >= 0, or forever")
        return value
    if kind in ("int", "float"):
        return _check_number(value, meta, bad)
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "classes":
        if not isinstance(value, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, (str, int)) or v == "" for v in value
        ):
            raise bad("a list of class names or ids, e.g. [person, car] ([] = all)")
        return tuple(v.strip() if isinstance(v, str) else v for v in value)
    if kind == "uri" and isinstance(value, (list, tuple)):
        if not value:
            raise bad("a source, or a non-empty list of sources")
        uris = tuple(_check(key, v, meta, base, where, from_cli) for v in value)
        return uris[0] if len(uris) == 1 else uris
    if kind == "serve":
        host, port = parse_address(value if isinstance(value, (str, int)) else repr(value))
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if kind == "uri" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # camera index
    if not isinstance(value, str) or not value.strip():
        raise bad("a non-empty string")
    return _check_text(value.strip(), meta, base, bad)


def _check_number(value: Any, meta: Mapping[str, Any], bad: Callable[[str], ConfigError]) -> Any:
    """An ``int`` or ``float`` key's value within its bounds."""
    kind = meta["kind"]
    ok = isinstance(value, int) or (kind == "float" and isinstance(value, float))
    if isinstance(value, bool) or not ok or (kind == "float" and not math.isfinite(value)):
        raise bad("an integer" if kind == "int" else "a number")
    lo, hi = meta["lo"], meta["hi"]
    if (lo is not None and (value <= lo if meta["lo_open"] else value < lo)) or (
        hi is not None and value > hi
    ):
        what = "an integer" if kind == "int" else "a number"
        op = ">" if meta["lo_open"] else ">="
        rng = f"in [{lo}, {hi}]" if hi is not None else f"{op} {lo}"
        raise bad(f"{what} {rng}")
    return float(value) if kind == "float" else int(value)


def _check_text(
    value: str, meta: Mapping[str, Any], base: Path, bad: Callable[[str], ConfigError]
) -> Any:
    """A string key's value: an enum choice, a run name, a path or source made absolute."""
    kind = meta["kind"]
    if kind == "enum":
        if value.lower() not in meta["choices"]:
            raise bad(" or ".join(meta["choices"]))
        return value.lower()
    if kind == "name" and not _is_utf8(value):
        err = bad("a folder name in UTF-8 (OpenCV cannot write under other names)")
        err.hint = "use letters, digits, '-', '_' or '.'"
        raise err
    if kind == "name" and (not _NAME_RE.match(value) or value in (".", "..")):
        err = bad("a folder name without '/' (or null for the source's name)")
        err.hint = "a run folder is always made inside output.dir (--output): give that the path"
        raise err
    if kind == "path":
        return _resolve(_expand_home(value, bad), base)
    if kind == "uri" and not (value.isdigit() or "://" in value):
        # a file, folder or glob; not a camera or URL
        return str(_resolve(_expand_home(value, bad), base))
    return value


def parse_address(text: str | int) -> tuple[str, int]:
    """Read ``output.serve``: ``"8080"``, ``":8080"``, ``"0.0.0.0:8080"``, ``"[::1]:8080"``.

    The host is ``127.0.0.1`` unless given. Port 0 asks the system for a free port.

    Raises:
        ConfigError: Not a port, or a port outside 0-65535.
    """
    raw = str(text).strip()
    host, _, port_text = raw.rpartition(":")
    host = host.strip("[]") or DEFAULT_SERVE_HOST
    hint = "give PORT or HOST:PORT, e.g. 8080 or 0.0.0.0:8080"
    if not port_text.isdigit():
        raise ConfigError(f"output.serve {raw!r} is not [HOST:]PORT", hint=hint)
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"output.serve {raw!r}: port {port} is out of range 0-65535", hint=hint)
    return host, port


def _is_utf8(text: str) -> bool:
    """False for a str holding surrogate escapes (bytes that are not UTF-8, from argv)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_cli(kind: str, text: str) -> Any:
    """Command-line strings → the kind's type; left as is when they do not parse (so the
    type check reports them)."""
    try:
        if kind in ("int", "attempts"):
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        return text
    if kind == "bool":
        low = text.lower()
        return True if low in _TRUE else False if low in _FALSE else text
    if kind == "classes":
        return [p.strip() for p in text.split(",") if p.strip()]
    return text


_HOME_RE = re.compile(r"^\$\{([^}]*)\}")


def _expand_home(value: str, bad: Callable[[str], ConfigError]) -> str:
    """``${models}/x`` -> ``<models folder>/x`` (the folders of :func:`detector.paths.homes`)."""
    match = _HOME_RE.match(value)
    if match is None:
        return value
    folders = homes()
    name = match.group(1)
    if name not in folders:
        raise bad("a path starting with " + ", ".join(f"${{{n}}}" for n in folders))
    return str(folders[name]) + value[match.end() :]


def _resolve(value: str, base: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return Path(os.path.normpath(p if p.is_absolute() else base / p))
