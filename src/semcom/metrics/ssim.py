"""Structural similarity (SSIM, Wang et al. 2004), per image.

The standard settings: an 11x11 Gaussian window with sigma 1.5, ``K1 = 0.01``,
``K2 = 0.03``, weighted (biased) local statistics, and only windows that lie fully inside
the image ("valid" filtering, as the authors' reference code). Channels are processed
independently and the SSIM map is averaged over channels and positions. Unlike the
reference MATLAB script, images are not downsampled first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from semcom.errors import InputError
from semcom.metrics._check import check_image_pair

WINDOW = 11
SIGMA = 1.5
K1 = 0.01
K2 = 0.03


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> Tensor:
    """Normalised 1-D Gaussian, float64 ``(size,)``; the 2-D window is its outer product."""
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x: Tensor, g: Tensor) -> Tensor:
    """Separable valid Gaussian filtering per channel: ``(N, C, H, W) -> (N, C, H-s+1, W-s+1)``."""
    c = x.shape[1]
    s = g.numel()
    x = F.conv2d(x, g.view(1, 1, 1, s).expand(c, 1, 1, s), groups=c)
    return F.conv2d(x, g.view(1, 1, s, 1).expand(c, 1, s, 1), groups=c)


def ssim_map(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Local SSIM, float64 ``(N, C, H - 10, W - 10)`` for float ``(N, C, H, W)`` inputs."""
    check_image_pair(x, y, "ssim")
    if x.shape[-1] < WINDOW or x.shape[-2] < WINDOW:
        raise InputError(f"ssim: images must be at least {WINDOW}x{WINDOW}, got {tuple(x.shape)}")
    if not data_range > 0:
        raise InputError(f"ssim: data_range must be > 0, got {data_range!r}")
    g = gaussian_window().to(x.device)
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    c = x.shape[1]
    # one filtering pass over the five maps stacked on the channel axis
    stats = _filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), g)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(c, dim=1)
    var_x = e_xx - mu_x**2
    var_y = e_yy - mu_y**2
    cov = e_xy - mu_x * mu_y
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return num / den


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean SSIM of each image pair.

    Args:
        x, y: float ``(N, C, H, W)``, ``H, W >= 11`` (semcom: ``C = 3`` in ``[0, 1]``).
        data_range: value range of the pixels (1.0 for ``[0, 1]``).

    Returns:
        ``(N,)`` in ``x``'s dtype; 1 for identical images, symmetric in ``x`` and ``y``.
    """
    return ssim_map(x, y, data_range).mean(dim=(1, 2, 3)).to(x.dtype)
