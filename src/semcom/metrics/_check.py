"""Shared argument checks for image-pair metrics."""

from __future__ import annotations

from torch import Tensor

from semcom.errors import InputError


def check_image_pair(x: Tensor, y: Tensor, what: str) -> None:
    """Both float ``(N, C, H, W)`` of the same shape, ``N >= 1``; else :class:`InputError`."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise InputError(f"{what}: expected two tensors")
    if x.shape != y.shape:
        raise InputError(f"{what}: shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim != 4 or x.shape[0] < 1:
        raise InputError(f"{what}: expected (N, C, H, W) with N >= 1, got {tuple(x.shape)}")
    if not (x.dtype.is_floating_point and y.dtype.is_floating_point):
        raise InputError(
            f"{what}: expected float images (convert uint8 with semcom.data.to_float), "
            f"got {x.dtype} and {y.dtype}"
        )
