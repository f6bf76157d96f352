"""Loading timm / DeiT ViT weights into :class:`~semcom.models.vit.VisionTransformer`.

The model's parameter names are timm's, so a public timm / DeiT state dict loads key
for key (wrappers and a DataParallel ``"module."`` prefix removed); only the position
embeddings may differ in size -- they are resampled to the model's patch grid. timm
itself is never imported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from semcom.errors import BitstreamError
from semcom.models.tensor_files import key_mismatch
from semcom.models.vit import VisionTransformer

__all__ = ["load_timm_state_dict", "resample_pos_embed"]


def resample_pos_embed(pos_embed: Tensor, new_grid: int, num_prefix_tokens: int) -> Tensor:
    """Resize absolute position embeddings to another (square) patch grid.

    Args:
        pos_embed: ``(1, num_prefix_tokens + G*G, D)``; the prefix part is kept as is.
        new_grid: target grid side ``G'``.
        num_prefix_tokens: leading CLS / distillation positions, not interpolated.

    Returns:
        ``(1, num_prefix_tokens + G'*G', D)`` in the input dtype; the grid part is bicubic
        interpolated (``align_corners=False``, ``antialias=True`` -- timm's choice, which
        also changes the cubic kernel when enlarging) in float32.

    Raises:
        BitstreamError: the grid part is not a perfect square.
    """
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise BitstreamError(f"pos_embed must have shape (1, T, D), got {tuple(pos_embed.shape)}")
    n_grid = pos_embed.shape[1] - num_prefix_tokens
    old_grid = math.isqrt(max(n_grid, 0))
    if n_grid <= 0 or old_grid * old_grid != n_grid:
        raise BitstreamError(
            f"pos_embed has {n_grid} grid positions after {num_prefix_tokens} prefix tokens; "
            "not a square grid"
        )
    if old_grid == new_grid:
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    d = grid.shape[-1]
    g = grid.float().reshape(1, old_grid, old_grid, d).permute(0, 3, 1, 2)
    g = F.interpolate(
        g,
        size=(new_grid, new_grid),
        mode="bicubic",
        align_corners=False,
        antialias=True,
    )
    g = g.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, d).to(pos_embed.dtype)
    return torch.cat([prefix, g], dim=1)


def load_timm_state_dict(
    model: VisionTransformer,
    state_dict: Mapping[str, Any],
    *,
    drop_head: bool = False,
) -> VisionTransformer:
    """Load a timm / DeiT ViT state dict into ``model`` (in place; strict).

    Args:
        model: the target :class:`VisionTransformer`.
        state_dict: tensors by timm key name. A checkpoint wrapped as ``{"model": sd}`` or
            ``{"state_dict": sd}`` and a ``"module."`` prefix (DataParallel) are unwrapped.
        drop_head: ignore ``head.*`` / ``head_dist.*`` in the file and keep the model's own
            (freshly initialised) classifier -- for fine-tuning to another class count.

    Returns:
        ``model``.

    ``pos_embed`` is resampled (bicubic over the patch grid) when the checkpoint was
    trained at another image size; every other tensor must match in shape.

    Raises:
        BitstreamError: missing or unexpected keys (all listed), non-tensor values, or a
            shape mismatch (key, file shape, model shape).
    """
    sd: Mapping[str, Any] = state_dict
    for wrapper in ("model", "state_dict"):
        if isinstance(sd, Mapping) and wrapper in sd and isinstance(sd[wrapper], Mapping):
            sd = sd[wrapper]
    if not isinstance(sd, Mapping):
        raise BitstreamError(f"state dict must be a mapping, got {type(sd).__name__}")
    items = {}
    for key, value in sd.items():
        if not isinstance(key, str):
            raise BitstreamError(f"state dict key {key!r} is not a string")
        items[key.removeprefix("module.")] = value

    own = model.state_dict()
    if drop_head:
        items = {k: v for k, v in items.items() if not k.startswith(("head.", "head_dist."))}
    expected = {k for k in own if not (drop_head and k.startswith(("head.", "head_dist.")))}
    missing = sorted(expected - items.keys())
    unexpected = sorted(items.keys() - expected)
    if missing or unexpected:
        raise BitstreamError(
            "state dict does not match VisionTransformer("
            f"{', '.join(f'{k}={v}' for k, v in model.config.items())}): "
            + key_mismatch(missing, unexpected)
        )

    new: dict[str, Tensor] = {}
    for key in sorted(expected):
        value = items[key]
        if not isinstance(value, Tensor):
            kind = type(value).__name__
            raise BitstreamError(f"state dict entry {key!r} is not a tensor ({kind})")
        if key == "pos_embed" and value.shape != own[key].shape:
            if value.ndim != 3 or value.shape[-1] != own[key].shape[-1]:
                raise BitstreamError(
                    f"pos_embed shape {tuple(value.shape)} incompatible with model "
                    f"{tuple(own[key].shape)}"
                )
            value = resample_pos_embed(value, model.grid_size, model.num_prefix_tokens)
        if value.shape != own[key].shape:
            raise BitstreamError(
                f"shape mismatch for {key!r}: file {tuple(value.shape)}, "
                f"model {tuple(own[key].shape)}"
            )
        if not value.is_floating_point():
            raise BitstreamError(f"state dict entry {key!r} has non-float dtype {value.dtype}")
        new[key] = value.to(dtype=own[key].dtype)
    if drop_head:
        for key in own:
            if key.startswith(("head.", "head_dist.")):
                new[key] = own[key]
    model.load_state_dict(new, strict=True)
    return model
