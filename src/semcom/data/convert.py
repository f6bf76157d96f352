"""Tensor conventions shared by every module: uint8 <-> float images and the ignore label."""

from __future__ import annotations

import torch
from torch import Tensor

from semcom.errors import InputError

IGNORE_INDEX = 255
"""Mask value that metrics and losses ignore (e.g. CamVid's void class)."""


def to_float(x: Tensor) -> Tensor:
    """uint8 image(s) (any shape, e.g. ``(N, 3, H, W)``) -> float32 in ``[0, 1]``, same shape."""
    if not isinstance(x, Tensor) or x.dtype != torch.uint8:
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise InputError(f"to_float expects a uint8 tensor, got {got}")
    return x.to(torch.float32).div_(255.0)


def to_uint8(x: Tensor) -> Tensor:
    """Float image(s) in ``[0, 1]`` (any shape) -> uint8, rounded to nearest and clamped.

    Values outside ``[0, 1]`` are clamped; NaN becomes 0.
    """
    if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise InputError(f"to_uint8 expects a floating-point tensor, got {got}")
    y = torch.nan_to_num(x.detach().to(torch.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return y.mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
