"""Cutting images into the ViT patch grid and putting them back.

Patches are numbered row-major: patch ``p`` of a ``G x G`` grid covers pixel rows
``(p // G) * s ... + s`` and columns ``(p % G) * s ... + s`` (``s`` = patch size), the
same numbering as ``semcom.models.vit.VisionTransformer``.
"""

from __future__ import annotations

from torch import Tensor

from semcom.errors import InputError

__all__ = ["patchify", "unpatchify"]


def patchify(x: Tensor, patch_size: int) -> Tensor:
    """``(N, C, H, W)`` (any dtype) -> ``(N, P, C, s, s)`` with ``P = (H/s) * (W/s)``.

    Raises:
        InputError: not 4-D, or ``H`` / ``W`` not multiples of ``patch_size``.
    """
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise InputError(f"patch_size must be a positive integer, got {patch_size!r}")
    if not isinstance(x, Tensor) or x.ndim != 4:
        raise InputError("x must be a tensor of shape (N, C, H, W)")
    n, c, h, w = x.shape
    if h % patch_size or w % patch_size:
        raise InputError(f"image {h}x{w} is not a multiple of patch size {patch_size}")
    gh, gw = h // patch_size, w // patch_size
    t = x.reshape(n, c, gh, patch_size, gw, patch_size).permute(0, 2, 4, 1, 3, 5)
    return t.reshape(n, gh * gw, c, patch_size, patch_size)


def unpatchify(patches: Tensor, grid: tuple[int, int] | int) -> Tensor:
    """``(N, P, C, s, s)`` -> ``(N, C, gh * s, gw * s)``; inverse of :func:`patchify`.

    Args:
        patches: the patches in row-major grid order.
        grid: ``(gh, gw)`` or a square side ``g``; ``gh * gw`` must equal ``P``.
    """
    gh, gw = (grid, grid) if isinstance(grid, int) else grid
    if not isinstance(patches, Tensor) or patches.ndim != 5:
        raise InputError("patches must be a tensor of shape (N, P, C, s, s)")
    n, p, c, s, s2 = patches.shape
    if s != s2 or gh * gw != p:
        raise InputError(f"cannot arrange {p} patches of {s}x{s2} into a {gh}x{gw} grid")
    t = patches.reshape(n, gh, gw, c, s, s).permute(0, 3, 1, 4, 2, 5)
    return t.reshape(n, c, gh * s, gw * s)
