"""Tell which TensorFlow model format a path holds, from its structure rather than its suffix.

Folders: ``saved_model.pb`` → SavedModel; a ``checkpoint`` state file or ``*.index`` →
checkpoint. Files: ``TFL3`` at bytes 4..8 → TFLite; a table footer → checkpoint index;
otherwise the protobuf wire format itself says GraphDef (many top-level ``node`` entries,
each a NodeDef with a name and an op) or MetaGraphDef (one ``graph_def`` holding those
nodes); readable text starting with ``node {`` → a text GraphDef. TensorFlow is not
imported, so this is cheap enough for error messages and ``--help`` paths.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from detector.errors import ModelError
from detector.model.keras_file import is_keras_archive
from detector.model.keras_weights import h5_kind, open_h5

Format = Literal[
    "checkpoint", "meta", "frozen_pb", "pbtxt", "saved_model", "tflite", "keras", "keras_weights"
]

EXPECTED = (
    "a frozen .pb/.pbtxt, a .meta, a checkpoint prefix or folder, a SavedModel folder, a "
    ".tflite, or a Keras .keras / .weights.h5"
)
#: A protobuf message (GraphDef, MetaGraphDef) cannot be 2 GiB or more.
_PROTOBUF_LIMIT = 2**31 - 1
_TABLE_MAGIC = b"\x57\xfb\x80\x8b\x24\x75\x47\xdb"  # leveldb table footer: .index and V1 .ckpt
_DATA = re.compile(r"\.data-\d{5}-of-\d{5}$")
_OP = re.compile(rb"^[A-Za-z_][A-Za-z0-9_>.]*$")
_NODE_NAME = re.compile(rb"^[A-Za-z0-9_.\-/>]+$")


def _walk(
    buf: bytes | memoryview, limit: int | None = None
) -> tuple[list[tuple[int, int, memoryview]], str | None]:
    """Top-level ``(field number, wire type, payload)`` of a protobuf message, as far as
    they parse, and why parsing stopped early (None when the bytes are well formed)."""
    view = memoryview(buf)
    out: list[tuple[int, int, memoryview]] = []
    pos, end = 0, len(view)

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            if pos >= end or shift > 63:
                raise ValueError("truncated varint")
            byte = view[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    try:
        while pos < end and (limit is None or len(out) < limit):
            key = varint()
            field, wire = key >> 3, key & 7
            start = pos
            if field == 0:
                raise ValueError("field number 0")
            if wire == 0:
                varint()
            elif wire == 1:
                pos += 8
            elif wire == 2:
                size = varint()
                start = pos
                pos += size
            elif wire == 5:
                pos += 4
            else:  # groups (3, 4) are not used by TensorFlow's protos
                raise ValueError(f"wire type {wire}")
            if pos > end:
                raise ValueError("truncated field")
            out.append((field, wire, view[start:pos]))
    except ValueError as exc:
        return out, str(exc)
    return out, None


def _fields(buf: bytes | memoryview, limit: int | None = None) -> list[tuple[int, int, memoryview]]:
    """Top-level ``(field number, wire type, payload)`` of a protobuf message.

    Raises:
        ValueError: The bytes are not a well-formed protobuf message.
    """
    out, error = _walk(buf, limit)
    if error is not None:
        raise ValueError(error)
    return out


def _is_node_def(payload: memoryview) -> bool:
    """Whether bytes look like a NodeDef: a name (field 1) and an op name (field 2)."""
    try:
        fields = {f: bytes(p) for f, w, p in _fields(payload, limit=4) if w == 2}
    except ValueError:
        return False
    return (
        1 in fields
        and 2 in fields
        and bool(_NODE_NAME.match(fields[1]))
        and bool(_OP.match(fields[2]))
    )


def _graph_def_nodes(buf: bytes | memoryview) -> int:
    """How many nodes a GraphDef holds, or -1 when the bytes are not GraphDef-shaped."""
    try:
        fields = _fields(buf)
    except ValueError:
        return -1
    if any(f not in (1, 2, 3, 4) for f, _, _ in fields):
        return -1
    nodes = [p for f, w, p in fields if f == 1]
    if any(w != 2 for f, w, _ in fields if f in (1, 2, 4)) or (
        nodes and not _is_node_def(nodes[0])
    ):
        return -1
    return len(nodes)


def _binary_kind(data: bytes) -> Format | None:
    try:
        fields = _fields(data)
    except ValueError:
        return None
    numbers = [f for f, _, _ in fields]
    if not numbers:
        return None
    graph_fields = [p for f, w, p in fields if f == 2 and w == 2]
    if (
        numbers.count(1) <= 1
        and len(graph_fields) == 1
        and set(numbers) <= set(range(1, 8))
        and _graph_def_nodes(graph_fields[0]) > 0
    ):
        first = [p for f, _, p in fields if f == 1]
        if not (first and _is_node_def(first[0])):
            return "meta"
    if _graph_def_nodes(data) > 0:
        return "frozen_pb"
    return None


def _text_kind(data: bytes) -> Format | None:
    try:
        text = data[:65536].decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = (ln.strip() for ln in text.splitlines())
    first = next((ln for ln in lines if ln and not ln.startswith("#")), "")
    if re.match(r"^node\s*\{", first):
        return "pbtxt"
    if _TEXT_META.match(first):
        return "meta"
    return None


_TEXT_META = re.compile(r"^(meta_info_def|graph_def|saver_def|collection_def|signature_def)\s*\{")


def is_text_meta(data: bytes) -> bool:
    """Whether bytes are a text-format MetaGraphDef (``export_meta_graph(as_text=True)``)."""
    try:
        text = data[:65536].decode("utf-8")
    except UnicodeDecodeError:
        return False
    lines = (ln.strip() for ln in text.splitlines())
    first = next((ln for ln in lines if ln and not ln.startswith("#")), "")
    return bool(_TEXT_META.match(first))


def _truncation(data: bytes) -> str | None:
    """How a protobuf that stops mid-field looks, when its complete part is graph-shaped.

    Returns a phrase for the message ("a GraphDef cut off after 12 complete node(s)"), or
    None when the bytes do not end mid-field or their complete fields are no graph.
    """
    fields, error = _walk(data)
    if error is None or "truncated" not in error:
        return None
    nodes = [p for f, w, p in fields if f == 1 and w == 2 and _is_node_def(p)]
    others = [(f, w) for f, w, p in fields if not (f == 1 and w == 2 and _is_node_def(p))]
    if nodes and not others:
        return f"a GraphDef cut off after {len(nodes)} complete node(s)"
    first = fields[0] if fields else None
    if (
        first is not None
        and first[:2] == (1, 2)
        and len(first[2]) >= 8
        and _walk(first[2])[1] is None
        and all(f in (1, 2, 3) and w == 2 for f, w in others)
    ):
        return "a MetaGraphDef cut off after its header"
    return None


def _tail(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(-8, 2)
        return f.read(8)


def _keras_kind(path: Path, head: bytes) -> Format | None:
    """``keras`` for a zip with a Keras config and weights, ``keras_weights`` for an HDF5
    file laid out by Keras (3 or 2), else None."""
    if head[:4] == b"PK\x03\x04":
        return "keras" if is_keras_archive(path) else None
    if head[:8] != b"\x89HDF\r\n\x1a\n":
        return None

    with open_h5(path) as h5:
        kind = h5_kind(h5)
    if kind is None:
        raise ModelError(
            f"'{path}' is an HDF5 file, but not one Keras wrote (no 'layers'/'vars' groups "
            "and no 'layer_names')",
            hint=f"pass {EXPECTED}",
        )
    return "keras_weights"


def detect_format(path: str | Path) -> Format:
    """The format of a model path, found from its contents.

    Args:
        path: A file, a folder, or a checkpoint prefix (which need not exist as a file).

    Returns:
        ``"checkpoint"`` (prefix, folder, ``.index`` or ``.data-*`` shard — resolve it with
        :func:`detector.model.checkpoints.resolve_checkpoint`), ``"meta"``, ``"frozen_pb"``,
        ``"pbtxt"``, ``"saved_model"``, ``"tflite"``, ``"keras"`` (a ``.keras`` archive)
        or ``"keras_weights"`` (a Keras HDF5 weights file).

    Raises:
        ModelError: The path does not exist or holds none of these formats.
    """
    path = Path(path)
    if path.is_dir():
        return _folder_format(path)
    if not path.exists():
        return _prefix_format(path)
    return _file_format(path)


def _folder_format(path: Path) -> Format:
    """A folder: a SavedModel or a checkpoint folder."""
    if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
        return "saved_model"
    if (path / "checkpoint").is_file() or any(path.glob("*.index")) or any(path.glob("*.data-*")):
        return "checkpoint"
    inside = sorted(p.name for p in path.iterdir())[:8]
    raise ModelError(
        f"folder '{path}' is neither a SavedModel (no saved_model.pb) nor a checkpoint "
        f"folder (no 'checkpoint' state file or *.index); it holds {inside or 'nothing'}",
        hint=f"pass {EXPECTED}",
    )


def _prefix_format(path: Path) -> Format:
    """A path that does not exist: a checkpoint prefix, or missing."""
    if (
        Path(f"{path}.index").is_file()
        or any(path.parent.glob(f"{path.name}.data-*"))
        or Path(f"{path}.meta").is_file()
    ):
        return "checkpoint"
    if path.parent.is_dir() and any(path.parent.glob("*.index")):
        return "checkpoint"  # a prefix that is not there: the resolver lists those that are
    raise ModelError(f"model path '{path}' does not exist", hint=f"pass {EXPECTED}")


def _file_format(path: Path) -> Format:
    """A file: told by its name (checkpoint shards), its head, its tail, then its parse."""
    if _DATA.search(path.name):
        return "checkpoint"
    if path.name in ("saved_model.pb", "saved_model.pbtxt"):
        # Its variables live beside it: the folder is the model, not this file.
        raise ModelError(
            f"'{path}' is the graph file of a SavedModel: this is a SavedModel, pass its "
            f"folder '{path.parent}'",
            hint=f"use --model {path.parent} (the folder holding saved_model.pb and variables/)",
        )
    with path.open("rb") as f:
        head = f.read(64)
    size = path.stat().st_size
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return "tflite"
    keras = _keras_kind(path, head)
    if keras is not None:
        return keras
    if size >= 48 and _tail(path) == _TABLE_MAGIC:
        return "checkpoint"
    return _protobuf_format(path, size)


def _protobuf_format(path: Path, size: int) -> Format:
    """A GraphDef or MetaGraphDef file, binary or text; else why it is none."""
    if size > _PROTOBUF_LIMIT:
        raise ModelError(
            f"'{path}' is {size} bytes: no GraphDef or MetaGraphDef can be that large "
            "(protobuf messages stop at 2 GB), and it is no TFLite, Keras or checkpoint file",
            hint=f"pass {EXPECTED}",
        )
    data = path.read_bytes()
    kind = _binary_kind(data) or _text_kind(data)
    if kind is None:
        cut = _truncation(data)
        if cut is not None:
            raise ModelError(
                f"'{path}' is truncated: {cut} ({len(data)} bytes)",
                hint="the copy or download stopped early: fetch the file again",
            )
        raise ModelError(
            f"'{path}' is not a model file ({len(data)} bytes): not a GraphDef (binary or "
            "text), MetaGraphDef, TFLite file, checkpoint or Keras file",
            hint=f"pass {EXPECTED}",
        )
    return kind


#: Root attributes of a Keras 3 model saved with ``tf.saved_model.save`` (not ``export``).
_KERAS3_ROOT = frozenset({"_default_save_signature", "call_signature_parameters"})


def keras3_saved_by_tf(meta: Any) -> bool:
    """Whether this is a Keras 3 model written by ``tf.saved_model.save`` (its variables
    are not restored by the TF1 loader: re-export with ``model.export``)."""
    if not meta.HasField("object_graph_def") or not meta.object_graph_def.nodes:
        return False
    root = {c.local_name for c in meta.object_graph_def.nodes[0].children}
    return root >= _KERAS3_ROOT


def detect_graph_kind(path: Path) -> str:
    """``meta``, ``frozen_pb`` or ``pbtxt`` for a graph file given with ``--graph``."""
    kind = detect_format(path)
    if kind not in ("meta", "frozen_pb", "pbtxt"):
        raise ModelError(
            f"--graph '{path}' is a {kind}, not a graph file",
            hint="pass the GraphDef written by tf.io.write_graph (.pbtxt or .pb) or a .meta",
        )
    return kind
