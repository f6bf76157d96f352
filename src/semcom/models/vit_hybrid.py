"""A hybrid ViT: the first blocks of a MobileNetV2 as the patch embedding.

Dosovitskiy et al. (ICLR 2021, section 3.1 "Hybrid architecture") feed a transformer the
feature map of a CNN instead of linearly projected pixel patches. Here the CNN is the
start of a MobileNetV2 (:mod:`semcom.models.mobilenet_v2`): the image is resized to
``stem_input_size``, run through the stem conv and the first ``stem_blocks`` inverted
residual blocks, and each cell of the resulting ``G x G`` feature map is projected (1x1
conv) to one token. ``G = img_size // patch_size``, so token ``p`` still belongs to image
patch ``p`` (row-major) and everything that ranks, keeps or sends patches works
unchanged. The stem can start from pretrained weights (the ImageNet MobileNetV2 of
:mod:`semcom.models.tflite_import`): :func:`load_stem` copies them and freezes them.

Registered as ``vit-hybrid-mnv2`` (random init): 64 x 64 images, 8 x 8 patches, the
MobileNetV2 blocks up to the first 96-channel stage (13 blocks, output stride 16) at
128 x 128, so the grid is 8 x 8; 4 transformer blocks of width 192, DeiT distillation
token.

Differences from :class:`~semcom.models.vit.VisionTransformer`
-------------------------------------------------------------
* A token sees more than its patch (the stem's receptive field). With ``keep``, the
  pixels of the dropped patches are therefore set to 0 *before* the stem: the output
  depends only on the kept patches' pixels, as for the plain ViT -- but a kept token's
  features also see the blank neighbours, so accuracy from a subset is not that of the
  full image restricted to those tokens.
* Extra config keys ``stem`` (``"mobilenet-v2"`` or ``"conv"``: :class:`ConvStem`,
  batch-normalised, for hybrids trained from scratch), ``stem_blocks``,
  ``stem_input_size``, ``stem_width``.

State-dict keys: those of ``VisionTransformer`` with ``patch_embed.proj.*`` now the 1x1
projection ``(D, C_stem, 1, 1)``, plus the MobileNetV2's own names under
``patch_embed.``: ``patch_embed.stem.*`` and ``patch_embed.blocks.{i}.{expand,
depthwise,project}.*`` for ``i < stem_blocks``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.mobilenet_v2 import (
    INFERENCE_CHUNK,
    Conv2dSame,
    InvertedResidual,
    block_specs,
)
from semcom.models.registry import register_model
from semcom.models.vit import VisionTransformer, _vit

__all__ = [
    "STEMS",
    "ConvStem",
    "HybridVisionTransformer",
    "MobileNetStem",
    "ShapeStem",
    "load_stem",
    "stem_flops",
]

#: The stems a hybrid can have.
STEMS = ("mobilenet-v2", "conv", "shape-cnn")


def _stem_plan(width: float, blocks: int) -> tuple[int, list[tuple[int, int, int, int]]]:
    stem, specs, _ = block_specs(width)
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= len(specs):
        raise InputError(f"stem_blocks must be an int in [1, {len(specs)}], got {blocks!r}")
    return stem, specs[:blocks]


def _stem_stride(specs: list[tuple[int, int, int, int]]) -> int:
    return 2 * math.prod(s[2] for s in specs)


class MobileNetStem(nn.Module):
    """``(N, 3, H, W)`` float in ``[0, 1]`` -> tokens ``(N, G * G, D)``, row-major.

    The image is resized (bilinear) to ``input_size``, mapped to ``[-1, 1]`` (the
    MobileNetV2 convention), run through the stem conv and ``blocks`` inverted residual
    blocks (channels-last, faster on CPU) and projected by a 1x1 conv to ``embed_dim``.

    Args:
        embed_dim: token width ``D``.
        blocks: how many MobileNetV2 blocks (1..17).
        input_size: the side the image is resized to; ``input_size / stride`` must be
            the token grid ``grid``.
        width: MobileNetV2 width multiplier.
        grid: token grid side ``G``.
    """

    def __init__(self, embed_dim: int, blocks: int, input_size: int, width: float, grid: int):
        super().__init__()
        stem, specs = _stem_plan(width, blocks)
        stride = _stem_stride(specs)
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 8:
            raise InputError(f"stem_input_size must be an int >= 8, got {input_size!r}")
        if input_size != grid * stride:
            raise InputError(
                f"stem_input_size {input_size} with {blocks} MobileNetV2 blocks (stride "
                f"{stride}) gives a {-(-input_size // stride)}-cell grid; the patch grid is "
                f"{grid} (use stem_input_size {grid * stride})"
            )
        self.input_size = input_size
        self.stem = Conv2dSame(3, stem, 3, stride=2)
        self.blocks = nn.ModuleList(InvertedResidual(*spec) for spec in specs)
        self.out_channels = specs[-1][1]
        self.proj = nn.Conv2d(self.out_channels, embed_dim, 1)
        for m in (self.stem, *self.blocks.modules()):
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                nn.init.zeros_(m.bias)
        self.to(memory_format=torch.channels_last)

    def features(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` in ``[0, 1]`` -> the MobileNetV2 map ``(N, C, G, G)``."""
        s = self.input_size
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        x = x.contiguous(memory_format=torch.channels_last)
        y = F.relu6(self.stem(x * 2 - 1), inplace=True)
        for block in self.blocks:
            y = block(y)
        return y

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` -> ``(N, G * G, D)``. A frozen stem (no parameter needing a
        gradient, :func:`load_stem`) runs without autograd, in chunks of
        ``INFERENCE_CHUNK`` images (cache-friendly on CPU)."""
        frozen = not any(p.requires_grad for p in self.stem.parameters())
        if frozen or not torch.is_grad_enabled():
            with torch.no_grad():
                y = torch.cat([self.features(c) for c in x.split(INFERENCE_CHUNK)])
        else:
            y = self.features(x)
        return self.proj(y).flatten(2).transpose(1, 2).contiguous()


class ConvStem(nn.Module):
    """``(N, 3, H, W)`` float in ``[0, 1]`` -> tokens ``(N, G * G, D)``: ``blocks``
    stride-2 3x3 convs with batch norm and ReLU (widths ``width * 2**i``), then a 1x1
    projection -- the "early convolutions" stem (Xiao et al., NeurIPS 2021), for hybrids
    trained from scratch (a folded MobileNetV2 has no normalisation to train with).

    Keys: ``convs.{i}.conv.weight``, ``convs.{i}.bn.{weight,bias,running_mean,
    running_var,num_batches_tracked}``, ``proj.{weight,bias}``.
    """

    def __init__(self, embed_dim: int, blocks: int, input_size: int, width: int, grid: int):
        super().__init__()
        if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= 6:
            raise InputError(
                f"stem_blocks must be an int in [1, 6] for a conv stem, got {blocks!r}"
            )
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not 4 <= width <= 512:
            raise InputError(
                f"stem_width of a conv stem is its first width in [4, 512], got {width!r}"
            )
        if input_size != grid * 2**blocks:
            raise InputError(
                f"stem_input_size {input_size} with {blocks} stride-2 convs gives a "
                f"{input_size // 2**blocks}-cell grid; the patch grid is {grid} (use "
                f"stem_input_size {grid * 2**blocks})"
            )
        self.input_size = input_size
        chans, cin = [], 3
        for i in range(blocks):
            cout = int(width) * 2**i
            layer = nn.Module()
            layer.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
            layer.bn = nn.BatchNorm2d(cout)
            chans.append(layer)
            cin = cout
        self.convs = nn.ModuleList(chans)
        self.out_channels = cin
        self.proj = nn.Conv2d(cin, embed_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` -> ``(N, G * G, D)``."""
        s = self.input_size
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        y = x * 2 - 1
        for layer in self.convs:
            y = F.relu(layer.bn(layer.conv(y)), inplace=True)
        return self.proj(y).flatten(2).transpose(1, 2).contiguous()


class ShapeStem(nn.Module):
    """``(N, 3, H, W)`` float in ``[0, 1]`` -> tokens ``(N, G * G, D)``: the start of a
    :class:`~semcom.models.classifier.ShapeClassifier` (fixed edge features, its stride-2
    stem conv and its first ``blocks`` stages, batch-normalised), then a 1x1 projection.
    For a server that reuses a synthetic-world CNN's features (:func:`load_stem` copies a
    ``shape-classifier`` checkpoint's weights and running statistics and freezes them; a
    frozen stem keeps its batch norms in eval mode while the rest trains).

    Args:
        embed_dim: token width ``D``.
        blocks: stages after the stem conv (1..3); the stride is ``2 ** (blocks + 1)``.
        input_size: the side the image is resized to (``grid * stride``).
        widths: the stem's and the stages' channels (``blocks + 1`` ints, those of the
            classifier it comes from).
        grid: token grid side ``G``.

    Keys: ``stem.conv.weight``, ``stem.norm.*``, ``stages.{i}.{down,block}.conv.weight``,
    ``stages.{i}.{down,block}.norm.*`` (the classifier's own names), ``proj.{weight,bias}``.
    """

    def __init__(
        self, embed_dim: int, blocks: int, input_size: int, widths: list[int], grid: int
    ) -> None:
        super().__init__()
        from semcom.models._common import ConvNormAct, EdgeFeatures
        from semcom.models.classifier import _Stage

        if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= 3:
            raise InputError(
                f"stem_blocks must be an int in [1, 3] for a shape-cnn stem, got {blocks!r}"
            )
        if (
            not isinstance(widths, (list, tuple))
            or len(widths) != blocks + 1
            or not all(
                isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 1024 for w in widths
            )
        ):
            raise InputError(
                f"stem_widths of a shape-cnn stem are {blocks + 1} ints in [1, 1024] "
                f"(the stem's and each stage's channels), got {widths!r}"
            )
        stride = 2 ** (blocks + 1)
        if input_size != grid * stride:
            raise InputError(
                f"stem_input_size {input_size} with {blocks} stages (stride {stride}) gives a "
                f"{input_size // stride}-cell grid; the patch grid is {grid} (use "
                f"stem_input_size {grid * stride})"
            )
        self.input_size = input_size
        self.edges = EdgeFeatures()
        self.stem = ConvNormAct(EdgeFeatures.out_channels, widths[0], "batch", stride=2)
        self.stages = nn.ModuleList(
            _Stage(widths[i], widths[i + 1], "batch") for i in range(blocks)
        )
        self.out_channels = widths[-1]
        self.proj = nn.Conv2d(self.out_channels, embed_dim, 1)

    def _frozen(self) -> bool:
        return not any(p.requires_grad for p in self.stem.parameters())

    def train(self, mode: bool = True) -> ShapeStem:
        """As :meth:`torch.nn.Module.train`, but a frozen stem's batch norms stay in eval
        mode (their running statistics are the source classifier's)."""
        super().train(mode)
        if mode and self._frozen():
            self.stem.eval()
            self.stages.eval()
        return self

    def features(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` in ``[0, 1]`` -> the classifier's map ``(N, C, G, G)``."""
        from semcom.models._common import image_input

        s = self.input_size
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        y = self.stem(image_input(x, self.edges))
        for stage in self.stages:
            y = stage(y)
        return y

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` -> ``(N, G * G, D)``; a frozen stem runs without autograd."""
        if self._frozen() or not torch.is_grad_enabled():
            with torch.no_grad():
                y = self.features(x)
        else:
            y = self.features(x)
        return self.proj(y).flatten(2).transpose(1, 2).contiguous()


class HybridVisionTransformer(VisionTransformer):
    """A :class:`~semcom.models.vit.VisionTransformer` whose patch embedding is
    :class:`MobileNetStem` (see the module docstring). Same ``forward`` contract.

    Args:
        stem_blocks: MobileNetV2 blocks in the stem.
        stem_input_size: side the image is resized to before the stem.
        stem_width: MobileNetV2 width multiplier (``stem="conv"``: the first conv's width).
        stem: ``"mobilenet-v2"`` (folded MobileNetV2 blocks, for pretrained weights),
            ``"conv"`` (:class:`ConvStem`, batch-normalised, to train from scratch) or
            ``"shape-cnn"`` (:class:`ShapeStem`: a ``shape-classifier``'s first stages).
        stem_widths: a ``shape-cnn`` stem's channels (default ``[24, 32, 64]`` cut to
            ``stem_blocks + 1``).
        **kw: :class:`~semcom.models.vit.VisionTransformer`'s arguments.
    """

    def __init__(
        self,
        stem_blocks: int = 13,
        stem_input_size: int = 128,
        stem_width: float = 1.0,
        stem: str = "mobilenet-v2",
        stem_widths: list[int] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if stem not in STEMS:
            raise InputError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
        if stem_widths is not None and stem != "shape-cnn":
            raise InputError("stem_widths is for a shape-cnn stem only")
        size = dict(stem_blocks=stem_blocks, stem_input_size=stem_input_size)
        grid = self.grid_size
        # each replaces the pixel projection in place (same slot, so the key order holds)
        if stem == "shape-cnn":
            widths = (
                list(stem_widths) if stem_widths is not None else [24, 32, 64][: stem_blocks + 1]
            )
            embed: nn.Module = ShapeStem(self.embed_dim, stem_blocks, stem_input_size, widths, grid)
            extra: dict[str, Any] = {"stem_widths": widths}
        elif stem == "conv":
            embed = ConvStem(self.embed_dim, stem_blocks, stem_input_size, stem_width, grid)
            extra = {"stem_width": stem_width}
        else:
            if (
                isinstance(stem_width, bool)
                or not isinstance(stem_width, (int, float))
                or not math.isfinite(stem_width)
                or not 0 < stem_width <= 4
            ):
                raise InputError(f"stem_width must be a number in (0, 4], got {stem_width!r}")
            embed = MobileNetStem(
                self.embed_dim, stem_blocks, stem_input_size, float(stem_width), grid
            )
            extra = {"stem_width": float(stem_width)}
        self.patch_embed = embed
        self.config.update(stem=stem, **size, **extra)

    def _embed(self, x: Tensor, keep: Tensor | None) -> Tensor:
        if keep is not None:  # blank the dropped patches first (the stem sees neighbours)
            g, p = self.grid_size, self.patch_size
            cells = x.new_zeros(x.shape[0], g * g).scatter_(1, keep, 1.0)
            mask = cells.view(-1, 1, g, g).repeat_interleave(p, 2).repeat_interleave(p, 3)
            x = x * mask
        return super()._embed(x, keep)


def stem_flops(cfg: dict[str, Any]) -> int:
    """Forward FLOPs (multiply-add = 2) of one image through a hybrid's stem convs and
    token projection, from its config (0 for a plain ViT config)."""
    if "stem_blocks" not in cfg:
        return 0
    if cfg.get("stem") == "shape-cnn":
        widths = [int(w) for w in cfg["stem_widths"]]
        side = -(-int(cfg["stem_input_size"]) // 2)
        flops = 2 * side * side * 9 * 9 * widths[0]
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            side = -(-side // 2)
            flops += 2 * side * side * 9 * (cin * cout + cout * cout)
        return flops + 2 * side * side * widths[-1] * int(cfg["embed_dim"])
    if cfg.get("stem") == "conv":
        side, cin, flops = int(cfg["stem_input_size"]), 3, 0
        for i in range(int(cfg["stem_blocks"])):
            cout = int(cfg["stem_width"]) * 2**i
            side = -(-side // 2)
            flops += 2 * side * side * cin * 9 * cout
            cin = cout
        return flops + 2 * side * side * cin * int(cfg["embed_dim"])
    stem, specs = _stem_plan(float(cfg.get("stem_width", 1.0)), int(cfg["stem_blocks"]))
    side = -(-int(cfg["stem_input_size"]) // 2)
    flops = 2 * side * side * 3 * 9 * stem
    for cin, cout, stride, t in specs:
        hidden = cin * t
        if t != 1:
            flops += 2 * side * side * cin * hidden
        side = -(-side // stride)
        flops += 2 * side * side * hidden * 9 + 2 * side * side * hidden * cout
    return flops + 2 * side * side * specs[-1][1] * int(cfg["embed_dim"])


def load_stem(model: HybridVisionTransformer, source: nn.Module | str | Path) -> list[str]:
    """Copy a pretrained CNN's first layers into ``model``'s stem and freeze them: a
    MobileNetV2's stem and first blocks into a ``mobilenet-v2`` stem, or a
    ``shape-classifier``'s stem and first stages (weights and batch-norm running
    statistics) into a ``shape-cnn`` stem.

    Args:
        model: the hybrid ViT.
        source: a :class:`~semcom.models.mobilenet_v2.MobileNetV2` /
            :class:`~semcom.models.classifier.ShapeClassifier`, or a checkpoint path / zoo
            name of one (e.g. the ImageNet port of ``semcom.models.tflite_import``, or
            ``server-synth``).

    Returns:
        The frozen parameter names (``patch_embed.stem.*``, ``patch_embed.blocks.*`` /
        ``patch_embed.stages.*``); the projection ``patch_embed.proj`` stays trainable.

    Raises:
        InputError: ``source`` is not the stem's kind of CNN or its widths differ.
    """
    from semcom.models.classifier import ShapeClassifier
    from semcom.models.mobilenet_v2 import MobileNetV2

    if isinstance(source, (str, Path)):
        from semcom.models.zoo import load_model

        source = load_model(source)
    stem = model.patch_embed
    kinds = (
        (MobileNetStem, MobileNetV2, "mobilenet-v2"),
        (ShapeStem, ShapeClassifier, "shape-classifier"),
    )
    match = [k for k in kinds if isinstance(stem, k[0])]
    if not match:
        raise InputError("load_stem needs a hybrid ViT with a mobilenet-v2 or shape-cnn stem")
    _, source_type, label = match[0]
    if not isinstance(source, source_type):
        raise InputError(
            f"the stem's weights must come from a {label}, got {type(source).__name__}"
        )
    src = source.state_dict()
    frozen = []
    for name, t in stem.state_dict().items():
        if name.startswith("proj."):
            continue
        if name not in src or tuple(src[name].shape) != tuple(t.shape):
            have = None if name not in src else tuple(src[name].shape)
            raise InputError(
                f"{label} weights do not fit the stem: {name} is {have}, needs {tuple(t.shape)}"
            )
        with torch.no_grad():
            t.copy_(src[name])
    for name, p in stem.named_parameters():
        if not name.startswith("proj."):
            p.requires_grad_(False)
            frozen.append(f"patch_embed.{name}")
    stem.train(stem.training)  # a frozen shape-cnn stem's batch norms go to eval mode
    return frozen


@register_model("vit-hybrid-mnv2")
def vit_hybrid_mnv2(**overrides: Any) -> HybridVisionTransformer:
    """64x64 images, 8x8 patches; MobileNetV2 (13 blocks at 128x128) as the patch
    embedding; 4 blocks of width 192 (3 heads), distillation token."""
    return _vit(
        "vit-hybrid-mnv2", overrides, HybridVisionTransformer, img_size=64, patch_size=8,
        embed_dim=192, depth=4, num_heads=3, num_classes=None, distilled=True, stem_blocks=13,
        stem_input_size=128,
    )  # fmt: skip


@register_model("vit-hybrid-synth")
def vit_hybrid_synth(**overrides: Any) -> HybridVisionTransformer:
    """64x64 synthetic-world images, 8x8 patches; a conv stem (3 stride-2 convs of width
    32, 64, 128 with batch norm: the 8x8 grid) as the patch embedding, trained from
    scratch; 6 blocks of width 192 (3 heads): the collaborative server ``server-synth``."""
    return _vit(
        "vit-hybrid-synth", overrides, HybridVisionTransformer, img_size=64, patch_size=8,
        embed_dim=192, depth=6, num_heads=3, num_classes=None, stem="conv", stem_blocks=3,
        stem_input_size=64, stem_width=32,
    )  # fmt: skip


@register_model("vit-hybrid-shape")
def vit_hybrid_shape(**overrides: Any) -> HybridVisionTransformer:
    """64x64 synthetic-world images, 8x8 patches; a ``shape-classifier``'s edge features,
    stem and first two stages (widths 24, 32, 64: the 8x8 grid) as the patch embedding
    (frozen from a checkpoint with ``--stem``, e.g. ``server-synth``); 6 blocks of width
    192 (3 heads)."""
    return _vit(
        "vit-hybrid-shape", overrides, HybridVisionTransformer, img_size=64, patch_size=8,
        embed_dim=192, depth=6, num_heads=3, num_classes=None, stem="shape-cnn",
        stem_blocks=2, stem_input_size=64, stem_widths=[24, 32, 64],
    )  # fmt: skip
