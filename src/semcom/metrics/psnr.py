"""Peak signal-to-noise ratio, per image."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from semcom.errors import InputError
from semcom.metrics._check import check_image_pair


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB of each image pair: ``10 log10(data_range^2 / MSE)``.

    Args:
        x, y: float ``(N, C, H, W)`` (semcom images: ``C = 3`` in ``[0, 1]``).
        data_range: peak value (1.0 for ``[0, 1]`` images, 255.0 for 8-bit scale).

    Returns:
        ``(N,)`` in ``x``'s dtype; ``+inf`` where the images are identical. The MSE is
        taken over all channels and pixels of one image, in float64.
    """
    check_image_pair(x, y, "psnr")
    if not data_range > 0 or math.isinf(data_range):
        raise InputError(f"psnr: data_range must be finite and > 0, got {data_range!r}")
    diff = x.to(torch.float64) - y.to(torch.float64)
    mse = diff.pow(2).flatten(1).mean(dim=1)
    out = 10.0 * torch.log10(data_range**2 / mse)  # mse == 0 -> +inf
    return out.to(x.dtype)
