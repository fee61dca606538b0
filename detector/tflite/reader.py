"""Read the parts of a TFLite flatbuffer that a graph rebuild needs: tensors, weights, ops.

A minimal, bounds-checked reader on top of ``flatbuffers`` (no TensorFlow, no generated
schema module), so a malformed or foreign file is refused with a clear ``ModelError``
instead of a crash deep inside a generated accessor. Field slots follow TFLite's
``schema.fbs`` (schema version 3).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import ModelError

FILE_IDENTIFIER = b"TFL3"

# BuiltinOperator codes (schema.fbs) for the ops an SSD rebuild understands.
BUILTIN_NAMES: dict[int, str] = {
    0: "ADD",
    1: "AVERAGE_POOL_2D",
    2: "CONCATENATION",
    3: "CONV_2D",
    4: "DEPTHWISE_CONV_2D",
    6: "DEQUANTIZE",
    14: "LOGISTIC",
    17: "MAX_POOL_2D",
    18: "MUL",
    19: "RELU",
    20: "RELU_N1_TO_1",
    21: "RELU6",
    22: "RESHAPE",
    28: "TANH",
    32: "CUSTOM",
    34: "PAD",
    40: "MEAN",
    41: "SUB",
    43: "SQUEEZE",
    114: "QUANTIZE",
    117: "HARD_SWISH",
}

# TensorType → numpy dtype (only the types SSD weights and activations use).
TENSOR_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f2"),
    2: np.dtype("<i4"),
    3: np.dtype("u1"),
    4: np.dtype("<i8"),
    6: np.dtype("?"),
    7: np.dtype("<i2"),
    9: np.dtype("i1"),
}

ACTIVATIONS = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}
PADDINGS = {0: "SAME", 1: "VALID"}


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of one tensor: ``real = (q - zero_point) * scale``.

    ``scale`` and ``zero_point`` have one entry per tensor, or one per channel along
    ``axis`` (per-channel int8 weights).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Float32 values of the quantized array ``q``."""
        shape = [1] * q.ndim
        if self.scale.size > 1:
            shape[self.axis] = -1
        scale = self.scale.reshape(shape).astype(np.float64)
        zp = self.zero_point.reshape(shape).astype(np.float64)
        return ((q.astype(np.float64) - zp) * scale).astype(np.float32)

    def representable_range(self, dtype: np.dtype) -> tuple[float, float]:
        """The real interval a per-tensor quantized activation of ``dtype`` can hold."""
        info = np.iinfo(dtype)
        s, z = float(self.scale[0]), float(self.zero_point[0])
        return (info.min - z) * s, (info.max - z) * s


@dataclass(frozen=True)
class Tensor:
    """One tensor of the subgraph; ``data`` is set for constants (weights, anchors)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None
    quant: Quantization | None


@dataclass(frozen=True)
class Operator:
    """One op: its name (builtin name or custom code), tensor indices and options."""

    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    custom_options: bytes = b""


@dataclass(frozen=True)
class TfliteModel:
    """The first subgraph of a TFLite file, with constant data already sliced out."""

    version: int
    description: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


class _Table:
    """A flatbuffer table: vtable lookup with every read bounds-checked by ``struct``."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vtable_size = struct.unpack_from("<H", buf, self.vtable)[0]

    def _offset(self, slot: int) -> int:
        entry = 4 + 2 * slot
        if entry >= self.vtable_size:
            return 0
        return int(struct.unpack_from("<H", self.buf, self.vtable + entry)[0])

    def scalar(self, slot: int, fmt: str, default: Any = 0) -> Any:
        o = self._offset(slot)
        return struct.unpack_from("<" + fmt, self.buf, self.pos + o)[0] if o else default

    def _indirect(self, slot: int) -> int | None:
        o = self._offset(slot)
        if not o:
            return None
        p = self.pos + o
        return p + int(struct.unpack_from("<I", self.buf, p)[0])

    def table(self, slot: int) -> _Table | None:
        p = self._indirect(slot)
        return None if p is None else _Table(self.buf, p)

    def _vector(self, slot: int) -> tuple[int, int]:
        p = self._indirect(slot)
        if p is None:
            return 0, 0
        n = struct.unpack_from("<I", self.buf, p)[0]
        return p + 4, n

    def array(self, slot: int, dtype: str) -> np.ndarray:
        start, n = self._vector(slot)
        dt = np.dtype(dtype)
        if start + n * dt.itemsize > len(self.buf):
            raise ValueError("vector runs past the end of the file")
        return np.frombuffer(self.buf, dtype=dt, count=n, offset=start) if n else np.zeros(0, dt)

    def tables(self, slot: int) -> list[_Table]:
        start, n = self._vector(slot)
        out = []
        for i in range(n):
            p = start + 4 * i
            out.append(_Table(self.buf, p + struct.unpack_from("<I", self.buf, p)[0]))
        return out

    def string(self, slot: int) -> str:
        return bytes(self.array(slot, "u1")).decode("utf-8", errors="replace")


def _options(name: str, t: _Table | None) -> dict[str, Any]:
    """Builtin options of the ops we rebuild, as plain values (slots from schema.fbs)."""
    if t is None:
        return {}

    def act(slot: int) -> str | None:
        return ACTIVATIONS.get(t.scalar(slot, "b"), "UNKNOWN")

    if name == "CONV_2D":
        return {
            "padding": PADDINGS.get(t.scalar(0, "b")),
            "stride_w": t.scalar(1, "i"),
            "stride_h": t.scalar(2, "i"),
            "activation": act(3),
            "dilation_w": t.scalar(4, "i", 1),
            "dilation_h": t.scalar(5, "i", 1),
        }
    if name == "DEPTHWISE_CONV_2D":
        return {
            "padding": PADDINGS.get(t.scalar(0, "b")),
            "stride_w": t.scalar(1, "i"),
            "stride_h": t.scalar(2, "i"),
            "depth_multiplier": t.scalar(3, "i"),
            "activation": act(4),
            "dilation_w": t.scalar(5, "i", 1),
            "dilation_h": t.scalar(6, "i", 1),
        }
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return {
            "padding": PADDINGS.get(t.scalar(0, "b")),
            "stride_w": t.scalar(1, "i"),
            "stride_h": t.scalar(2, "i"),
            "filter_w": t.scalar(3, "i"),
            "filter_h": t.scalar(4, "i"),
            "activation": act(5),
        }
    if name in ("ADD", "MUL", "SUB"):
        return {"activation": act(0)}
    if name == "CONCATENATION":
        return {"axis": t.scalar(0, "i"), "activation": act(1)}
    if name == "RESHAPE":
        return {"new_shape": tuple(int(v) for v in t.array(0, "<i4"))}
    if name == "SQUEEZE":
        return {"squeeze_dims": tuple(int(v) for v in t.array(0, "<i4"))}
    if name == "MEAN":
        return {"keep_dims": bool(t.scalar(0, "B"))}
    return {}


def _quantization(t: _Table | None) -> Quantization | None:
    if t is None:
        return None
    scale = t.array(2, "<f4").copy()
    zero_point = t.array(3, "<i8").copy()
    if scale.size == 0:
        return None
    if zero_point.size == 0:
        zero_point = np.zeros_like(scale, dtype=np.int64)
    return Quantization(scale=scale, zero_point=zero_point, axis=int(t.scalar(6, "i")))


def _buffers(model: _Table, buf: bytes) -> list[np.ndarray]:
    """The file's data buffers (inline, or at an offset past the flatbuffer for large models)."""
    buffers = []
    for b in model.tables(4):
        data = b.array(0, "u1")
        offset, size = int(b.scalar(1, "Q")), int(b.scalar(2, "Q"))
        if data.size == 0 and offset > 1 and size:
            if offset + size > len(buf):
                raise ValueError("buffer runs past the end of the file")
            data = np.frombuffer(buf, np.uint8, size, offset)
        buffers.append(data)
    return buffers


def _tensor(i: int, t: _Table, buffers: list[np.ndarray]) -> Tensor:
    """One tensor of the subgraph, with its constant data when a buffer holds it."""
    shape = tuple(int(v) for v in t.array(0, "<i4"))
    type_code = int(t.scalar(1, "b"))
    dtype = TENSOR_DTYPES.get(type_code)
    name = t.string(3)
    buf_index = int(t.scalar(2, "I"))
    const: np.ndarray | None = None
    raw = buffers[buf_index] if 0 < buf_index < len(buffers) else None
    if raw is not None and raw.size:
        if dtype is None:
            raise ModelError(f"constant tensor {name!r} has unsupported type code {type_code}")
        count = int(np.prod(shape)) if shape else 1
        if raw.size != count * dtype.itemsize:
            raise ValueError(f"tensor {name!r}: {raw.size} bytes for shape {shape}")
        const = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(shape)
    dt = dtype if dtype is not None else np.dtype("V1")
    return Tensor(i, name, shape, dt, const, _quantization(t.table(4)))


def _operators(sg: _Table, codes: list[str]) -> list[Operator]:
    ops = []
    for op in sg.tables(3):
        index = int(op.scalar(0, "I"))
        if index >= len(codes):
            raise ValueError(f"operator code index {index} out of range")
        name = codes[index]
        ops.append(
            Operator(
                name=name,
                inputs=tuple(int(v) for v in op.array(1, "<i4")),
                outputs=tuple(int(v) for v in op.array(2, "<i4")),
                options=_options(name, op.table(4)),
                custom_options=bytes(op.array(5, "u1")),
            )
        )
    return ops


def _parse(buf: bytes) -> TfliteModel:
    model = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
    version = int(model.scalar(0, "I"))
    codes = []
    for oc in model.tables(1):
        deprecated = int(oc.scalar(0, "b"))
        code = max(deprecated, int(oc.scalar(3, "i")))
        codes.append(oc.string(1) if code == 32 else BUILTIN_NAMES.get(code, f"BUILTIN_{code}"))
    buffers = _buffers(model, buf)
    subgraphs = model.tables(2)
    if not subgraphs:
        raise ModelError("TFLite file has no subgraph", hint="the file is empty or truncated")
    sg = subgraphs[0]
    tensors = [_tensor(i, t, buffers) for i, t in enumerate(sg.tables(0))]
    ops = _operators(sg, codes)
    n = len(tensors)
    for operator in ops:
        if any(i >= n for i in (*operator.inputs, *operator.outputs)):
            raise ValueError(f"op {operator.name} refers to a tensor index >= {n}")
    return TfliteModel(
        version=version,
        description=model.string(3),
        tensors=tuple(tensors),
        operators=tuple(ops),
        inputs=tuple(int(v) for v in sg.array(1, "<i4")),
        outputs=tuple(int(v) for v in sg.array(2, "<i4")),
    )


def read_tflite(source: str | Path | bytes) -> TfliteModel:
    """Parse a TFLite flatbuffer (a path or its bytes).

    Raises:
        ModelError: The file is missing, is not a TFLite flatbuffer, or is malformed.
    """
    if isinstance(source, (bytes, bytearray)):
        buf, what = bytes(source), "<bytes>"
    else:
        path = Path(source)
        what = str(path)
        try:
            buf = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read TFLite file {what!r}: {exc.strerror or exc}") from exc
    if len(buf) < 8 or buf[4:8] != FILE_IDENTIFIER:
        raise ModelError(
            f"{what!r} is not a TFLite model (no 'TFL3' flatbuffer identifier)",
            hint="pass a .tflite file written by the TFLite converter; "
            "`python main.py model inspect PATH` tells what a file is",
        )
    try:
        return _parse(buf)
    except (struct.error, ValueError, IndexError, OverflowError) as exc:
        raise ModelError(
            f"TFLite file {what!r} is malformed: {exc}",
            hint="the file is truncated or corrupt; download or export it again",
        ) from exc
