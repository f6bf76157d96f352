"""Import MobileNetV2 weights from a (quantised) TFLite flatbuffer into the torch port.

```python
from semcom.models.tflite_import import mobilenet_v2_from_tflite, export_mobilenet_v2
model = mobilenet_v2_from_tflite("mobilenet_v2_1.0_224_quant.tflite")  # MobileNetV2, eval()
export_mobilenet_v2("mobilenet_v2_1.0_224_quant.tflite", "mnv2.safetensors")
# later, without any TFLite package:
from semcom.models import load_checkpoint
model, meta = load_checkpoint("mnv2.safetensors", "mobilenet-v2")
```

The file is read with the ``tflite`` flatbuffer package (``pip install 'semcom[litert]'``;
imported only when a file is read); no TFLite interpreter is needed. The operators of
subgraph 0 are walked in order and matched, one by one, against the layers of
:class:`semcom.models.mobilenet_v2.MobileNetV2` (the TF-slim layout with batch norm
folded)::

    CONV_2D (stem) ; per block [CONV_2D expand] DEPTHWISE_CONV_2D CONV_2D project [ADD] ;
    CONV_2D (head) ; AVERAGE_POOL_2D | MEAN ; CONV_2D 1x1 | FULLY_CONNECTED (classifier) ;
    [RESHAPE | SQUEEZE] ; [SOFTMAX]

Each conv must read the previous layer's output, an ``ADD`` must sum a block's input and
its projection, and every kernel's shape, stride, padding (``SAME`` for 3x3) and fused
activation (ReLU6 except after a projection and the classifier) must be the expected
ones; the width multiplier and class count are read from the shapes. Quantised weights are
dequantised as ``(q - zero_point) * scale`` (per tensor, or per channel along the
tensor's quantised dimension); int32 biases carry their own scale. Layouts: TFLite conv
``OHWI`` -> torch ``OIHW``, depthwise ``(1, H, W, C)`` -> ``(C, 1, H, W)``, 1x1 classifier
``(O, 1, 1, I)`` or fully-connected ``(O, I)`` -> linear ``(O, I)``.

The result is a float model: it does not reproduce the quantised arithmetic (activations
are not requantised), so its outputs agree with the TFLite interpreter's to quantisation
noise, not bit for bit.

Every problem with the file (missing, not a TFLite flatbuffer -- no ``TFL3`` identifier at
bytes 4..8 --, truncated or corrupt, or a network of another layout) is one
:class:`semcom.errors.InputError` with a one-line message naming the file.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semcom.errors import InputError, SemcomError, one_line
from semcom.models.mobilenet_v2 import MobileNetV2, block_specs

__all__ = ["WIDTHS", "export_mobilenet_v2", "mobilenet_v2_from_tflite", "restrict_classes"]

#: Width multipliers tried, in order, when ``width`` is not given.
WIDTHS = (1.0, 0.75, 0.5, 0.35, 1.3, 1.4)
#: Most operators / tensors a subgraph may declare (MobileNetV2: 66 / 175); a corrupt
#: vector length is refused before anything is walked.
MAX_OPERATORS = 1000
MAX_TENSORS = 10_000
#: Files larger than this are refused before being read (MobileNetV2 1.4 in float32 is
#: about 25 MB).
MAX_TFLITE_BYTES = 256 * 2**20

_INSTALL = "reading TFLite files needs the 'tflite' package: pip install 'semcom[litert]'"

# TFLite enums used here (tflite.TensorType / Padding / ActivationFunctionType).
_NUMPY_DTYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 9: np.int8}
_SAME, _RELU6, _NONE = 0, 3, 0


@dataclass
class _Layer:
    """One weighted layer of the torch model, as the TFLite graph must hold it."""

    key: str  # state-dict prefix, e.g. "blocks.3.depthwise"
    kind: str  # "conv", "depthwise" or "classifier"
    weight_shape: tuple[int, ...]  # torch shape
    stride: int
    relu6: bool
    block: int | None = None  # block index, for the residual ADD
    residual: bool = False


def _plan(width: float, num_classes: int) -> list[_Layer]:
    """The layers of ``MobileNetV2(num_classes, width)``, in graph order."""
    stem, specs, head = block_specs(width)
    layers = [_Layer("stem", "conv", (stem, 3, 3, 3), 2, True)]
    for i, (cin, cout, stride, t) in enumerate(specs):
        hidden = cin * t
        if t != 1:
            layers.append(_Layer(f"blocks.{i}.expand", "conv", (hidden, cin, 1, 1), 1, True, i))
        layers.append(
            _Layer(f"blocks.{i}.depthwise", "depthwise", (hidden, 1, 3, 3), stride, True, i)
        )
        layers.append(
            _Layer(
                f"blocks.{i}.project", "conv", (cout, hidden, 1, 1), 1, False, i,
                residual=stride == 1 and cin == cout,
            )
        )  # fmt: skip
    layers.append(_Layer("head", "conv", (head, specs[-1][1], 1, 1), 1, True))
    layers.append(_Layer("classifier", "classifier", (num_classes, head), 1, False))
    return layers


def _tflite_shape(layer: _Layer) -> tuple[int, ...]:
    """The TFLite weight shape the torch ``layer`` corresponds to."""
    if layer.kind == "depthwise":
        c, _, kh, kw = layer.weight_shape
        return (1, kh, kw, c)
    if layer.kind == "classifier":
        o, i = layer.weight_shape
        return (o, 1, 1, i)
    o, i, kh, kw = layer.weight_shape
    return (o, kh, kw, i)


def _to_torch_layout(w: np.ndarray, layer: _Layer) -> np.ndarray:
    if layer.kind == "depthwise":  # (1, H, W, C) -> (C, 1, H, W)
        return w.transpose(3, 0, 1, 2)
    if layer.kind == "classifier":  # (O, 1, 1, I) or (O, I) -> (O, I)
        return w.reshape(w.shape[0], -1)
    return w.transpose(0, 3, 1, 2)  # OHWI -> OIHW


class _File:
    """The parsed flatbuffer of one TFLite file, with checked access to its tensors."""

    def __init__(self, tflite: Any, data: bytes, where: str) -> None:
        self.tfl, self.data, self.where = tflite, data, where
        self.model = tflite.Model.GetRootAs(data, 0)
        if self.model.SubgraphsLength() < 1:
            raise self.error("the file holds no subgraph")
        self.graph = self.model.Subgraphs(0)
        n_ops, n_tensors = self.graph.OperatorsLength(), self.graph.TensorsLength()
        if n_ops > MAX_OPERATORS or n_tensors > MAX_TENSORS:
            raise self.error(f"subgraph 0 declares {n_ops} operators and {n_tensors} tensors")
        names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self.opnames = []
        for i in range(self.model.OperatorCodesLength()):
            c = self.model.OperatorCodes(i)
            code = max(c.BuiltinCode(), c.DeprecatedBuiltinCode())
            self.opnames.append(names.get(code, f"builtin {code}"))

    def error(self, text: str) -> InputError:
        return InputError(one_line(f"{self.where}: {text}"))

    def layout_error(self, text: str) -> InputError:
        return self.error(f"not a MobileNetV2 of the expected layout: {text}")

    def op(self, i: int) -> tuple[str, Any, list[int], list[int]]:
        """Name, operator table, input and output tensor indices of operator ``i``."""
        op = self.graph.Operators(i)
        idx = op.OpcodeIndex()
        if not 0 <= idx < len(self.opnames):
            raise self.error(f"operator {i} has opcode index {idx} out of range")
        ins = [int(v) for v in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(v) for v in op.OutputsAsNumpy()] if op.OutputsLength() else []
        n = self.graph.TensorsLength()
        for t in ins + outs:
            if t >= n:
                raise self.error(f"operator {i} names tensor {t}, the subgraph has {n}")
        return self.opnames[idx], op, ins, outs

    def options(self, op: Any, cls: Any) -> Any:
        table = op.BuiltinOptions()
        if table is None:
            raise self.error("an operator has no options")
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def shape(self, t: int) -> tuple[int, ...]:
        tensor = self.graph.Tensors(t)
        return tuple(int(v) for v in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()

    def name(self, t: int) -> str:
        raw = self.graph.Tensors(t).Name()
        return raw.decode("utf-8", "replace") if raw else f"tensor {t}"

    def array(self, t: int) -> np.ndarray:
        """Constant tensor ``t``, dequantised, as float64 in its TFLite shape."""
        tensor = self.graph.Tensors(t)
        shape = self.shape(t)
        dtype = _NUMPY_DTYPES.get(tensor.Type())
        if dtype is None:
            raise self.error(f"tensor {self.name(t)!r} has unsupported type {tensor.Type()}")
        b = tensor.Buffer()
        if not 0 < b < self.model.BuffersLength():
            raise self.error(f"tensor {self.name(t)!r} holds no constant data (buffer {b})")
        buf = self.model.Buffers(b)
        if any(d < 1 for d in shape):
            raise self.error(f"tensor {self.name(t)!r} has shape {shape}")
        need = math.prod(shape) * np.dtype(dtype).itemsize
        if buf.DataLength():
            raw = buf.DataAsNumpy().tobytes()
        elif buf.Offset() > 1:  # data outside the flatbuffer (files over 2 GB)
            off, size = int(buf.Offset()), int(buf.Size())
            if off + size > len(self.data):
                raise self.error(f"tensor {self.name(t)!r} data runs past the end of the file")
            raw = self.data[off : off + size]
        else:
            raise self.error(f"tensor {self.name(t)!r} holds no constant data")
        if len(raw) != need:
            raise self.error(
                f"tensor {self.name(t)!r} of shape {shape} needs {need} bytes, has {len(raw)}"
            )
        arr = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(np.float64)
        q = tensor.Quantization()
        if dtype is np.float32 or q is None or not q.ScaleLength():
            if dtype is not np.float32:
                raise self.error(f"integer tensor {self.name(t)!r} has no quantisation scale")
            return arr
        scale = q.ScaleAsNumpy().astype(np.float64)
        zp = q.ZeroPointAsNumpy().astype(np.float64) if q.ZeroPointLength() else np.zeros(1)
        if len(zp) == 1 and len(scale) > 1:
            zp = np.full_like(scale, zp[0])
        if len(scale) == 1:
            out = (arr - zp[0]) * scale[0]
        else:
            dim = q.QuantizedDimension()
            if not 0 <= dim < arr.ndim or shape[dim] != len(scale) or len(zp) != len(scale):
                raise self.error(
                    f"tensor {self.name(t)!r}: {len(scale)} per-channel scales do not fit "
                    f"shape {shape} along dimension {dim}"
                )
            bshape = [1] * arr.ndim
            bshape[dim] = len(scale)
            out = (arr - zp.reshape(bshape)) * scale.reshape(bshape)
        if not np.isfinite(out).all():
            raise self.error(f"tensor {self.name(t)!r} has non-finite values")
        return out


def _read(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    from semcom.models.tflite import read_tflite_file

    p, data = read_tflite_file(path, MAX_TFLITE_BYTES)
    return data, str(p)


def _match(f: _File, width: float | None) -> tuple[float, int, dict[int, int]]:
    """Walk the operators; returns ``(width, num_classes, {layer index: operator index})``."""
    n_ops = f.graph.OperatorsLength()
    ops = [f.op(i) for i in range(n_ops)]
    weighted = [
        (i, outs, ins)
        for i, (name, _, ins, outs) in enumerate(ops)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    ]
    if len(weighted) < 3:
        raise f.layout_error(f"{len(weighted)} conv / fully-connected operators")
    # The class count is the classifier's output size; the width is the one (of WIDTHS or
    # as given) whose every kernel shape matches.
    cls_ins = weighted[-1][2]
    if len(cls_ins) < 2:
        raise f.layout_error(f"operator {weighted[-1][0]} has no weights")
    num_classes = f.shape(cls_ins[1])[0] if f.shape(cls_ins[1]) else 0
    if num_classes < 1:
        raise f.layout_error("the classifier has no outputs")
    have = [f.shape(ins[1]) if len(ins) > 1 else () for _, _, ins in weighted]
    chosen = None
    for w in (width,) if width is not None else WIDTHS:
        plan = _plan(w, num_classes)
        want = [_tflite_shape(layer) for layer in plan]
        # the classifier may be FULLY_CONNECTED (O, I) instead of a 1x1 conv (O, 1, 1, I)
        if len(want) == len(have) and all(
            a == b or (layer.kind == "classifier" and b == (a[0], a[3]))
            for layer, a, b in zip(plan, want, have, strict=True)
        ):
            chosen = w
            break
    if chosen is None:
        first = have[0] if have else ()
        raise f.layout_error(
            f"{len(have)} weighted layers (stem kernel {first}, {num_classes} classes) match "
            + (f"no MobileNetV2 of width {width}" if width is not None else
               f"no MobileNetV2 of width {', '.join(map(str, WIDTHS))}")
        )  # fmt: skip

    plan = _plan(chosen, num_classes)
    inputs = [int(v) for v in f.graph.InputsAsNumpy()] if f.graph.InputsLength() else []
    if len(inputs) != 1:
        raise f.layout_error(f"subgraph 0 has {len(inputs)} inputs, expected 1")
    current = inputs[0]
    block_input: dict[int, int] = {}
    where: dict[int, int] = {}
    k = 0  # next operator
    tfl = f.tfl

    def expect(names: tuple[str, ...], what: str) -> tuple[str, Any, list[int], list[int]]:
        nonlocal k
        if k >= n_ops:
            raise f.layout_error(f"the graph ends after {n_ops} operators, expected {what}")
        name, op, ins, outs = ops[k]
        if name not in names:
            raise f.layout_error(f"operator {k} is {name}, expected {what}")
        if not outs:
            raise f.layout_error(f"operator {k} ({name}) has no output")
        k += 1
        return name, op, ins, outs

    for li, layer in enumerate(plan):
        if layer.kind == "classifier":
            # global pool between head and classifier
            name, _, ins, outs = expect(("AVERAGE_POOL_2D", "MEAN"), "the global AVERAGE_POOL_2D")
            if not ins or ins[0] != current:
                raise f.layout_error(f"operator {k - 1} ({name}) does not read the head output")
            current = outs[0]
        if layer.block is not None and layer.block not in block_input:
            block_input[layer.block] = current
        what = {"conv": "CONV_2D", "depthwise": "DEPTHWISE_CONV_2D"}.get(
            layer.kind, "CONV_2D or FULLY_CONNECTED"
        )
        names = ("CONV_2D", "FULLY_CONNECTED") if layer.kind == "classifier" else (what,)
        name, op, ins, outs = expect(names, f"{what} for {layer.key}")
        i = k - 1
        if len(ins) < 3 or ins[2] < 0:
            raise f.layout_error(f"operator {i} ({layer.key}) has no bias")
        if ins[0] != current:
            raise f.layout_error(f"operator {i} ({layer.key}) does not read the previous layer")
        if name == "DEPTHWISE_CONV_2D":
            o = f.options(op, tfl.DepthwiseConv2DOptions)
            if o.DepthMultiplier() not in (0, 1):
                raise f.layout_error(f"operator {i}: depth multiplier {o.DepthMultiplier()}")
        elif name == "CONV_2D":
            o = f.options(op, tfl.Conv2DOptions)
        else:
            o = f.options(op, tfl.FullyConnectedOptions)
        if name != "FULLY_CONNECTED":
            stride = (o.StrideH(), o.StrideW())
            dil = (o.DilationHFactor(), o.DilationWFactor())
            if stride != (layer.stride, layer.stride) or dil not in ((1, 1), (0, 0)):
                raise f.layout_error(
                    f"operator {i} ({layer.key}) has stride {stride}, dilation {dil}; "
                    f"expected stride {layer.stride}, no dilation"
                )
            kh = layer.weight_shape[2] if layer.kind != "classifier" else 1
            if kh > 1 and o.Padding() != _SAME:
                raise f.layout_error(f"operator {i} ({layer.key}) does not use SAME padding")
        act = o.FusedActivationFunction()
        if act != (_RELU6 if layer.relu6 else _NONE):
            raise f.layout_error(
                f"operator {i} ({layer.key}) has fused activation {act}, expected "
                + ("RELU6" if layer.relu6 else "none")
            )
        bias = f.shape(ins[2])
        if bias != (layer.weight_shape[0],):
            raise f.layout_error(f"operator {i} ({layer.key}) has bias of shape {bias}")
        where[li] = i
        current = outs[0]
        if layer.residual:
            name, _, ins, outs = expect(("ADD",), f"the residual ADD of block {layer.block}")
            if sorted(ins[:2]) != sorted((current, block_input[layer.block])) or len(ins) != 2:
                raise f.layout_error(
                    f"operator {k - 1} (ADD) does not sum block {layer.block}'s input and output"
                )
            current = outs[0]
    for names in (("RESHAPE", "SQUEEZE"), ("SOFTMAX",)):
        if k < n_ops and ops[k][0] in names:
            if not ops[k][2] or ops[k][2][0] != current or not ops[k][3]:
                raise f.layout_error(f"operator {k} ({ops[k][0]}) does not read the logits")
            current = ops[k][3][0]
            k += 1
    if k != n_ops:
        raise f.layout_error(f"unexpected operator {k} ({ops[k][0]}) after the classifier")
    return chosen, num_classes, where


def _state_dict(f: _File, plan: list[_Layer], where: dict[int, int]) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    for li, layer in enumerate(plan):
        _, _, ins, _ = f.op(where[li])
        w = f.array(ins[1])
        if layer.kind == "classifier" and w.ndim == 2:
            w = w.reshape(w.shape[0], 1, 1, w.shape[1])
        w = _to_torch_layout(w, layer)
        if w.shape != layer.weight_shape:  # guarded by _match; a last safety net
            raise f.layout_error(f"{layer.key}: weight shape {w.shape} != {layer.weight_shape}")
        sd[f"{layer.key}.weight"] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
        sd[f"{layer.key}.bias"] = torch.from_numpy(f.array(ins[2]).astype(np.float32))
    return sd


def mobilenet_v2_from_tflite(
    path: str | os.PathLike[str], *, width: float | None = None
) -> MobileNetV2:
    """A :class:`MobileNetV2` (``eval()`` mode, float32, CPU) with the weights of a TFLite file.

    Args:
        path: a MobileNetV2 ``.tflite`` file (uint8 / int8 quantised or float32), TF-slim
            layout (e.g. ``mobilenet_v2_1.0_224_quant.tflite``).
        width: the width multiplier; ``None`` (default) infers it from the kernel
            shapes (one of :data:`WIDTHS`). The class count is always read from the file.

    The model is stamped as the registry's ``mobilenet-v2`` (``semcom_name``, ``config``),
    so :func:`semcom.models.save_checkpoint` can save it.

    Raises:
        InputError: the ``tflite`` package is missing, or the file is missing, not a TFLite
            file, truncated / corrupt, or not a MobileNetV2 of that layout (one line).
    """
    data, where = _read(path)
    try:
        import tflite
    except ImportError:
        raise InputError(_INSTALL) from None
    try:
        f = _File(tflite, data, where)
        chosen, num_classes, ops = _match(f, width)
        plan = _plan(chosen, num_classes)
        sd = _state_dict(f, plan, ops)
    except SemcomError:
        raise
    except Exception as exc:  # struct.error, IndexError, ValueError... of a bad flatbuffer
        raise InputError(
            one_line(
                f"{where}: truncated or corrupt TFLite file ({type(exc).__name__}: {exc})", 300
            )
        ) from None
    from semcom.models.registry import create_model

    model = create_model("mobilenet-v2", num_classes=num_classes, width=chosen)
    model.load_state_dict(sd, strict=True)
    return model.eval()  # type: ignore[return-value]


def restrict_classes(model: MobileNetV2, rows: list[int]) -> MobileNetV2:
    """A copy of ``model`` whose classifier keeps only output ``rows`` (in that order):
    e.g. the 200 Tiny-ImageNet classes of an ImageNet model, so that its logits index the
    dataset's labels directly (its argmax is the original's argmax among those rows)."""
    if not rows or min(rows) < 0 or max(rows) >= model.num_classes:
        raise InputError(f"class rows must lie in [0, {model.num_classes})")
    out = MobileNetV2(**{**model.config, "num_classes": len(rows)})
    state = model.state_dict()
    idx = torch.tensor(rows)
    state["classifier.weight"] = state["classifier.weight"][idx].clone()
    state["classifier.bias"] = state["classifier.bias"][idx].clone()
    out.load_state_dict(state)
    return out.eval()


def export_mobilenet_v2(
    tflite_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    synsets: str | os.PathLike[str] | None = None,
    classes: str | os.PathLike[str] | None = None,
    input_size: int | None = None,
) -> Path:
    """Convert a MobileNetV2 TFLite file to a semcom checkpoint (safetensors) at ``out_path``.

    The checkpoint loads without any TFLite package:
    ``semcom.models.load_checkpoint(out_path, "mobilenet-v2")`` (and as the judge
    ``classifier=OUT``). Its metadata holds the model name and config, plus
    ``extra.source`` (the TFLite file's name), ``extra.source_sha256`` (its SHA-256) and
    ``extra.converted_by``. Returns the path.

    ``classes`` (a file of class ids, one per line, e.g. Tiny-ImageNet's ``wnids.txt``)
    with ``synsets`` (the model's ids, output ``i + 1`` <-> line ``i`` for 1001 outputs)
    keeps only those classes, in that order (:func:`restrict_classes`). ``input_size``
    (e.g. 224) makes the model resize any image to that size first.

    Raises:
        InputError: as :func:`mobilenet_v2_from_tflite`, or a class the model lacks.
    """
    from semcom.data.classmaps import read_class_list
    from semcom.models.checkpoint import save_checkpoint

    model = mobilenet_v2_from_tflite(tflite_path)
    data, _ = _read(tflite_path)
    digest = hashlib.sha256(data).hexdigest()
    extra = {
        "source": Path(tflite_path).name,
        "source_sha256": digest,
        "converted_by": "semcom.models.tflite_import.mobilenet_v2_from_tflite",
    }
    if classes is not None:
        if synsets is None:
            raise InputError("classes= needs synsets= (the model's class ids)")
        ids = read_class_list(synsets, "synsets")
        if len(ids) == model.num_classes - 1:
            ids = ["background", *ids]
        if len(ids) != model.num_classes:
            raise InputError(f"synsets {synsets}: {len(ids)} ids for {model.num_classes} outputs")
        wanted = read_class_list(classes, "classes")
        where = {w: i for i, w in enumerate(ids)}
        missing = [w for w in wanted if w not in where]
        if missing:
            raise InputError(
                f"classes {classes}: {len(missing)} not in the model, e.g. {missing[0]}"
            )
        model = restrict_classes(model, [where[w] for w in wanted])
        extra["classes"] = Path(classes).name
        extra["classes_sha256"] = hashlib.sha256(Path(classes).read_bytes()).hexdigest()
    if input_size is not None:
        resized = MobileNetV2(**{**model.config, "input_size": int(input_size)})
        resized.load_state_dict(model.state_dict())
        model = resized.eval()
    return save_checkpoint(model, out_path, extra=extra)


def main(argv: list[str] | None = None) -> int:
    """``python -m semcom.models.tflite_import MODEL.tflite OUT.safetensors [...]``."""
    import argparse
    import sys

    p = argparse.ArgumentParser(
        prog="python -m semcom.models.tflite_import",
        description="Convert a MobileNetV2 TFLite file into a semcom torch checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("tflite", help="the MobileNetV2 .tflite file")
    p.add_argument("out", help="the checkpoint to write (.safetensors)")
    p.add_argument("--synsets", default=None, help="the model's class ids, one per line")
    p.add_argument(
        "--classes", default=None, help="keep only these class ids, in this order (a file)"
    )
    p.add_argument(
        "--input-size", type=int, default=None, help="resize every image to this side first"
    )
    args = p.parse_args(argv)
    try:
        out = export_mobilenet_v2(
            args.tflite, args.out, synsets=args.synsets, classes=args.classes,
            input_size=args.input_size,
        )  # fmt: skip
    except SemcomError as e:
        sys.stderr.write(f"semcom: error: {one_line(e)}\n")
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
