"""``espnet-camvid``: ESPNet (Mehta et al., ECCV 2018), written from the paper and the
authors' CamVid checkpoint, so that ``espnet_p2_q8_camvid.pth`` (MIT) loads strictly.

Paper: "ESPNet: Efficient Spatial Pyramid of Dilated Convolutions for Semantic
Segmentation". This is the full **ESPNet** (not ESPNet-A/B/C): the ESPNet-C encoder with
``p`` ESP modules at 1/4 scale and ``q`` at 1/8 scale, plus the light decoder that
upsamples with 2x2 stride-2 deconvolutions and merges the encoder levels.

Input / output
--------------
``forward(x)``: ``x`` float32 ``(N, 3, H, W)``, **RGB in [0, 1]**, ``H`` and ``W``
multiples of 8 (``semcom.errors.InputError`` otherwise). Returns logits float32
``(N, C, H, W)``. For the CamVid checkpoint ``C = 12``: the 11 CamVid classes (0 sky,
1 building, 2 pole, 3 road, 4 pavement, 5 tree, 6 sign/symbol, 7 fence, 8 car,
9 pedestrian, 10 bicyclist) **plus channel 11 = void**, which the authors trained as a
class of its own (every classifier in the file has 12 outputs). Metrics ignore void
*labels*; a pixel predicted void counts as a miss (or take the argmax over ``[:11]``).

Input normalisation (done inside ``forward``)
---------------------------------------------
The network sees ``(img_bgr_255 - MEAN_BGR) / STD_BGR / 255``: the authors' loaders read
images with OpenCV (BGR, 0-255), subtract a per-dataset mean and divide by a per-dataset
std (both on the 0-255 scale), and their ``ToTensor`` divides by 255 once more.
``MEAN_BGR`` / ``STD_BGR`` below are those statistics recomputed the authors' way on the
367 CamVid *train* images (mean of the per-image channel means, mean of the per-image
channel stds, BGR order). How it was found: the running statistics of ``encoder.b1.bn``
channels 16-18 (the 3x3-average-pooled raw input) have mean ~ -2e-4 and std ~ 0.0040 ~
1/255, i.e. a mean/std-normalised input divided by 255 again; candidates (RGB vs BGR,
[0, 1], [0, 255], mean/std with and without the extra /255) were then scored on the 101
CamVid val images (``benchmarks/eval_espnet_camvid.py --norm all``), void labels
ignored, argmax over all 12 channels (a pixel predicted void is a miss)::

    norm                          mIoU    pixel acc
    BGR (255x - mean)/std/255     0.701   0.927      <- chosen (built in)
    RGB (255x - mean)/std/255     0.304   0.528
    BGR (255x - mean)/std         0.057   0.100
    RGB (255x - mean)/std         0.013   0.019
    BGR x/255                     0.118   0.390
    RGB x/255                     0.047   0.319
    BGR x in [0, 1]               0.030   0.056
    RGB x in [0, 1]               0.018   0.034
    BGR 255x                      0.031   0.057
    RGB 255x                      0.019   0.033
    RGB ImageNet mean/std         0.014   0.038

(The chosen one with the argmax over the 11 real classes only: mIoU 0.694, pixel
accuracy 0.933. The authors report 55.6% mIoU on the CamVid *test* split, not held here.)

Layout (``p = 2``, ``q = 8``; ``n = cout // 5``, ``n1 = cout - 4n``; batch norm
``eps = 1e-3``, followed by a per-channel PReLU except in ``br``; every conv and
deconv bias-free)::

    encoder.level1     CBR 3x3 s2, 3 -> 16                                 (N, 16,  H/2)
    sample1 / sample2  avg-pool 3x3 s2 p1 of the image, once / twice       (N, 3, H/2 | H/4)
    encoder.b1         BN+PReLU of cat[level1, sample1]                    (N, 19,  H/2)
    encoder.level2_0   strided ESP (DownSamplerB), 19 -> 64                (N, 64,  H/4)
    encoder.level2.i   p x residual ESP (64 -> 64), i = 0..p-1             (N, 64,  H/4)
    encoder.b2         BN+PReLU of cat[level2, level2_0, sample2]          (N, 131, H/4)
    encoder.level3_0   strided ESP, 131 -> 128                             (N, 128, H/8)
    encoder.level3.i   q x residual ESP (128 -> 128), i = 0..q-1           (N, 128, H/8)
    encoder.b3         BN+PReLU of cat[level3_0, level3]                   (N, 256, H/8)
    encoder.classifier 1x1 conv, 256 -> C                                  (N, C,   H/8)
    br, up_l3          BN, then deconv 2x2 s2, C -> C                      (N, C,   H/4)
    level3_C           1x1 conv of b2's output, 131 -> C                   (N, C,   H/4)
    combine_l2_l3      BN+PReLU(2C), ESP 2C -> C (no residual) of cat[level3_C, up_l3]
    up_l2              deconv 2x2 s2 C -> C, BN+PReLU                      (N, C,   H/2)
    conv               CBR 3x3 of cat[up_l2, b1's output], 19 + C -> C     (N, C,   H/2)
    classifier         deconv 2x2 s2, C -> C                               (N, C,   H)

An ESP module: ``c1`` (1x1 conv, or 3x3 stride 2 when strided) reduces to ``n`` channels;
``d1, d2, d4, d8, d16`` are 3x3 convs with dilation 1, 2, 4, 8, 16 (``d1`` gives ``n1``
channels, the others ``n``); hierarchical feature fusion sums them cumulatively
(``d2, d2+d4, d2+d4+d8, d2+d4+d8+d16``), concatenates ``[d1, ...]``, adds the input when
residual, then BN + PReLU.

State-dict keys are the authors' names (``sacmehta/ESPNet``, ``Model.py``), e.g.
``encoder.level1.conv.weight``, ``encoder.level1.bn.*``, ``encoder.level1.act.weight``
(PReLU), ``encoder.level2_0.{c1,d1,d2,d4,d8,d16}.conv.weight``, ``encoder.level2_0.bn.*``
and ``.act.weight``, ``encoder.level2.{i}.{c1,...,d16}.conv.weight``,
``encoder.level2.{i}.bn.bn.*`` / ``.bn.act.weight``, ``encoder.b{1,2,3}.{bn,act}.*``,
``encoder.classifier.conv.weight``, ``level3_C.conv.weight``, ``br.*``, ``conv.{conv,bn,act}.*``,
``up_l3.0.weight``, ``combine_l2_l3.{0,1}.*``, ``up_l2.0.weight``, ``up_l2.1.*``,
``classifier.weight``: 189 tensors for p=2, q=8. The normalisation constants are
non-persistent buffers (not in the state dict).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from semcom.errors import InputError, one_line
from semcom.models.registry import register_model

__all__ = ["ESPNet", "MEAN_BGR", "STD_BGR", "load_espnet"]

#: Per-channel mean / std of the CamVid train images, 0-255 scale, **B, G, R order**,
#: computed as the authors' loader does (average over images of per-image mean / std).
MEAN_BGR = (110.3310, 108.4089, 105.0332)
STD_BGR = (72.1257, 72.6907, 69.9043)

_BN_EPS = 1e-3
_NBT = "num_batches_tracked"


class _C(nn.Module):
    """Bias-free conv, 'same' padding (dilated when ``d > 1``); key ``conv.weight``."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, d: int = 1) -> None:
        super().__init__()
        pad = ((k - 1) // 2) * d
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=d, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _BR(nn.Module):
    """Batch norm + PReLU; keys ``bn.*``, ``act.weight``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(c, eps=_BN_EPS)
        self.act = nn.PReLU(c)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(x))


class _CBR(nn.Module):
    """Conv + batch norm + PReLU; keys ``conv.weight``, ``bn.*``, ``act.weight``."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.act = nn.PReLU(cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class _ESPBranches(nn.Module):
    """The reduce + split + transform + hierarchical-feature-fusion part of an ESP module."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        n = cout // 5
        n1 = cout - 4 * n
        if n < 1:
            raise InputError(f"an ESP module needs at least 5 output channels, got {cout}")
        self.c1 = _C(cin, n, 3 if stride == 2 else 1, stride=stride)
        self.d1 = _C(n, n1, 3, d=1)
        self.d2 = _C(n, n, 3, d=2)
        self.d4 = _C(n, n, 3, d=4)
        self.d8 = _C(n, n, 3, d=8)
        self.d16 = _C(n, n, 3, d=16)

    def fuse(self, x: Tensor) -> Tensor:
        r = self.c1(x)
        add1 = self.d2(r)
        add2 = add1 + self.d4(r)
        add3 = add2 + self.d8(r)
        add4 = add3 + self.d16(r)
        return torch.cat([self.d1(r), add1, add2, add3, add4], 1)


class _ESPDown(_ESPBranches):
    """Strided ESP module (the authors' ``DownSamplerB``): (N, cin, H, W) -> (N, cout, H/2, W/2).
    Keys ``c1, ..., d16``, ``bn.*``, ``act.weight``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, stride=2)
        self.bn = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.act = nn.PReLU(cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.fuse(x)))


class _ESP(_ESPBranches):
    """ESP module (the authors' ``DilatedParllelResidualBlockB``), residual when ``add``.
    Keys ``c1, ..., d16``, ``bn.bn.*``, ``bn.act.weight``."""

    def __init__(self, cin: int, cout: int, add: bool = True) -> None:
        super().__init__(cin, cout, stride=1)
        if add and cin != cout:
            raise InputError(f"a residual ESP module needs cin == cout, got {cin}, {cout}")
        self.add = add
        self.bn = _BR(cout)

    def forward(self, x: Tensor) -> Tensor:
        out = self.fuse(x)
        if self.add:
            out = out + x
        return self.bn(out)


class _InputProjection(nn.Module):
    """``times`` x (3x3 average pool, stride 2, padding 1) of the image (no parameters)."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.pool = nn.ModuleList([nn.AvgPool2d(3, stride=2, padding=1) for _ in range(times)])

    def forward(self, x: Tensor) -> Tensor:
        for pool in self.pool:
            x = pool(x)
        return x


class _Encoder(nn.Module):
    """ESPNet-C (the authors' ``ESPNet_Encoder``); the attribute names are the key prefixes."""

    def __init__(self, classes: int, p: int, q: int) -> None:
        super().__init__()
        self.level1 = _CBR(3, 16, 3, stride=2)
        self.sample1 = _InputProjection(1)
        self.sample2 = _InputProjection(2)
        self.b1 = _BR(16 + 3)
        self.level2_0 = _ESPDown(16 + 3, 64)
        self.level2 = nn.ModuleList([_ESP(64, 64) for _ in range(p)])
        self.b2 = _BR(128 + 3)
        self.level3_0 = _ESPDown(128 + 3, 128)
        self.level3 = nn.ModuleList([_ESP(128, 128) for _ in range(q)])
        self.b3 = _BR(256)
        self.classifier = _C(256, classes, 1)


def _deconv(c: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c, c, 2, stride=2, padding=0, output_padding=0, bias=False)


def _check_int(name: str, v: object, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise InputError(f"{name} must be an int >= {lo}, got {v!r}")
    return v


@register_model("espnet-camvid")
class ESPNet(nn.Module):
    """ESPNet (p ESP modules at 1/4 scale, q at 1/8, deconvolution decoder); see the
    module docstring for the layout, the key names and the input normalisation.

    Args:
        num_classes: output channels ``C`` (12 for the CamVid checkpoint: 11 classes + void;
            at least 5, since the decoder's ESP module splits ``C`` channels five ways).
        p: ESP modules at 1/4 resolution (the paper's alpha_2; 2 for the checkpoint).
        q: ESP modules at 1/8 resolution (the paper's alpha_3; 8 for the checkpoint).
    """

    task = "segment"
    #: ``H`` and ``W`` must be multiples of this.
    multiple = 8

    def __init__(self, num_classes: int = 12, p: int = 2, q: int = 8) -> None:
        super().__init__()
        c = _check_int("num_classes", num_classes, 5)  # the decoder's ESP module splits C by 5
        p = _check_int("p", p, 1)
        q = _check_int("q", q, 1)
        self.num_classes = c
        self.config: dict = {"num_classes": c, "p": p, "q": q}
        self.register_buffer(
            "mean_bgr", torch.tensor(MEAN_BGR).view(1, 3, 1, 1) / 255.0, persistent=False
        )
        self.register_buffer(
            "std_bgr", torch.tensor(STD_BGR).view(1, 3, 1, 1) / 255.0, persistent=False
        )
        self.encoder = _Encoder(c, p, q)
        self.level3_C = _C(128 + 3, c, 1)
        self.br = nn.BatchNorm2d(c, eps=_BN_EPS)
        self.conv = _CBR(19 + c, c, 3)
        self.up_l3 = nn.Sequential(_deconv(c))
        self.combine_l2_l3 = nn.Sequential(_BR(2 * c), _ESP(2 * c, c, add=False))
        self.up_l2 = nn.Sequential(_deconv(c), _BR(c))
        self.classifier = _deconv(c)

    def check_input(self, x: Tensor) -> None:
        """``InputError`` unless ``x`` is a float ``(N, 3, H, W)`` batch, H, W multiples of 8."""
        if not isinstance(x, Tensor):
            raise InputError(f"expected a torch.Tensor image batch, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"expected a float image batch (N, 3, H, W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"expected float RGB input in [0, 1], got dtype {x.dtype}")
        h, w = x.shape[-2:]
        if h < self.multiple or w < self.multiple or h % self.multiple or w % self.multiple:
            raise InputError(
                f"ESPNet needs height and width that are positive multiples of {self.multiple},"
                f" got {h}x{w}"
            )

    def normalise(self, x: Tensor) -> Tensor:
        """RGB in [0, 1] -> what the authors' network saw: ``(bgr*255 - mean)/std/255``."""
        return (x.flip(1) - self.mean_bgr) / self.std_bgr / 255.0

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``float32 (N, C, H, W)`` for RGB images ``float32 (N, 3, H, W)`` in [0, 1]."""
        self.check_input(x)
        return self.forward_normalised(self.normalise(x.float()))

    def forward_normalised(self, z: Tensor) -> Tensor:
        """The network on an already normalised ``(N, 3, H, W)`` batch (no checks)."""
        e = self.encoder
        out0 = e.level1(z)
        inp1 = e.sample1(z)
        inp2 = e.sample2(z)
        out0_cat = e.b1(torch.cat([out0, inp1], 1))  # (N, 19, H/2)
        out1_0 = e.level2_0(out0_cat)  # (N, 64, H/4)
        out1 = out1_0
        for layer in e.level2:
            out1 = layer(out1)
        out1_cat = e.b2(torch.cat([out1, out1_0, inp2], 1))  # (N, 131, H/4)
        out2_0 = e.level3_0(out1_cat)  # (N, 128, H/8)
        out2 = out2_0
        for layer in e.level3:
            out2 = layer(out2)
        out2_cat = e.b3(torch.cat([out2_0, out2], 1))  # (N, 256, H/8)
        out2_c = self.up_l3(self.br(e.classifier(out2_cat)))  # (N, C, H/4)
        out1_c = self.level3_C(out1_cat)  # (N, C, H/4)
        comb = self.up_l2(self.combine_l2_l3(torch.cat([out1_c, out2_c], 1)))  # (N, C, H/2)
        feats = self.conv(torch.cat([comb, out0_cat], 1))  # (N, C, H/2)
        return self.classifier(feats)  # (N, C, H)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Predicted class ids ``int64 (N, H, W)`` (argmax over all ``C`` channels)."""
        return self.forward(x).argmax(dim=1)


def load_espnet(path: str | os.PathLike[str], p: int = 2, q: int = 8) -> ESPNet:
    """An :class:`ESPNet` (eval mode) with the authors' weights from ``path``.

    ``path`` is a plain state dict with the authors' key names (``module.`` prefixes, as
    written by ``nn.DataParallel``, are accepted). The file is read with
    ``torch.load(..., weights_only=True)``; ``num_classes`` comes from the classifier's
    shape. A missing file, a file that is not a state dict, or a missing / unexpected /
    wrongly shaped key raises ``InputError`` with a one-line message.
    """
    p_ = Path(path)
    if not p_.is_file():
        raise InputError(f"ESPNet checkpoint not found: {str(p_)!r}")
    try:
        with warnings.catch_warnings():  # a garbage file can look like an odd pickle protocol
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            sd = torch.load(p_, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        msg = one_line(f"{type(exc).__name__}: {exc}", 160)
        raise InputError(f"{str(p_)!r} is not a readable torch checkpoint ({msg})") from None
    if not isinstance(sd, dict) or not sd:
        raise InputError(f"{str(p_)!r} is not a state dict (got {type(sd).__name__})")
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise InputError(f"{str(p_)!r}: entry {bad[0]!r} is not a named tensor")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    cls = sd.get("classifier.weight")
    if cls is None:
        raise InputError(f"{str(p_)!r}: missing key 'classifier.weight' (not an ESPNet?)")
    if cls.ndim != 4 or cls.shape[0] != cls.shape[1] or cls.shape[0] < 1:
        raise InputError(
            f"{str(p_)!r}: key 'classifier.weight' has shape {tuple(cls.shape)},"
            " expected (C, C, 2, 2)"
        )
    model = ESPNet(num_classes=int(cls.shape[0]), p=p, q=q)
    # Batch-norm ``num_batches_tracked`` counters postdate the authors' file: optional.
    want = {k: v for k, v in model.state_dict().items() if not k.endswith(_NBT)}
    sd = {
        k: v
        for k, v in sd.items()
        if not (k.endswith(_NBT) and k[: -len(_NBT)] + "running_mean" in sd)
    }
    for k, v in want.items():
        if k not in sd:
            raise InputError(f"{str(p_)!r}: missing key {k!r} (ESPNet p={p}, q={q})")
        if tuple(sd[k].shape) != tuple(v.shape):
            raise InputError(
                f"{str(p_)!r}: key {k!r} has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)}"
            )
        if not sd[k].is_floating_point():
            raise InputError(f"{str(p_)!r}: key {k!r} has dtype {sd[k].dtype}, expected float")
    extra = [k for k in sd if k not in want]
    if extra:
        raise InputError(f"{str(p_)!r}: unexpected key {extra[0]!r} (ESPNet p={p}, q={q})")
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    model.semcom_name = "espnet-camvid"  # type: ignore[assignment]
    return model.eval()
