"""A tiny uint8 TFLite SSD written in the test (milliseconds, a few kB) for the converter tests.

Same structure as the real model, at toy scale: uint8 input [1, 8, 8, 3] (scale 1/128, zero
point 128) → CONV_2D stride 2 (ReLU6 range) → DEPTHWISE_CONV_2D → ADD (residual) → box and
class heads (CONV_2D 1×1, linear ranges) → RESHAPE → LOGISTIC → TFLite_Detection_PostProcess
with 16 uint8 anchors ([yc, xc, h, w]) and 2 classes plus background. Written with the
flatbuffer object API that TensorFlow ships (tests may import TensorFlow).
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from flatbuffers import flexbuffers

POST_OPTIONS = {
    "max_detections": 10,
    "max_classes_per_detection": 1,
    "detections_per_class": 100,
    "num_classes": 2,
    "nms_score_threshold": 1e-8,
    "nms_iou_threshold": 0.6,
    "y_scale": 10.0,
    "x_scale": 10.0,
    "h_scale": 5.0,
    "w_scale": 5.0,
    "use_regular_nms": False,
}
BOX_TENSOR, SCORE_TENSOR, ANCHOR_TENSOR = 15, 18, 19


def tiny_anchors() -> np.ndarray:
    """16 anchors on a 4×4 grid, [yc, xc, h, w], exactly representable in uint8 steps of 1/255."""
    c = (np.arange(4) * 64 + 32) / 255.0
    yc, xc = np.meshgrid(c, c, indexing="ij")
    size = np.full(16, 80 / 255.0)
    return np.stack([yc.ravel(), xc.ravel(), size, size], axis=1).astype(np.float32)


def build_tiny_ssd(
    seed: int = 0,
    post_options: dict | None = None,
    drop_postprocess: bool = False,
    float_model: bool = False,
) -> bytes:
    """The tiny SSD as .tflite bytes; ``drop_postprocess`` leaves the custom op out (not an SSD).

    ``float_model`` writes the same network in float32 (dequantized weights, no quantization,
    explicit fused ReLU6), as TFLite's float SSD exports are: input float in [-1, 1].
    """
    from tensorflow.lite.python import schema_py_generated as s

    rng = np.random.default_rng(seed)
    buffers: list = [s.BufferT()]
    tensors: list = []

    def tensor(name, shape, ttype, scale=None, zero=0, data=None):
        if float_model and ttype in (U8, I32) and scale is not None:
            if data is not None:
                data = ((data.astype(np.float64) - zero) * scale).astype(np.float32)
            ttype, scale = F32, None
        t = s.TensorT()
        t.name, t.shape, t.type = name.encode(), list(shape), ttype
        if scale is not None:
            q = s.QuantizationParametersT()
            q.scale, q.zeroPoint = [float(scale)], [int(zero)]
            t.quantization = q
        if data is not None:
            b = s.BufferT()
            b.data = list(np.ascontiguousarray(data).tobytes())
            buffers.append(b)
            t.buffer = len(buffers) - 1
        else:
            t.buffer = 0
        tensors.append(t)
        return len(tensors) - 1

    U8, I32, F32 = s.TensorType.UINT8, s.TensorType.INT32, s.TensorType.FLOAT32
    relu6 = 6.0 / 255
    w = lambda shape: rng.integers(90, 166, size=shape, dtype=np.uint8)  # noqa: E731
    b = lambda n: rng.integers(-200, 200, size=n, dtype=np.int32)  # noqa: E731
    x = tensor("image", [1, 8, 8, 3], U8, 1 / 128, 128)
    w1 = tensor("conv/weights", [8, 3, 3, 3], U8, 0.02, 128, w((8, 3, 3, 3)))
    b1 = tensor("conv/bias", [8], I32, 0.02 / 128, 0, b(8))
    c1 = tensor("conv/Relu6", [1, 4, 4, 8], U8, relu6, 0)
    w2 = tensor("dw/weights", [1, 3, 3, 8], U8, 0.05, 128, w((1, 3, 3, 8)))
    b2 = tensor("dw/bias", [8], I32, relu6 * 0.05, 0, b(8))
    c2 = tensor("dw/Relu6", [1, 4, 4, 8], U8, relu6, 0)
    c3 = tensor("add", [1, 4, 4, 8], U8, 12.0 / 255, 0)
    w3 = tensor("box/weights", [4, 1, 1, 8], U8, 0.02, 128, w((4, 1, 1, 8)))
    b3 = tensor("box/bias", [4], I32, 12.0 / 255 * 0.02, 0, b(4))
    c4 = tensor("box/BiasAdd", [1, 4, 4, 4], U8, 0.1, 128)
    w4 = tensor("cls/weights", [3, 1, 1, 8], U8, 0.02, 128, w((3, 1, 1, 8)))
    b4 = tensor("cls/bias", [3], I32, 12.0 / 255 * 0.02, 0, b(3))
    c5 = tensor("cls/BiasAdd", [1, 4, 4, 3], U8, 0.1, 128)
    s1 = tensor("box/shape", [3], I32, data=np.array([1, 16, 4], np.int32))
    r1 = tensor("box_encodings", [1, 16, 4], U8, 0.1, 128)
    s2 = tensor("cls/shape", [3], I32, data=np.array([1, 16, 3], np.int32))
    r2 = tensor("class_logits", [1, 16, 3], U8, 0.1, 128)
    sg = tensor("class_scores", [1, 16, 3], U8, 1 / 256, 0)
    an = tensor("anchors", [16, 4], U8, 1 / 255, 0, np.round(tiny_anchors() * 255).astype(np.uint8))
    outs = [tensor(f"detections:{i}", [], F32) for i in range(4)]
    assert (r1, sg, an) == (BOX_TENSOR, SCORE_TENSOR, ANCHOR_TENSOR)

    codes = []
    for builtin in (
        s.BuiltinOperator.CONV_2D,
        s.BuiltinOperator.DEPTHWISE_CONV_2D,
        s.BuiltinOperator.ADD,
        s.BuiltinOperator.RESHAPE,
        s.BuiltinOperator.LOGISTIC,
        s.BuiltinOperator.CUSTOM,
    ):
        oc = s.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = builtin, min(builtin, 127), 1
        if builtin == s.BuiltinOperator.CUSTOM:
            oc.customCode = b"TFLite_Detection_PostProcess"
        codes.append(oc)

    def op(code, inputs, outputs, opt_type=0, opt=None, custom=None):
        o = s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = code, list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = opt_type, opt
        if custom is not None:
            o.customOptions = list(custom)
        return o

    relu6_fused = s.ActivationFunctionType.RELU6 if float_model else 0

    def conv(stride, act=0):
        c = s.Conv2DOptionsT()
        c.padding, c.strideW, c.strideH = s.Padding.SAME, stride, stride
        c.fusedActivationFunction = act
        return c

    dw = s.DepthwiseConv2DOptionsT()
    dw.padding, dw.strideW, dw.strideH, dw.depthMultiplier = s.Padding.SAME, 1, 1, 1
    dw.fusedActivationFunction = relu6_fused
    reshape = lambda shape: _reshape_options(s, shape)  # noqa: E731
    ops = [
        op(0, [x, w1, b1], [c1], s.BuiltinOptions.Conv2DOptions, conv(2, relu6_fused)),
        op(1, [c1, w2, b2], [c2], s.BuiltinOptions.DepthwiseConv2DOptions, dw),
        op(2, [c1, c2], [c3], s.BuiltinOptions.AddOptions, s.AddOptionsT()),
        op(0, [c3, w3, b3], [c4], s.BuiltinOptions.Conv2DOptions, conv(1)),
        op(0, [c3, w4, b4], [c5], s.BuiltinOptions.Conv2DOptions, conv(1)),
        op(3, [c4, s1], [r1], s.BuiltinOptions.ReshapeOptions, reshape([1, 16, 4])),
        op(3, [c5, s2], [r2], s.BuiltinOptions.ReshapeOptions, reshape([1, 16, 3])),
        op(4, [r2], [sg]),
    ]
    if not drop_postprocess:
        custom = flexbuffers.Dumps(post_options if post_options is not None else POST_OPTIONS)
        ops.append(op(5, [r1, sg, an], outs, custom=custom))
    subgraph = s.SubGraphT()
    subgraph.tensors, subgraph.operators = tensors, ops
    subgraph.inputs = [x]
    subgraph.outputs = outs if not drop_postprocess else [r1, sg]
    subgraph.name = b"main"
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, codes, [subgraph]
    model.buffers, model.description = buffers, b"tiny test SSD"
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _reshape_options(s, shape):
    r = s.ReshapeOptionsT()
    r.newShape = list(shape)
    return r
