"""Small helpers shared by the model files (normalisation choice, class count, the
shape CNNs' argument checks and input stem)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError

NORMS = ("batch", "group", "none")
#: The shape CNNs' input normalisation without the edge stem: ``(x - MEAN) / STD``.
MEAN, STD = 0.5, 0.25


def make_norm(kind: str, channels: int) -> nn.Module:
    """``BatchNorm2d`` / ``GroupNorm`` (8 channels per group, at least 1 group) / identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = max(1, channels // 8)
        while channels % groups:
            groups -= 1
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise InputError(f"unknown norm {kind!r}; expected one of {', '.join(NORMS)}")


def resolve_num_classes(num_classes: int | None) -> int:
    """``num_classes`` or, when ``None``, the synthetic world's ``len(CLASS_NAMES)``."""
    if num_classes is None:
        from semcom.data import CLASS_NAMES

        num_classes = len(CLASS_NAMES)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"num_classes must be a positive int, got {num_classes!r}")
    return num_classes


def check_widths(widths: object, n: int | None = None) -> tuple[int, ...]:
    """Validate a tuple of positive channel widths (exactly ``n`` of them when given)."""
    try:
        out = tuple(int(w) for w in widths)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise InputError(f"widths must be a sequence of ints, got {widths!r}") from None
    if not out or any(w < 1 for w in out) or (n is not None and len(out) != n):
        need = f"{n} " if n is not None else ""
        raise InputError(f"widths must be {need}positive ints, got {widths!r}")
    return out


def check_shape_cnn(
    num_classes: int | None, widths: object, norm: str, stem_stride: int
) -> tuple[int, tuple[int, ...]]:
    """The shape classifier's and segmenter's common arguments, checked:
    ``(num_classes, widths)`` (see :func:`resolve_num_classes`; 4 widths)."""
    num_classes = resolve_num_classes(num_classes)
    if stem_stride not in (1, 2):
        raise InputError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
    checked = check_widths(widths, 4)
    make_norm(norm, 1)  # validates the name
    return num_classes, checked


def image_input(x: Tensor, edges: nn.Module | None, multiple: int = 1) -> Tensor:
    """A float image batch ``(N, 3, H, W)`` in ``[0, 1]`` (``H``, ``W`` divisible by
    ``multiple``), checked, as a shape CNN's stem takes it: ``edges(x)`` or normalised."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise InputError(f"expected a float image batch (N, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(f"expected float input in [0, 1], got dtype {x.dtype}")
    if multiple > 1 and (x.shape[2] % multiple or x.shape[3] % multiple):
        raise InputError(
            f"image height and width must be divisible by {multiple}, got {tuple(x.shape)}"
        )
    return edges(x) if edges is not None else (x - MEAN) / STD


class ConvNormAct(nn.Module):
    """3x3 (or ``k``) conv -> norm -> ReLU (``act=False``: no ReLU).

    Keys: ``conv.weight`` (+ ``conv.bias`` when ``norm="none"``), ``norm.*``.
    """

    def __init__(
        self, cin: int, cout: int, norm: str, stride: int = 1, k: int = 3, act: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=norm == "none")
        self.norm = make_norm(norm, cout)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x):  # noqa: D102 - (N, cin, H, W) -> (N, cout, H/stride, W/stride)
        return self.act(self.norm(self.conv(x)))


class EdgeFeatures(nn.Module):
    """Fixed (not learned) input expansion: ``[x_norm, 4 * |sobel_x(x)|, 4 * |sobel_y(x)|]``.

    ``x``: float ``(N, 3, H, W)`` in ``[0, 1]`` -> ``(N, 9, H, W)``: the normalised image
    ``(x - 0.5) / 0.25`` followed by the absolute horizontal and vertical Sobel gradients
    of each colour channel (replicate padding). Polarity- and colour-invariant edges up
    front let a small CNN learn *shape* from a few thousand images instead of first
    having to discover edge detectors for every colour pair. No parameters, no state-dict
    entries (the kernel is a non-persistent buffer).
    """

    out_channels = 9

    def __init__(self) -> None:
        super().__init__()
        k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4.0
        kernel = torch.stack([k, k.t()]).unsqueeze(1).repeat(3, 1, 1, 1)  # (6, 1, 3, 3)
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - see class docstring
        g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.kernel.to(x.dtype), groups=3)
        return torch.cat([(x - 0.5) / 0.25, g.abs() * 4.0], dim=1)
