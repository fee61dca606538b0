"""Rebuild a TFLite network (uint8 or float) as float TF ops, one TFLite op at a time.

Quantized weights are dequantized (``(q - zero_point) * scale``), conv weights go from
TFLite's OHWI to TF's HWIO and depthwise weights from ``[1, kh, kw, C·M]`` to
``[kh, kw, C, M]``; every quantized activation is clamped to the real range its integer
tensor could hold, which is where quantized models keep their ReLU6s. Images are NHWC.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from detector.errors import ModelError
from detector.tflite.reader import Operator, Tensor, TfliteModel

# TFLite ops the network part may hold (the SSD post-processing op is handled elsewhere).
NETWORK_OPS = frozenset(
    {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "ADD",
        "SUB",
        "MUL",
        "RESHAPE",
        "SQUEEZE",
        "CONCATENATION",
        "LOGISTIC",
        "TANH",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "AVERAGE_POOL_2D",
        "MAX_POOL_2D",
        "PAD",
        "MEAN",
        "DEQUANTIZE",
        "QUANTIZE",
    }
)

_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_./-]")


def node_name(name: str) -> str:
    """A valid, readable TF node name for a TFLite tensor name."""
    name = _BAD_NAME_CHARS.sub("_", name).strip("/") or "t"
    return name if name[0].isalnum() or name[0] == "." else "t" + name


class NetworkBuilder:
    """Rebuilds TFLite ops as TF ops in the default graph.

    ``values`` maps tensor index → TF tensor.
    """

    def __init__(self, tf: Any, model: TfliteModel, weights: str) -> None:
        self.tf = tf
        self.model = model
        self.weights = weights
        self.values: dict[int, Any] = {}

    def const(
        self,
        t: Tensor,
        transpose: tuple[int, ...] | None = None,
        reshape: tuple[int, ...] | None = None,
    ) -> Any:
        """A constant as float32, in TF's layout; dequantized in the graph when weights='uint8'."""
        tf = self.tf
        assert t.data is not None
        name = node_name(t.name)

        def layout(a: np.ndarray) -> np.ndarray:
            a = np.transpose(a, transpose) if transpose is not None else a
            return np.ascontiguousarray(a.reshape(reshape) if reshape is not None else a)

        q = t.quant
        if (
            self.weights == "uint8"
            and t.data.dtype == np.uint8
            and q is not None
            and q.scale.size == 1
        ):
            with tf.name_scope(name + "_dequantize"):
                x = tf.cast(tf.constant(layout(t.data), name="quantized"), tf.float32)
                zero = float(q.zero_point[0])
                if zero:
                    x = x - zero
                return tf.multiply(x, float(q.scale[0]), name="dequantized")
        # Per-channel scales refer to the stored layout: dequantize before re-laying out.
        real = t.data if q is None or t.data.dtype == np.float32 else q.dequantize(t.data)
        return tf.constant(layout(real).astype(np.float32), name=name)

    def value(self, index: int) -> Any:
        """The TF tensor for a TFLite tensor index (constants are created on first use)."""
        if index in self.values:
            return self.values[index]
        t = self.model.tensors[index]
        if t.data is None:
            raise ModelError(f"tensor {t.name!r} is used before any op produces it")
        v = self.const(t)
        self.values[index] = v
        return v

    def clamp(self, x: Any, out: Tensor, activation: str | None) -> Any:
        """Fused activation, then the range the quantized output could represent."""
        tf = self.tf
        lo, hi = -np.inf, np.inf
        if activation == "RELU":
            lo = 0.0
        elif activation == "RELU6":
            lo, hi = 0.0, 6.0
        elif activation == "RELU_N1_TO_1":
            lo, hi = -1.0, 1.0
        elif activation == "TANH":
            x = tf.tanh(x)
        elif activation is not None:
            raise ModelError(f"unsupported fused activation {activation!r} on {out.name!r}")
        if out.quant is not None and out.dtype.kind in "iu" and out.quant.scale.size == 1:
            qlo, qhi = out.quant.representable_range(out.dtype)
            lo, hi = max(lo, qlo), min(hi, qhi)
        name = node_name(out.name)
        if lo == 0.0 and abs(hi - 6.0) < 1e-3:
            # uint8 ReLU6 outputs span [0, 255·s] ≈ [0, 6]; Relu6 lets Grappler fuse
            # Conv2D+BiasAdd+Relu6 (the difference is below 1e-3, a fraction of one step).
            return tf.nn.relu6(x, name=name)
        if lo == 0.0:
            x = tf.nn.relu(x)
            lo = -np.inf
        if np.isfinite(hi):
            x = tf.minimum(x, np.float32(hi))
        if np.isfinite(lo):
            x = tf.maximum(x, np.float32(lo))
        return tf.identity(x, name=name)

    def op(self, op: Operator) -> None:
        """Add one TFLite op; its output becomes ``values[op.outputs[0]]``."""
        tf = self.tf
        out = self.model.tensors[op.outputs[0]]
        opt = op.options
        ins = op.inputs
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            result = self._convolution(op, out)
        elif op.name in ("ADD", "SUB", "MUL"):
            a, b = self.value(ins[0]), self.value(ins[1])
            y = {"ADD": tf.add, "SUB": tf.subtract, "MUL": tf.multiply}[op.name](a, b)
            result = self.clamp(y, out, opt.get("activation"))
        elif op.name in ("RESHAPE", "SQUEEZE"):
            shape = list(out.shape)
            if not shape or any(d < 0 for d in shape[1:]):
                raise ModelError(f"{op.name} output {out.name!r} has no static shape: {out.shape}")
            shape[0] = -1  # keep the batch dimension free
            result = tf.reshape(self.value(ins[0]), shape, name=node_name(out.name))
        elif op.name == "CONCATENATION":
            y = tf.concat([self.value(i) for i in ins], axis=opt["axis"])
            result = self.clamp(y, out, opt.get("activation"))
        elif op.name == "LOGISTIC":
            result = self.clamp(tf.sigmoid(self.value(ins[0])), out, None)
        elif op.name == "TANH":
            result = self.clamp(tf.tanh(self.value(ins[0])), out, None)
        elif op.name in ("RELU", "RELU6", "RELU_N1_TO_1"):
            result = self.clamp(self.value(ins[0]), out, op.name)
        elif op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "PAD", "MEAN"):
            result = self._spatial(op, out)
        elif op.name in ("DEQUANTIZE", "QUANTIZE"):
            # In float both are the identity (a float graph has no quantized tensors).
            result = self.value(ins[0])
        else:  # pragma: no cover - refused before building
            raise ModelError(f"unsupported TFLite op {op.name}")
        self.values[op.outputs[0]] = result

    def _convolution(self, op: Operator, out: Tensor) -> Any:
        """``CONV_2D`` or ``DEPTHWISE_CONV_2D`` with its bias and fused activation."""
        tf = self.tf
        opt, ins = op.options, op.inputs
        x = self.value(ins[0])
        strides = [1, opt["stride_h"], opt["stride_w"], 1]
        if op.name == "CONV_2D":
            w = self.const(self.model.tensors[ins[1]], transpose=(1, 2, 3, 0))  # OHWI → HWIO
            dilations = [1, opt["dilation_h"], opt["dilation_w"], 1]
            y = tf.nn.conv2d(x, w, strides=strides, padding=opt["padding"], dilations=dilations)
        else:
            wt = self.model.tensors[ins[1]]
            _, kh, kw, cm = wt.shape
            cin = int(x.shape[-1])
            w = self.const(wt, reshape=(kh, kw, cin, cm // cin))  # [1,kh,kw,C·M] → [kh,kw,C,M]
            y = tf.nn.depthwise_conv2d(
                x,
                w,
                strides=strides,
                padding=opt["padding"],
                dilations=[opt["dilation_h"], opt["dilation_w"]],
            )
        if len(ins) > 2 and ins[2] >= 0:
            y = tf.nn.bias_add(y, self.value(ins[2]))
        return self.clamp(y, out, opt["activation"])

    def _spatial(self, op: Operator, out: Tensor) -> Any:
        """Pools, ``PAD`` and ``MEAN`` (their paddings and axes must be constants)."""
        tf = self.tf
        opt, ins = op.options, op.inputs
        if op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            pool = tf.nn.avg_pool2d if op.name == "AVERAGE_POOL_2D" else tf.nn.max_pool2d
            y = pool(
                self.value(ins[0]),
                ksize=[1, opt["filter_h"], opt["filter_w"], 1],
                strides=[1, opt["stride_h"], opt["stride_w"], 1],
                padding=opt["padding"],
            )
            return self.clamp(y, out, opt["activation"])
        const = self.model.tensors[ins[1]].data
        if const is None:
            what = "paddings" if op.name == "PAD" else "axes"
            raise ModelError(f"{op.name} {out.name!r} has non-constant {what}")
        if op.name == "PAD":
            return self.clamp(tf.pad(self.value(ins[0]), const.astype(np.int32)), out, None)
        y = tf.reduce_mean(
            self.value(ins[0]),
            axis=[int(a) for a in const.reshape(-1)],
            keepdims=opt.get("keep_dims", False),
        )
        return self.clamp(y, out, None)
