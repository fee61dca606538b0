"""The openvino cache: where converted networks, their post-processing and verdicts are kept.

A graph is converted once: its network as OpenVINO IR, its SSD post-processing as a small
``.npz`` (anchors and settings), and a manifest (JSON) saying what the graph's cut, tensors
and input size are. All of it sits in a cache folder (``.openvino/`` beside the graph, or the
user cache when that is not writable) under names keyed by the graph's sha256, the tensor
names and the OpenVINO version, so a later load reads the manifest and needs neither the
graph parsed nor TensorFlow imported. Files are written atomically (temporary + rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from detector.errors import ModelError
from detector.model.backends.extra import require

log = logging.getLogger(__name__)

#: Bump when what is written to the cache changes meaning.
CACHE_FORMAT = 2


def cache_root(graph_path: Path, cache_dir: str | Path | None = None) -> Path:
    """Where converted models of ``graph_path`` live; created if needed.

    ``cache_dir`` when given; else ``.openvino/`` beside the graph when that can be written;
    else ``$XDG_CACHE_HOME/detector/openvino`` (``~/.cache/...``).

    Raises:
        ModelError: ``cache_dir`` was given and cannot be created or written.
    """
    if cache_dir is not None:
        root = Path(cache_dir)
        if not _writable(root):
            raise ModelError(
                f"cannot write the openvino cache folder '{root}'",
                hint="set model.cache_dir to a writable folder, or leave it null",
            )
        return root
    beside = Path(graph_path).resolve().parent / ".openvino"
    if _writable(beside):
        return beside
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = base / "detector" / "openvino"
    if not _writable(root):
        raise ModelError(
            f"cannot write the openvino cache: neither '{beside}' nor '{root}'",
            hint="set model.cache_dir to a writable folder",
        )
    log.debug("openvino cache: '%s' is not writable, using '%s'", beside, root)
    return root


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe"):
            pass
    except OSError:
        return False
    return True


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    sha = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _short(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def cache_key(graph: Any, **settings: Any) -> str:
    """A short hex key of the graph's sha256, its cut, input shape, OpenVINO version and more."""
    ov = require("openvino")
    return _short(
        {
            "graph_sha256": graph.sha256,
            "input": graph.input_name,
            "cut": list(graph.cut),
            "input_size": list(graph.input_size) if graph.input_size else None,
            "openvino": ov.get_version(),
            "format": CACHE_FORMAT,
            **settings,
        }
    )


def ir_path(root: Path, graph: Any, kind: str = "fp32") -> Path:
    """A cache file of a graph: ``<stem>-<sha12>-<key>.<kind>.xml`` (``kind``: fp32, int8, ...)."""
    key = getattr(graph, "key", None) or cache_key(graph)
    return root / f"{Path(graph.path).stem}-{graph.sha256[:12]}-{key}.{kind}.xml"


def save_ir(model: Any, xml: Path) -> None:
    """Write an OpenVINO model as IR, atomically (``.bin`` then ``.xml``, by rename)."""
    ov = require("openvino")
    xml.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=xml.parent, prefix=".tmp-") as tmp:
        tmp_xml = Path(tmp) / xml.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_xml.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp_xml, xml)


def int8_report_path(xml: Path) -> Path:
    """The gate's JSON report beside an int8 IR (``<name>.int8.xml`` → ``<name>.int8.json``)."""
    return xml.with_suffix(".json")


def passing_int8_ir(root: Path, prep: Any) -> Path:
    """The cached int8 IR of a graph, when its gate report says it passed.

    Raises:
        ModelError: None was made for this graph (and OpenVINO version), or it failed.
    """
    xml = ir_path(root, prep, "int8")
    report = int8_report_path(xml)
    hint = (
        f"make one: python main.py model quantize {prep.path} (calibration frames: "
        "--calibration FOLDER_OR_VIDEO), or use --precision bf16 / fp32"
    )
    if not xml.is_file() or not report.is_file():
        raise ModelError(
            f"no int8 model of '{prep.path}' has passed the parity gate yet (looked for '{xml}')",
            hint=hint,
        )
    try:
        doc = json.loads(report.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the int8 gate report '{report}': {exc}", hint=hint) from exc
    if doc.get("graph_sha256") != prep.sha256 or not doc.get("parity", {}).get("passed"):
        raise ModelError(
            f"the int8 model '{xml}' did not pass the parity gate for this graph", hint=hint
        )
    return xml


def gated_rest_precision(xml: Path) -> str | None:
    """The precision an int8 IR's unquantized layers passed its gate with (f32 for a report
    that does not say); ``None`` for an IR without a report (a candidate being gated)."""
    try:
        doc = json.loads(int8_report_path(xml).read_text())
    except (OSError, ValueError):
        return None
    return str(doc.get("inference_precision") or "f32")


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write JSON atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; ``None`` when missing or unreadable."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


@dataclass(frozen=True)
class CachedGraph:
    """What a load needs to know of a converted graph, without reading the graph.

    Attributes:
        path: The graph file.
        sha256: Hex sha256 of its bytes.
        input_name: The image tensor (``image_tensor:0``).
        outputs: The four output tensor names.
        cut: The tensors crossing from the network to the post-processing.
        input_size: ``(height, width)`` the network takes, or ``None``.
        key: The cache key of the converted files.
        allow_unsafe_ops: The op allowlist was skipped at conversion.
        post_file: The NumPy post-processing's ``.npz`` (file name in the cache), or ``None``.
        post_inputs: ``(encodings, logits)`` cut tensors the NumPy post-processing reads.
        post_reason: Why the post-processing stays in TensorFlow (``post_file`` is ``None``).
    """

    path: Path
    sha256: str
    input_name: str
    outputs: tuple[str, ...]
    cut: tuple[str, ...]
    input_size: tuple[int, int] | None
    key: str
    allow_unsafe_ops: bool = False
    post_file: str | None = None
    post_inputs: tuple[str, ...] = ()
    post_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["path"] = str(self.path)
        doc["format"] = CACHE_FORMAT
        return doc


def manifest_path(root: Path, graph_path: Path, sha256: str, names: dict[str, Any]) -> Path:
    """The manifest of a graph with these tensor names, for this OpenVINO version."""
    ov = require("openvino")
    key = _short({"names": names, "openvino": ov.get_version(), "format": CACHE_FORMAT})
    return root / f"{Path(graph_path).stem}-{sha256[:12]}-{key}.manifest.json"


def read_manifest(path: Path, graph_path: Path, sha256: str) -> CachedGraph | None:
    """The cached facts of a graph, when the manifest and its IR are there and match."""
    doc = read_json(path)
    if doc is None or doc.get("format") != CACHE_FORMAT or doc.get("sha256") != sha256:
        return None
    try:
        graph = CachedGraph(
            path=Path(graph_path),
            sha256=sha256,
            input_name=str(doc["input_name"]),
            outputs=tuple(doc["outputs"]),
            cut=tuple(doc["cut"]),
            input_size=tuple(doc["input_size"]) if doc.get("input_size") else None,
            key=str(doc["key"]),
            allow_unsafe_ops=bool(doc.get("allow_unsafe_ops", False)),
            post_file=doc.get("post_file"),
            post_inputs=tuple(doc.get("post_inputs") or ()),
            post_reason=doc.get("post_reason"),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if not ir_path(path.parent, graph).is_file():
        return None
    if graph.post_file and not (path.parent / graph.post_file).is_file():
        return None
    return graph
