"""Tiny TFLite models the test suite builds itself (never the real model files).

Imported by the tests as ``import tests.tflite_models as tfm`` (the convention of
``tests/extending/toys.py``). Needs the optional ``tflite`` (flatbuffers schema code) and
``flatbuffers`` packages; running the files needs ``ai_edge_litert``.

The models follow the conventions of the real judges' files:

* :func:`write_classifier`: a quantised MobileNetV2 classifier (uint8 image in, uint8
  softmax probabilities out, ``Predictions``; the ``Logits`` feed a ``SOFTMAX`` op).
* :func:`write_segmenter`: a DeepLab segmenter (uint8 image in, int64 ``ArgMax`` class map
  out).
* :func:`write_other_model`: a valid TFLite file that is neither (float32 input, an output
  of an unexpected shape), and :func:`write_broken_model`: a file that is not a valid
  TFLite model, to test refusals.

:func:`classifier_reference` and :func:`segmenter_reference` compute, with numpy, what the
interpreter should output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np
import tflite

__all__ = [
    "INPUT_SCALE",
    "INPUT_ZERO_POINT",
    "OUTPUT_SCALE",
    "OUTPUT_ZERO_POINT",
    "classifier_reference",
    "default_classifier_weights",
    "default_segmenter_weights",
    "segmenter_reference",
    "write_broken_model",
    "write_classifier",
    "write_other_model",
    "write_segmenter",
]

INPUT_SCALE = 1.0 / 128  # uint8 image q -> (q - 128) / 128, in [-1, 1)
INPUT_ZERO_POINT = 128
OUTPUT_SCALE = 1.0 / 256  # probability p -> clip(round(p * 256), 0, 255)
OUTPUT_ZERO_POINT = 0

_T = tflite.TensorType
_OP = tflite.BuiltinOperator
_OPT = tflite.BuiltinOptions

_NP_TYPES = {
    _T.FLOAT32: np.float32,
    _T.INT32: np.int32,
    _T.UINT8: np.uint8,
    _T.INT64: np.int64,
}


# ---------------------------------------------------------------------------------------
# A minimal graph description and its flatbuffer serialisation.


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    type: int
    data: bytes | None = None  # constant contents, or None for an activation
    quant: tuple[float, int] | None = None  # (scale, zero point)


@dataclass
class _Op:
    code: int  # a tflite.BuiltinOperator
    inputs: list[int]
    outputs: list[int]
    options_type: int = _OPT.NONE
    options: Callable[[flatbuffers.Builder], int] | None = None


@dataclass
class _Graph:
    tensors: list[_Tensor] = field(default_factory=list)
    ops: list[_Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def tensor(self, name, shape, type_, quant=None) -> int:
        self.tensors.append(_Tensor(name, tuple(shape), type_, None, quant))
        return len(self.tensors) - 1

    def const(self, name, array, type_) -> int:
        arr = np.ascontiguousarray(array, dtype=_NP_TYPES[type_])
        self.tensors.append(_Tensor(name, arr.shape, type_, arr.tobytes()))
        return len(self.tensors) - 1

    def op(self, code, inputs, outputs, options_type=_OPT.NONE, options=None) -> None:
        self.ops.append(_Op(code, list(inputs), list(outputs), options_type, options))


def _int32_vector(b: flatbuffers.Builder, values) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype=np.int32))


def _data_vector(b: flatbuffers.Builder, data: bytes) -> int:
    """A [ubyte] vector whose contents are 16-byte aligned (as the converter writes)."""
    b.StartVector(1, len(data), 16)
    b.head = b.head - len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    return b.EndVector()


def _offsets_vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _serialise(g: _Graph, description: str) -> bytes:
    b = flatbuffers.Builder(1024)

    # Buffers: 0 is the empty sentinel, then one per constant tensor.
    buffer_of: dict[int, int] = {}
    datas: list[bytes | None] = [None]
    for i, t in enumerate(g.tensors):
        if t.data is not None:
            buffer_of[i] = len(datas)
            datas.append(t.data)
    buffers = []
    for data in datas:
        vec = _data_vector(b, data) if data else None
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        buffers.append(tflite.BufferEnd(b))

    tensors = []
    for i, t in enumerate(g.tensors):
        name = b.CreateString(t.name)
        shape = _int32_vector(b, t.shape)
        quant = None
        if t.quant is not None:
            scale = b.CreateNumpyVector(np.asarray([t.quant[0]], dtype=np.float32))
            zp = b.CreateNumpyVector(np.asarray([t.quant[1]], dtype=np.int64))
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zp)
            quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, t.type)
        tflite.TensorAddBuffer(b, buffer_of.get(i, 0))
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        tensors.append(tflite.TensorEnd(b))

    codes: list[int] = []
    for op in g.ops:
        if op.code not in codes:
            codes.append(op.code)
    opcodes = []
    for code in codes:
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, 1)
        opcodes.append(tflite.OperatorCodeEnd(b))

    operators = []
    for op in g.ops:
        ins = _int32_vector(b, op.inputs)
        outs = _int32_vector(b, op.outputs)
        opts = op.options(b) if op.options is not None else None
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index(op.code))
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if opts is not None:
            tflite.OperatorAddBuiltinOptionsType(b, op.options_type)
            tflite.OperatorAddBuiltinOptions(b, opts)
        operators.append(tflite.OperatorEnd(b))

    tensors_vec = _offsets_vector(b, tensors)
    inputs_vec = _int32_vector(b, g.inputs)
    outputs_vec = _int32_vector(b, g.outputs)
    operators_vec = _offsets_vector(b, operators)
    sg_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_vec)
    tflite.SubGraphAddInputs(b, inputs_vec)
    tflite.SubGraphAddOutputs(b, outputs_vec)
    tflite.SubGraphAddOperators(b, operators_vec)
    tflite.SubGraphAddName(b, sg_name)
    subgraph = tflite.SubGraphEnd(b)

    return finish_model(b, opcodes, subgraph, buffers, description)


def finish_model(
    b: flatbuffers.Builder, opcodes: list[int], subgraph: int, buffers: list[int], description: str
) -> bytes:
    """The file's bytes: a version-3 ``Model`` table of the built operator codes, one
    subgraph and the buffers (offsets into ``b``), with the ``TFL3`` identifier."""
    opcodes_vec = _offsets_vector(b, opcodes)
    subgraphs_vec = _offsets_vector(b, [subgraph])
    buffers_vec = _offsets_vector(b, buffers)
    desc = b.CreateString(description)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, opcodes_vec)
    tflite.ModelAddSubgraphs(b, subgraphs_vec)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, buffers_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _write(path, g: _Graph, description: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_serialise(g, description))
    return path


# Builtin options, as callables that write the options table into the builder.


def _reducer_options(keep_dims: bool):
    def build(b):
        tflite.ReducerOptionsStart(b)
        tflite.ReducerOptionsAddKeepDims(b, keep_dims)
        return tflite.ReducerOptionsEnd(b)

    return build


def _fc_options(b):
    tflite.FullyConnectedOptionsStart(b)
    tflite.FullyConnectedOptionsAddFusedActivationFunction(b, tflite.ActivationFunctionType.NONE)
    tflite.FullyConnectedOptionsAddKeepNumDims(b, False)
    return tflite.FullyConnectedOptionsEnd(b)


def _softmax_options(b):
    tflite.SoftmaxOptionsStart(b)
    tflite.SoftmaxOptionsAddBeta(b, 1.0)
    return tflite.SoftmaxOptionsEnd(b)


def _conv_options(b):
    tflite.Conv2DOptionsStart(b)
    tflite.Conv2DOptionsAddPadding(b, tflite.Padding.VALID)
    tflite.Conv2DOptionsAddStrideW(b, 1)
    tflite.Conv2DOptionsAddStrideH(b, 1)
    tflite.Conv2DOptionsAddFusedActivationFunction(b, tflite.ActivationFunctionType.NONE)
    tflite.Conv2DOptionsAddDilationWFactor(b, 1)
    tflite.Conv2DOptionsAddDilationHFactor(b, 1)
    return tflite.Conv2DOptionsEnd(b)


def _argmax_options(b):
    tflite.ArgMaxOptionsStart(b)
    tflite.ArgMaxOptionsAddOutputType(b, _T.INT64)
    return tflite.ArgMaxOptionsEnd(b)


def _dequantize_options(b):
    tflite.DequantizeOptionsStart(b)
    return tflite.DequantizeOptionsEnd(b)


def _quantize_options(b):
    tflite.QuantizeOptionsStart(b)
    return tflite.QuantizeOptionsEnd(b)


def _uint8_image_input(g: _Graph, name: str, size: int) -> int:
    x = g.tensor(name, (1, size, size, 3), _T.UINT8, (INPUT_SCALE, INPUT_ZERO_POINT))
    g.inputs.append(x)
    return x


def _dequantized(g: _Graph, x: int, size: int) -> int:
    xf = g.tensor("dequantized", (1, size, size, 3), _T.FLOAT32)
    g.op(_OP.DEQUANTIZE, [x], [xf], _OPT.DequantizeOptions, _dequantize_options)
    return xf


def _images_float(images) -> np.ndarray:
    """uint8 ``[N,H,W,3]`` (or one ``[H,W,3]``) -> float64 ``(q - 128) / 128``."""
    q = np.asarray(images)
    if q.dtype != np.uint8:
        raise TypeError(f"images must be uint8, not {q.dtype}")
    if q.ndim == 3:
        q = q[None]
    return (q.astype(np.float64) - INPUT_ZERO_POINT) * INPUT_SCALE


# ---------------------------------------------------------------------------------------
# The classifier.


def default_classifier_weights(num_classes: int = 1001) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's weights when none are given: ``W[1 + c, c] = 8`` for the colour
    channels ``c = 0, 1, 2`` (R, G, B), every other weight and every bias 0. So the class of
    an image is ``1 + argmax`` of its channel means when the largest mean is positive, and
    class 0 (MobileNet's "background") when all three means are negative (uint8 below 128).
    """
    if num_classes < 4:
        raise ValueError("the default classifier weights need at least 4 classes")
    w = np.zeros((num_classes, 3), dtype=np.float32)
    for c in range(3):
        w[1 + c, c] = 8.0
    return w, np.zeros(num_classes, dtype=np.float32)


def _check_fc(weights, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    w, bias = (np.asarray(a, dtype=np.float32) for a in weights)
    if w.shape != (num_classes, 3) or bias.shape != (num_classes,):
        raise ValueError(
            f"weights must be ([{num_classes},3], [{num_classes}]), not {w.shape}, {bias.shape}"
        )
    return w, bias


def write_classifier(
    path,
    *,
    size: int = 16,
    num_classes: int = 1001,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    quantized_output: bool = True,
) -> Path:
    """Write a tiny classifier with a quantised MobileNetV2's interface to ``path``.

    Tensors and operators, in order (``ops[i]`` of subgraph 0)::

        input        uint8   [1,size,size,3]  scale 1/128, zero point 128   (model input)
        0 DEQUANTIZE   -> x  float32 [1,size,size,3]   x = (q - 128) / 128
        1 MEAN (axes [1,2], keep_dims false) -> m  float32 [1,3]   m = x.mean((1, 2))
        2 FULLY_CONNECTED (weight W [num_classes,3], bias b [num_classes])
                       -> Logits  float32 [1,num_classes]   z = m @ W.T + b
        3 SOFTMAX (beta 1.0) -> p  float32 [1,num_classes]   p = exp(z) / exp(z).sum()
        4 QUANTIZE (only if quantized_output)
                       -> Predictions  uint8 [1,num_classes]  scale 1/256, zero point 0
                          u = clip(round(p * 256), 0, 255)

    The model output is ``Predictions`` (uint8) if ``quantized_output``, else the float
    softmax output, then itself named ``Predictions``. ``weights`` is ``(W, b)`` with shapes
    ``[num_classes,3]`` and ``[num_classes]`` (float32); by default
    :func:`default_classifier_weights`. :func:`classifier_reference` computes the output.
    The file holds ``16 * num_classes`` bytes of weights plus about 2 KB.
    """
    w, bias = _check_fc(
        default_classifier_weights(num_classes) if weights is None else weights, num_classes
    )
    g = _Graph()
    x = _uint8_image_input(g, "input", size)
    xf = _dequantized(g, x, size)
    axes = g.const("mean/reduction_indices", [1, 2], _T.INT32)
    m = g.tensor("mean", (1, 3), _T.FLOAT32)
    g.op(_OP.MEAN, [xf, axes], [m], _OPT.ReducerOptions, _reducer_options(False))
    wt = g.const("Logits/weights", w, _T.FLOAT32)
    bt = g.const("Logits/bias", bias, _T.FLOAT32)
    z = g.tensor("Logits", (1, num_classes), _T.FLOAT32)
    g.op(_OP.FULLY_CONNECTED, [m, wt, bt], [z], _OPT.FullyConnectedOptions, _fc_options)
    p_name = "Softmax" if quantized_output else "Predictions"
    p = g.tensor(p_name, (1, num_classes), _T.FLOAT32)
    g.op(_OP.SOFTMAX, [z], [p], _OPT.SoftmaxOptions, _softmax_options)
    if quantized_output:
        u = g.tensor("Predictions", (1, num_classes), _T.UINT8, (OUTPUT_SCALE, OUTPUT_ZERO_POINT))
        g.op(_OP.QUANTIZE, [p], [u], _OPT.QuantizeOptions, _quantize_options)
        g.outputs.append(u)
    else:
        g.outputs.append(p)
    return _write(path, g, "semcom test classifier")


def classifier_reference(
    images,
    *,
    num_classes: int = 1001,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    quantized_output: bool = True,
) -> dict[str, np.ndarray]:
    """What :func:`write_classifier`'s model computes, for uint8 images ``[N,H,W,3]`` (or
    one ``[H,W,3]``), in float64: ``{"logits": [N,C], "probs": [N,C], "output": [N,C]}``,
    ``output`` being ``uint8`` (quantised probabilities) if ``quantized_output`` else
    ``probs``. The interpreter computes in float32 and may round the uint8 output the
    other way where ``p * 256`` is near a half: compare with a tolerance of 1.
    """
    w, bias = _check_fc(
        default_classifier_weights(num_classes) if weights is None else weights, num_classes
    )
    m = _images_float(images).mean((1, 2))
    z = m @ w.astype(np.float64).T + bias.astype(np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    out = p
    if quantized_output:
        out = np.clip(np.round(p / OUTPUT_SCALE) + OUTPUT_ZERO_POINT, 0, 255).astype(np.uint8)
    return {"logits": z, "probs": p, "output": out}


# ---------------------------------------------------------------------------------------
# The segmenter.


def default_segmenter_weights(num_classes: int = 19) -> tuple[np.ndarray, np.ndarray]:
    """The segmenter's weights when none are given: ``W[c, c] = 1`` for the colour channels
    ``c = 0, 1, 2``, bias 0 for them and -2 for every other class (which so never wins:
    ``x`` is in [-1, 1)). So each pixel's class is the index of its largest channel (the
    first on a tie).
    """
    if num_classes < 3:
        raise ValueError("the default segmenter weights need at least 3 classes")
    w = np.zeros((num_classes, 3), dtype=np.float32)
    w[0, 0] = w[1, 1] = w[2, 2] = 1.0
    bias = np.full(num_classes, -2.0, dtype=np.float32)
    bias[:3] = 0.0
    return w, bias


def _check_conv(weights, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    w, bias = (np.asarray(a, dtype=np.float32) for a in weights)
    if w.shape == (num_classes, 1, 1, 3):
        w = w.reshape(num_classes, 3)
    if w.shape != (num_classes, 3) or bias.shape != (num_classes,):
        raise ValueError(
            f"weights must be ([{num_classes},3] or [{num_classes},1,1,3], [{num_classes}]), "
            f"not {w.shape}, {bias.shape}"
        )
    return w, bias


def write_segmenter(
    path,
    *,
    size: int = 17,
    num_classes: int = 19,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Write a tiny segmenter with a DeepLab TFLite's interface to ``path``.

    Tensors and operators, in order::

        ImageTensor  uint8   [1,size,size,3]  scale 1/128, zero point 128   (model input)
        0 DEQUANTIZE   -> x  float32 [1,size,size,3]   x = (q - 128) / 128
        1 CONV_2D 1x1 (filter [num_classes,1,1,3] OHWI, bias [num_classes], stride 1,
          VALID, no activation) -> logits  float32 [1,size,size,num_classes]
                          s[..., k] = x @ W[k] + b[k]
        2 ARG_MAX (axis [3], output_type int64)
                       -> ArgMax  int64 [1,size,size]   argmax over k (first on a tie)

    ``weights`` is ``(W, b)``: ``W`` ``[num_classes,3]`` (or ``[num_classes,1,1,3]``),
    ``b`` ``[num_classes]``; by default :func:`default_segmenter_weights`.
    :func:`segmenter_reference` computes the output.
    """
    w, bias = _check_conv(
        default_segmenter_weights(num_classes) if weights is None else weights, num_classes
    )
    g = _Graph()
    x = _uint8_image_input(g, "ImageTensor", size)
    xf = _dequantized(g, x, size)
    wt = g.const("logits/weights", w.reshape(num_classes, 1, 1, 3), _T.FLOAT32)
    bt = g.const("logits/bias", bias, _T.FLOAT32)
    s = g.tensor("logits", (1, size, size, num_classes), _T.FLOAT32)
    g.op(_OP.CONV_2D, [xf, wt, bt], [s], _OPT.Conv2DOptions, _conv_options)
    axis = g.const("ArgMax/dimension", [3], _T.INT32)
    a = g.tensor("ArgMax", (1, size, size), _T.INT64)
    g.op(_OP.ARG_MAX, [s, axis], [a], _OPT.ArgMaxOptions, _argmax_options)
    g.outputs.append(a)
    return _write(path, g, "semcom test segmenter")


def segmenter_reference(
    images, *, num_classes: int = 19, weights: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """What :func:`write_segmenter`'s model computes, for uint8 images ``[N,H,W,3]`` (or one
    ``[H,W,3]``): ``{"logits": [N,H,W,C] float64, "output": [N,H,W] int64}``. Choose images
    and weights without near-ties between the two best classes (the interpreter computes in
    float32).
    """
    w, bias = _check_conv(
        default_segmenter_weights(num_classes) if weights is None else weights, num_classes
    )
    s = _images_float(images) @ w.astype(np.float64).T + bias.astype(np.float64)
    return {"logits": s, "output": s.argmax(-1).astype(np.int64)}


# ---------------------------------------------------------------------------------------
# Files that are neither.


def write_other_model(path, *, size: int = 16) -> Path:
    """Write a valid TFLite model that is neither a classifier nor a segmenter: a float32
    input ``[1,size,size,3]`` named ``input`` and one output, MEAN over axis 3 with
    keep_dims, float32 ``[1,size,size,1]`` named ``mean``.
    """
    g = _Graph()
    x = g.tensor("input", (1, size, size, 3), _T.FLOAT32)
    g.inputs.append(x)
    axis = g.const("mean/reduction_indices", [3], _T.INT32)
    m = g.tensor("mean", (1, size, size, 1), _T.FLOAT32)
    g.op(_OP.MEAN, [x, axis], [m], _OPT.ReducerOptions, _reducer_options(True))
    g.outputs.append(m)
    return _write(path, g, "semcom test other model")


def write_broken_model(path) -> Path:
    """Write a file that is not a valid TFLite model: the first half of a classifier's
    bytes (it keeps the ``TFL3`` identifier, its offsets point past the end)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = _Graph()
    x = _uint8_image_input(g, "input", 4)
    xf = _dequantized(g, x, 4)
    g.outputs.append(xf)
    data = _serialise(g, "semcom test broken model")
    path.write_bytes(data[: len(data) // 2])
    return path
