"""``shape-segmenter``: a small U-Net for synthetic-world semantic segmentation.

Input ``float32 (N, 3, H, W)`` in ``[0, 1]`` with ``H``, ``W`` divisible by 8; output
logits ``float32 (N, C + 1, H, W)``: channel 0 is background, channel ``1 + k`` is shape
class ``k`` (matching ``batch.masks``).

Layout (default ``widths=(16, 32, 64, 128)``, ~0.3 M parameters; shown for
``stem_stride=1``: with the default ``stem_stride=2`` the first conv of ``enc.0``
has stride 2, every map below is half the size, and the head's logits are upsampled
bilinearly to ``(H, W)`` -- 4x cheaper on a CPU). The decoder is the
light, additive kind (as in FPN / LinkNet): the coarser map is projected by a 1x1 conv
to the skip's width *before* upsampling, added to the skip, then refined by one 3x3
conv, which keeps the full-resolution cost small on a CPU. ``edges`` is the fixed
colour-invariant edge expansion of ``semcom.models._common.EdgeFeatures``
(``edge_stem=False``: the normalised 3-channel image goes to ``enc.0`` instead)::

    edges        fixed [x, |sobel_x|, |sobel_y|] (no params)   (N, 9,  H,   W)
    enc.0        2 x (3x3 conv + norm + ReLU), 9 -> w0         (N, w0, H,   W)
    enc.1        maxpool 2, 2 x conv, w0 -> w1                 (N, w1, H/2, W/2)
    enc.2        maxpool 2, 2 x conv, w1 -> w2                 (N, w2, H/4, W/4)
    bottleneck   maxpool 2, 2 x conv, w2 -> w3                 (N, w3, H/8, W/8)
    dec.0        1x1 w3 -> w2, bilinear x2, + enc.2, conv      (N, w2, H/4, W/4)
    dec.1        1x1 w2 -> w1, bilinear x2, + enc.1, conv      (N, w1, H/2, W/2)
    dec.2        1x1 w1 -> w0, bilinear x2, + enc.0, conv      (N, w0, H,   W)
    head         1x1 conv, w0 -> C + 1                         (N, C+1, H, W)
    (stem_stride=2: bilinear x2 of the head's logits)

Stable state-dict keys (``norm.*`` as in ``semcom.models.classifier``)::

    enc.{i}.conv1.conv.weight, enc.{i}.conv1.norm.*, enc.{i}.conv2.*     i = 0, 1, 2
    bottleneck.conv1.*, bottleneck.conv2.*
    dec.{i}.lateral.weight, dec.{i}.conv.conv.weight, dec.{i}.conv.norm.*   i = 0, 1, 2
    head.conv.weight, head.conv.bias
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.models._common import ConvNormAct, EdgeFeatures, check_shape_cnn, image_input
from semcom.models.registry import register_model

__all__ = ["ShapeSegmenter"]


class _DoubleConv(nn.Module):
    """Two 3x3 conv + norm + ReLU: (N, cin, H, W) -> (N, cout, H/stride, W/stride)."""

    def __init__(self, cin: int, cout: int, norm: str, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(cin, cout, norm, stride=stride)
        self.conv2 = ConvNormAct(cout, cout, norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


class _Up(nn.Module):
    """Project (1x1), upsample to the skip's size, add the skip, refine (3x3 conv)."""

    def __init__(self, cin: int, cskip: int, norm: str) -> None:
        super().__init__()
        self.lateral = nn.Conv2d(cin, cskip, 1, bias=False)
        self.conv = ConvNormAct(cskip, cskip, norm)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """(N, cin, h, w), skip (N, cskip, 2h, 2w) -> (N, cskip, 2h, 2w)."""
        up = F.interpolate(
            self.lateral(x), size=skip.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.conv(up + skip)


class _Head(nn.Module):
    """1x1 conv to class logits."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


@register_model("shape-segmenter")
class ShapeSegmenter(nn.Module):
    """Small U-Net; see the module docstring for layout and key names.

    Args:
        num_classes: number of shape classes ``C`` (``None``: ``len(semcom.data.CLASS_NAMES)``);
            the output has ``C + 1`` channels (background first).
        widths: channels at the four resolutions (4 ints).
        norm: ``"batch"`` (default), ``"group"`` or ``"none"``.
        edge_stem: expand the input with fixed Sobel edge magnitudes first.
        stem_stride: stride of ``enc.0``'s first conv (1 or 2).
    """

    task = "segment"

    def __init__(
        self,
        num_classes: int | None = None,
        widths: tuple[int, ...] | list[int] = (16, 32, 64, 128),
        norm: str = "batch",
        edge_stem: bool = True,
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        num_classes, w = check_shape_cnn(num_classes, widths, norm, stem_stride)
        self.num_classes = num_classes
        self.config: dict = {
            "num_classes": num_classes,
            "widths": list(w),
            "norm": norm,
            "edge_stem": bool(edge_stem),
            "stem_stride": int(stem_stride),
        }
        self.stem_stride = int(stem_stride)
        self.edges = EdgeFeatures() if edge_stem else None
        cin = EdgeFeatures.out_channels if edge_stem else 3
        self.enc = nn.ModuleList(
            [
                _DoubleConv(cin, w[0], norm, stride=self.stem_stride),
                _DoubleConv(w[0], w[1], norm),
                _DoubleConv(w[1], w[2], norm),
            ]
        )
        self.bottleneck = _DoubleConv(w[2], w[3], norm)
        self.dec = nn.ModuleList(
            [_Up(w[3], w[2], norm), _Up(w[2], w[1], norm), _Up(w[1], w[0], norm)]
        )
        self.head = _Head(w[0], num_classes + 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.head.conv:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``float32 (N, C + 1, H, W)`` for images ``float32 (N, 3, H, W)`` in ``[0, 1]``."""
        h = image_input(x, self.edges, multiple=8)
        skips = []
        for i, enc in enumerate(self.enc):
            h = enc(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        h = self.bottleneck(F.max_pool2d(h, 2))
        for dec, skip in zip(self.dec, reversed(skips), strict=True):
            h = dec(h, skip)
        out = self.head(h)
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Predicted mask ``int64 (N, H, W)`` (0 = background, 1 + class)."""
        return self.forward(x).argmax(dim=1)
