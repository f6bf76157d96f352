"""MobileNetV2 (folded batch norm, TF-SAME padding) and its TFLite weight import.

The import tests that always run write small MobileNetV2 TFLite files themselves (with
the ``tflite`` package's flatbuffer builders, random weights; float32 or uint8-quantised
weights) and, when ``ai_edge_litert`` is installed, run the float ones through the TFLite
interpreter. The real ``mobilenet_v2_1.0_224_quant.tflite`` is only used when the shared
models folder is present.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semcom.errors import InputError
from semcom.models import create_model, list_models, load_checkpoint
from semcom.models.mobilenet_v2 import Conv2dSame, MobileNetV2, tf_same_pad
from semcom.models.tflite_import import WIDTHS, _plan, export_mobilenet_v2, mobilenet_v2_from_tflite

pytestmark = pytest.mark.usefixtures("one_thread")

MODELS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "models"
REAL = MODELS / "mobilenet_v2_1.0_224_quant.tflite"


# ----------------------------------------------------------------------------- the model


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (224, 3, 2, (0, 1)),  # out 112: (111*2 + 3) - 224 = 1 -> all of it after
        (112, 3, 2, (0, 1)),
        (7, 3, 2, (1, 1)),  # out 4: (3*2 + 3) - 7 = 2
        (8, 3, 2, (0, 1)),  # out 4: (3*2 + 3) - 8 = 1
        (1, 3, 2, (1, 1)),  # out 1: 3 - 1 = 2
        (2, 3, 2, (0, 1)),  # out 1: 3 - 2 = 1
        (5, 3, 1, (1, 1)),  # stride 1: k - 1 = 2 always
        (6, 3, 1, (1, 1)),
        (6, 1, 2, (0, 0)),  # out 3: 2*2 + 1 - 6 < 0 -> none
        (4, 5, 2, (1, 2)),  # out 2: 2 + 5 - 4 = 3
        (9, 4, 3, (0, 1)),  # out 3: (2*3 + 4) - 9 = 1
    ],
)
def test_tf_same_pad_by_hand(size: int, kernel: int, stride: int, expected: tuple) -> None:
    assert tf_same_pad(size, kernel, stride) == expected


@pytest.mark.parametrize("size", [8, 7])
def test_conv2d_same_pads_like_tensorflow(size: int) -> None:
    # A 3x3 stride-2 kernel that only has its top-left tap: TF SAME output (i, j) is the
    # padded input at (2i, 2j), i.e. x[2i - top, 2j - left] (0 in the padding).
    conv = Conv2dSame(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1
        conv.bias.zero_()
    x = torch.arange(1.0, size * size + 1).reshape(1, 1, size, size)
    y = conv(x)[0, 0]
    n = math.ceil(size / 2)
    assert y.shape == (n, n)
    if size % 2 == 0:  # pad (0, 1): no row / column before
        assert torch.equal(y, x[0, 0, ::2, ::2])
    else:  # pad (1, 1): row / column 0 of the output reads the padding
        want = torch.zeros(n, n)
        want[1:, 1:] = x[0, 0, 1::2, 1::2]
        assert torch.equal(y, want)
    # torch's symmetric padding=1 differs on even sizes (the reason for Conv2dSame)
    sym = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)[0, 0]
    assert torch.equal(sym, y) == (size % 2 == 1)


def test_conv2d_same_stride1_is_symmetric() -> None:
    torch.manual_seed(0)
    conv = Conv2dSame(4, 4, 3, stride=1, groups=4)
    x = torch.randn(2, 4, 9, 6)
    ref = F.conv2d(x, conv.weight, conv.bias, padding=1, groups=4)
    torch.testing.assert_close(conv(x), ref)


@pytest.mark.parametrize("hw", [(64, 64), (45, 33), (1, 1)])
def test_shapes(hw: tuple[int, int]) -> None:
    m = MobileNetV2().eval()
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        logits, feats = m(x), m.features(x)
    assert logits.shape == (2, 1001) and logits.dtype == torch.float32
    assert feats.shape == (2, 1280)
    assert m.predict(x).shape == (2,)


def test_widths_and_registry() -> None:
    assert "mobilenet-v2" in list_models()
    m = create_model("mobilenet-v2", num_classes=10, width=0.5, dropout=0.2)
    assert isinstance(m, MobileNetV2) and m.semcom_name == "mobilenet-v2"
    assert m.config == {"num_classes": 10, "width": 0.5, "dropout": 0.2, "input_size": None}
    assert m.stem.weight.shape == (16, 3, 3, 3) and m.blocks[-1].project.weight.shape[0] == 160
    assert m.features(torch.rand(1, 3, 32, 32)).shape == (1, 1280)
    assert create_model("mobilenet-v2", width=1.4).head.weight.shape == (1792, 448, 1, 1)
    n = sum(p.numel() for p in create_model("mobilenet-v2").parameters())
    assert n == 3_489_097  # = the 1.0/224 TFLite file's weights + biases


def test_state_dict_keys_are_stable() -> None:
    sd = MobileNetV2().state_dict()
    assert len(sd) == 2 * (1 + 16 * 3 + 2 + 1 + 1)
    keys = list(sd)
    assert keys[:6] == [
        "stem.weight", "stem.bias", "blocks.0.depthwise.weight", "blocks.0.depthwise.bias",
        "blocks.0.project.weight", "blocks.0.project.bias",
    ]  # fmt: skip
    assert keys[-4:] == ["head.weight", "head.bias", "classifier.weight", "classifier.bias"]
    assert "blocks.0.expand.weight" not in sd
    shapes = {
        "stem.weight": (32, 3, 3, 3),
        "blocks.1.expand.weight": (96, 16, 1, 1),
        "blocks.1.depthwise.weight": (96, 1, 3, 3),
        "blocks.1.project.weight": (24, 96, 1, 1),
        "blocks.16.project.weight": (320, 960, 1, 1),
        "head.weight": (1280, 320, 1, 1),
        "classifier.weight": (1001, 1280),
    }
    for k, s in shapes.items():
        assert tuple(sd[k].shape) == s, k
    assert all(f"blocks.{i}.expand.bias" in sd for i in range(1, 17))


@pytest.mark.parametrize("width", WIDTHS)
def test_import_plan_matches_the_model(width: float) -> None:
    sd = MobileNetV2(num_classes=7, width=width).state_dict()
    plan = _plan(width, 7)
    assert {f"{layer.key}.{p}" for layer in plan for p in ("weight", "bias")} == set(sd)
    assert all(tuple(sd[f"{layer.key}.weight"].shape) == layer.weight_shape for layer in plan)


def test_bad_config_and_input() -> None:
    for kwargs in ({"num_classes": 0}, {"width": 0}, {"width": float("nan")}, {"dropout": 1}):
        with pytest.raises(InputError):
            create_model("mobilenet-v2", **kwargs)
    m = MobileNetV2(num_classes=3, width=0.35)
    with pytest.raises(InputError):
        m(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(InputError):
        m(torch.zeros(1, 1, 16, 16))


# ------------------------------------------------------- writing TFLite files for the tests


def _fb(name: str):
    """A module of the ``tflite`` package (its flatbuffer builder functions)."""
    return importlib.import_module(f"tflite.{name}")


def _tflite_bytes(
    model: MobileNetV2, hw: tuple[int, int], quantize: str | None = None, seed: int = 0
) -> tuple[bytes, dict[str, torch.Tensor]]:
    """``model`` as a TFLite flatbuffer of input ``(1, H, W, 3)`` float32, TF-slim layout.

    ``quantize``: ``None`` (float32 weights), ``"tensor"`` (uint8, per-tensor scale and
    zero point) or ``"channel"`` (int8, per-channel scales); biases then int32. Returns the
    bytes and the state dict the file encodes (the weights as dequantised).
    """
    flatbuffers = pytest.importorskip("flatbuffers")
    tfl = pytest.importorskip("tflite")
    rng = np.random.default_rng(seed)
    b = flatbuffers.Builder(1 << 20)
    buffers, tensors, ops, codes = [b""], [], [], []
    encoded: dict[str, torch.Tensor] = {}

    def vec_i32(values) -> int:
        return b.CreateNumpyVector(np.asarray(values, dtype=np.int32))

    def quant(scale, zp, dim: int) -> int:
        s = b.CreateNumpyVector(np.asarray(scale, dtype=np.float32))
        z = b.CreateNumpyVector(np.asarray(zp, dtype=np.int64))
        Q = _fb("QuantizationParameters")
        Q.QuantizationParametersStart(b)
        Q.QuantizationParametersAddScale(b, s)
        Q.QuantizationParametersAddZeroPoint(b, z)
        Q.QuantizationParametersAddQuantizedDimension(b, dim)
        return Q.QuantizationParametersEnd(b)

    def tensor(shape, ttype: int = 0, data: bytes | None = None, q: int | None = None) -> int:
        if data is not None:
            buffers.append(data)
        # offsets are made now, the table later (the builder nests nothing)
        tensors.append((tuple(shape), ttype, len(buffers) - 1 if data is not None else 0, q))
        return len(tensors) - 1

    def const(arr: np.ndarray, kind: str, dim: int) -> tuple[int, np.ndarray]:
        """Constant tensor of float ``arr``; returns its index and the dequantised values."""
        if quantize is None or kind == "shape":
            return tensor(arr.shape, 0, arr.astype(np.float32).tobytes()), arr
        if kind == "bias":
            scale = rng.uniform(1e-4, 1e-3)
            q = np.round(arr / scale).astype(np.int32)
            return tensor(arr.shape, 2, q.tobytes(), quant([scale], [0], 0)), q * scale
        if quantize == "tensor":
            lo, hi = min(arr.min(), 0), max(arr.max(), 1e-3)
            scale = (hi - lo) / 255
            zp = int(np.clip(np.round(-lo / scale), 0, 255))
            q = np.clip(np.round(arr / scale) + zp, 0, 255).astype(np.uint8)
            return tensor(arr.shape, 3, q.tobytes(), quant([scale], [zp], 0)), (
                q.astype(np.float64) - zp
            ) * scale
        axes = tuple(i for i in range(arr.ndim) if i != dim)
        scale = np.maximum(np.abs(arr).max(axis=axes), 1e-6) / 127
        shape = [1] * arr.ndim
        shape[dim] = -1
        q = np.clip(np.round(arr / scale.reshape(shape)), -127, 127).astype(np.int8)
        t = tensor(arr.shape, 9, q.tobytes(), quant(scale, np.zeros(len(scale)), dim))
        return t, q * scale.reshape(shape)

    def opcode(code: int) -> int:
        if code not in codes:
            codes.append(code)
        return codes.index(code)

    def options(kind: str, **kw) -> tuple[int, int]:
        M = _fb(kind)
        getattr(M, f"{kind}Start")(b)
        for k, v in kw.items():
            getattr(M, f"{kind}Add{k}")(b, v)
        return getattr(tfl.BuiltinOptions, kind), getattr(M, f"{kind}End")(b)

    def op(code: int, ins, outs, opts: tuple[int, int] | None) -> None:
        ops.append((opcode(code), list(ins), list(outs), opts))

    BO = tfl.BuiltinOperator
    same, valid, relu6, none = 0, 1, 3, 0
    h, w = hw
    cur = tensor((1, h, w, 3))
    inp = cur

    def conv(key: str, weight: torch.Tensor, bias: torch.Tensor, stride: int, act: int) -> None:
        nonlocal cur, h, w
        wt = weight.detach().double().numpy()
        depthwise = key.endswith("depthwise")
        if depthwise:
            tw, qdim = wt.transpose(1, 2, 3, 0), 3  # (C,1,H,W) -> (1,H,W,C)
        else:
            tw, qdim = wt.transpose(0, 2, 3, 1), 0  # OIHW -> OHWI
        wi, wq = const(tw, "weight", qdim)
        bi, bq = const(bias.detach().double().numpy(), "bias", 0)
        encoded[f"{key}.weight"] = torch.from_numpy(
            (wq.transpose(3, 0, 1, 2) if depthwise else wq.transpose(0, 3, 1, 2)).copy()
        ).float()
        encoded[f"{key}.bias"] = torch.from_numpy(np.asarray(bq)).float()
        h, w = -(-h // stride), -(-w // stride)
        out = tensor((1, h, w, tw.shape[3] if depthwise else tw.shape[0]))
        common = dict(Padding=same, StrideW=stride, StrideH=stride, FusedActivationFunction=act)
        if depthwise:
            opts = options("DepthwiseConv2DOptions", DepthMultiplier=1, **common)
            op(BO.DEPTHWISE_CONV_2D, [cur, wi, bi], [out], opts)
        else:
            op(BO.CONV_2D, [cur, wi, bi], [out], options("Conv2DOptions", **common))
        cur = out

    conv("stem", model.stem.weight, model.stem.bias, 2, relu6)
    for i, blk in enumerate(model.blocks):
        start = cur
        if hasattr(blk, "expand"):
            conv(f"blocks.{i}.expand", blk.expand.weight, blk.expand.bias, 1, relu6)
        conv(f"blocks.{i}.depthwise", blk.depthwise.weight, blk.depthwise.bias, blk.stride, relu6)
        conv(f"blocks.{i}.project", blk.project.weight, blk.project.bias, 1, none)
        if blk.use_residual:
            out = tensor((1, h, w, blk.out_channels))
            op(BO.ADD, [cur, start], [out], options("AddOptions", FusedActivationFunction=none))
            cur = out
    conv("head", model.head.weight, model.head.bias, 1, relu6)
    pooled = tensor((1, 1, 1, model.head_channels))
    pool = dict(Padding=valid, StrideW=1, StrideH=1, FilterWidth=w, FilterHeight=h)
    op(BO.AVERAGE_POOL_2D, [cur], [pooled], options("Pool2DOptions", **pool))
    cur, h, w = pooled, 1, 1
    nc = model.num_classes
    conv("classifier", model.classifier.weight[:, :, None, None], model.classifier.bias, 1, none)
    encoded["classifier.weight"] = encoded["classifier.weight"][:, :, 0, 0]
    shape = tensor((2,), 2, np.array([1, nc], np.int32).tobytes())
    logits = tensor((1, nc))
    op(BO.RESHAPE, [cur, shape], [logits], None)
    probs = tensor((1, nc))
    op(BO.SOFTMAX, [logits], [probs], options("SoftmaxOptions", Beta=1.0))

    # tables, innermost first
    B = _fb("Buffer")
    buf_offs = []
    for data in buffers:
        vec = None
        if data:
            b.StartVector(1, len(data), 16)
            b.head -= len(data)
            b.Bytes[b.head : b.head + len(data)] = data
            vec = b.EndVector()
        B.BufferStart(b)
        if vec is not None:
            B.BufferAddData(b, vec)
        buf_offs.append(B.BufferEnd(b))
    T = _fb("Tensor")
    t_offs = []
    for i, (shp, ttype, buf, q) in enumerate(tensors):
        name, sv = b.CreateString(f"t{i}"), vec_i32(shp)
        T.TensorStart(b)
        T.TensorAddShape(b, sv)
        T.TensorAddType(b, ttype)
        T.TensorAddBuffer(b, buf)
        T.TensorAddName(b, name)
        if q is not None:
            T.TensorAddQuantization(b, q)
        t_offs.append(T.TensorEnd(b))
    O = _fb("Operator")
    o_offs = []
    for code, ins, outs, opts in ops:
        iv, ov = vec_i32(ins), vec_i32(outs)
        O.OperatorStart(b)
        O.OperatorAddOpcodeIndex(b, code)
        O.OperatorAddInputs(b, iv)
        O.OperatorAddOutputs(b, ov)
        if opts is not None:
            O.OperatorAddBuiltinOptionsType(b, opts[0])
            O.OperatorAddBuiltinOptions(b, opts[1])
        o_offs.append(O.OperatorEnd(b))

    def table_vec(offs: list[int]) -> int:
        b.StartVector(4, len(offs), 4)
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    S = _fb("SubGraph")
    tv, ov, iv, outv = (
        table_vec(t_offs),
        table_vec(o_offs),
        vec_i32([inp]),
        vec_i32([probs, logits]),
    )
    S.SubGraphStart(b)
    S.SubGraphAddTensors(b, tv)
    S.SubGraphAddInputs(b, iv)
    S.SubGraphAddOutputs(b, outv)
    S.SubGraphAddOperators(b, ov)
    graph = S.SubGraphEnd(b)
    C = _fb("OperatorCode")
    c_offs = []
    for code in codes:
        C.OperatorCodeStart(b)
        C.OperatorCodeAddDeprecatedBuiltinCode(b, code)
        C.OperatorCodeAddBuiltinCode(b, code)
        C.OperatorCodeAddVersion(b, 1)
        c_offs.append(C.OperatorCodeEnd(b))
    from tests.tflite_models import finish_model

    return finish_model(b, c_offs, graph, buf_offs, "t"), encoded


@pytest.fixture(scope="module")
def small() -> MobileNetV2:
    torch.manual_seed(0)
    m = MobileNetV2(num_classes=5, width=0.35).eval()
    with torch.no_grad():  # non-zero biases, so a lost bias shows
        for p in m.parameters():
            if p.ndim == 1:
                p.normal_(0, 0.1)
    return m


@pytest.fixture(scope="module")
def small_file(small: MobileNetV2, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data, _ = _tflite_bytes(small, (40, 40))
    path = tmp_path_factory.mktemp("mnv2") / "small.tflite"
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- the import


@pytest.mark.parametrize("quantize", [None, "tensor", "channel"])
def test_import_recovers_the_weights(
    small: MobileNetV2, tmp_path: Path, quantize: str | None
) -> None:
    data, encoded = _tflite_bytes(small, (40, 40), quantize)
    (tmp_path / "m.tflite").write_bytes(data)
    m = mobilenet_v2_from_tflite(tmp_path / "m.tflite")
    assert (
        m.config == {"num_classes": 5, "width": 0.35, "dropout": 0.0, "input_size": None}
        and not m.training
    )
    sd = m.state_dict()
    assert set(sd) == set(encoded)
    for k, v in encoded.items():
        torch.testing.assert_close(sd[k], v, rtol=1e-6, atol=1e-7, msg=k)
    if quantize is None:  # float32 weights: exactly the model's
        for k, v in small.state_dict().items():
            assert torch.equal(sd[k], v), k


@pytest.mark.parametrize("hw", [(40, 40), (37, 29)])
def test_import_matches_the_tflite_interpreter(
    small: MobileNetV2, tmp_path: Path, hw: tuple[int, int]
) -> None:
    interpreter = pytest.importorskip("ai_edge_litert.interpreter")
    data, _ = _tflite_bytes(small, hw)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    it = interpreter.Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    x = np.random.default_rng(1).random((1, *hw, 3), dtype=np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    probs, logits = (it.get_tensor(d["index"])[0] for d in it.get_output_details())
    m = mobilenet_v2_from_tflite(path)
    with torch.no_grad():
        # the TFLite graph takes [-1, 1] input; the torch model maps [0, 1] -> [-1, 1]
        got = m((torch.from_numpy(x).permute(0, 3, 1, 2) + 1) / 2)[0]
    assert logits.std() > 0.1  # not a degenerate net
    np.testing.assert_allclose(got.numpy(), logits, rtol=1e-4, atol=1e-4 * logits.std())
    np.testing.assert_allclose(got.softmax(0).numpy(), probs, rtol=1e-4, atol=1e-6)


def test_export_round_trip(small: MobileNetV2, small_file: Path, tmp_path: Path) -> None:
    out = export_mobilenet_v2(small_file, tmp_path / "mnv2.safetensors")
    loaded, meta = load_checkpoint(out, "mobilenet-v2")
    assert isinstance(loaded, MobileNetV2) and meta.name == "mobilenet-v2"
    assert meta.config == {"num_classes": 5, "width": 0.35, "dropout": 0.0, "input_size": None}
    assert meta.extra["source_sha256"] == hashlib.sha256(small_file.read_bytes()).hexdigest()
    assert meta.extra["source"] == "small.tflite"
    for k, v in small.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_import_bad_files(small_file: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        mobilenet_v2_from_tflite(tmp_path / "missing.tflite")
    with pytest.raises(InputError, match="not a file"):
        mobilenet_v2_from_tflite(tmp_path)
    for name, data in (("empty", b""), ("png", b"\x89PNG\r\n\x1a\n" + bytes(64))):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match="not a TFLite file"):
            mobilenet_v2_from_tflite(tmp_path / name)
    data = small_file.read_bytes()
    for cut in (8, 12, 64, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 1):
        (tmp_path / "cut.tflite").write_bytes(data[:cut])
        with pytest.raises(InputError) as ei:
            mobilenet_v2_from_tflite(tmp_path / "cut.tflite")
        assert "\n" not in str(ei.value) and "cut.tflite" in str(ei.value)


def test_import_corrupt_bytes_never_crash(small_file: Path, tmp_path: Path) -> None:
    # Each corruption either still loads or is one InputError; nothing else escapes.
    data = small_file.read_bytes()
    rng = np.random.default_rng(0)
    path = tmp_path / "bad.tflite"
    for _ in range(40):
        bad = bytearray(data)
        at = int(rng.integers(8, min(len(bad), 4096)))  # the tables, not the weights
        bad[at : at + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(bad))
        try:
            mobilenet_v2_from_tflite(path)
        except InputError as exc:
            assert "\n" not in str(exc)


def test_import_rejects_other_layouts(small: MobileNetV2, tmp_path: Path) -> None:
    # A MobileNetV2 whose residual ADDs are missing: the graph is not that layout.
    class NoResidual(MobileNetV2):
        pass

    m = NoResidual(num_classes=5, width=0.35)
    for blk in m.blocks:
        blk.use_residual = False
    data, _ = _tflite_bytes(m, (32, 32))
    (tmp_path / "nores.tflite").write_bytes(data)
    with pytest.raises(InputError, match="not a MobileNetV2 of the expected layout"):
        mobilenet_v2_from_tflite(tmp_path / "nores.tflite")
    with pytest.raises(InputError, match="width 0.5"):
        data, _ = _tflite_bytes(small, (32, 32))
        (tmp_path / "w.tflite").write_bytes(data)
        mobilenet_v2_from_tflite(tmp_path / "w.tflite", width=0.5)


def test_missing_tflite_package_is_an_input_error(
    small_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tflite", None)
    with pytest.raises(InputError, match=r"pip install 'semcom\[litert\]'"):
        mobilenet_v2_from_tflite(small_file)


# ------------------------------------------------------------------- the real TFLite file


#: Tolerance on |softmax(torch) - TFLite's uint8 softmax|, per probability. The port is
#: a float model while TFLite requantises every activation to uint8: single rounding
#: flips grow through the net (a torch copy that fake-quantises every activation like
#: TFLite still disagrees on ~6% of argmaxes), so outputs agree to quantisation noise only.
#: Measured on the 8 images of the test: max |diff| 0.068 (smooth random images, seeds 0-5:
#: 0.047-0.099) and 0.051 (photo patches); on 5000 Tiny-ImageNet val images: per-image
#: max |diff| mean 0.042, p99 0.16, max 0.32, argmax agreement 0.90. A subtly broken
#: port (depthwise kernels transposed, H <-> W) gives 0.21-0.47 on the random sets and up
#: to 0.77 on the photos (and no agreeing photo argmax): 0.15 separates the two.
PROB_TOL = 0.15
PHOTOS = [MODELS / "lpips_ex_ref.png", MODELS / "lpips_ex_p1.png"]


@pytest.mark.skipif(
    not all(p.is_file() for p in [REAL, *PHOTOS]), reason=f"shared model files absent: {MODELS}"
)
def test_real_weights_against_the_interpreter() -> None:
    interpreter = pytest.importorskip("ai_edge_litert.interpreter")
    from PIL import Image

    m = mobilenet_v2_from_tflite(REAL)
    assert m.config == {"num_classes": 1001, "width": 1.0, "dropout": 0.0, "input_size": None}
    it = interpreter.Interpreter(model_path=str(REAL), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    # 4 smooth random images (14x14 noise, upsampled: white noise makes both nets
    # unsure) and 4 photo patches (two 64x64 LPIPS examples and their mirror images),
    # on which the TFLite net is confident (top probability 0.26-0.77).
    rng = np.random.default_rng(0)
    noise = torch.from_numpy(rng.random((4, 3, 14, 14), dtype=np.float32))
    smooth = F.interpolate(noise, size=(224, 224), mode="bicubic").clamp(0, 1) * 255
    photos = []
    for path in PHOTOS:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
        for img in (rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)):
            photos.append(np.asarray(img.resize((224, 224), Image.BILINEAR)))
    x = torch.cat(
        [smooth.round().to(torch.uint8), torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2)]
    )
    with torch.no_grad():
        probs = m(x.float() / 255).softmax(1).numpy()
    tfl = np.zeros_like(probs)
    for i in range(len(x)):
        it.set_tensor(inp["index"], np.ascontiguousarray(x[i].permute(1, 2, 0).numpy())[None])
        it.invoke()
        tfl[i] = it.get_tensor(out["index"])[0] / 256
    diff = np.abs(probs - tfl).max(axis=1)
    assert diff.max() < PROB_TOL, diff
    agree = probs.argmax(1) == tfl.argmax(1)
    assert agree.sum() >= 7, (probs.argmax(1), tfl.argmax(1))


def test_export_keeps_chosen_classes_and_resizes(
    small: MobileNetV2, small_file: Path, tmp_path: Path
) -> None:
    """classes= keeps those outputs in that order (argmax among them is unchanged);
    input_size= makes a 16 x 16 image be seen at 40 x 40."""
    from semcom.models.tflite_import import main

    (tmp_path / "syn.txt").write_text("\n".join(f"w{i}" for i in range(4)))  # 5 outputs: 0 bg
    (tmp_path / "keep.txt").write_text("w3\nw0\n")
    out = export_mobilenet_v2(
        small_file, tmp_path / "r.safetensors", synsets=tmp_path / "syn.txt",
        classes=tmp_path / "keep.txt", input_size=40,
    )  # fmt: skip
    loaded, meta = load_checkpoint(out, "mobilenet-v2")
    assert meta.config["num_classes"] == 2 and meta.config["input_size"] == 40
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        full = small(F.interpolate(x, size=(40, 40), mode="bilinear", align_corners=False))
        got = loaded(x)
    torch.testing.assert_close(got, full[:, [4, 1]], rtol=1e-4, atol=1e-4)
    (tmp_path / "bad.txt").write_text("w9\n")
    args = [
        str(small_file),
        str(tmp_path / "x.safetensors"),
        "--synsets",
        str(tmp_path / "syn.txt"),
    ]
    assert main([*args, "--classes", str(tmp_path / "bad.txt")]) == 2
    with pytest.raises(InputError, match="needs synsets"):
        export_mobilenet_v2(small_file, tmp_path / "y.safetensors", classes=tmp_path / "keep.txt")


def test_inference_in_chunks_equals_one_pass() -> None:
    torch.manual_seed(0)
    m = MobileNetV2(num_classes=7, width=0.35).eval()
    x = torch.rand(19, 3, 24, 24)
    with torch.no_grad():
        chunked = m(x)
    with torch.enable_grad():
        whole = m(x).detach()
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
