"""Classification accuracy (top-k)."""

from __future__ import annotations

import torch
from torch import Tensor

from semcom.errors import InputError


def accuracy(logits_or_pred: Tensor, labels: Tensor, k: int = 1) -> float:
    """Fraction of samples whose label is among the top-``k`` predictions.

    Args:
        logits_or_pred: float logits ``(N, C)`` or integer class predictions ``(N,)``
            (predictions allow only ``k = 1``).
        labels: int ``(N,)``.
        k: top-k; ``k = 1`` is plain accuracy.

    Returns:
        A float in ``[0, 1]``. Raises :class:`InputError` on shape/dtype mismatch or ``N = 0``.
    """
    if labels.ndim != 1 or labels.dtype.is_floating_point:
        raise InputError(f"labels must be integer (N,), got {labels.dtype} {tuple(labels.shape)}")
    n = labels.shape[0]
    if n == 0:
        raise InputError("accuracy of an empty batch")
    x = logits_or_pred
    if x.ndim == 2 and x.shape[0] == n:
        if k < 1 or k > x.shape[1]:
            raise InputError(f"k must be in [1, {x.shape[1]}], got {k}")
        top = x.topk(k, dim=1).indices  # (N, k)
        hit = (top == labels.to(top.device).unsqueeze(1)).any(dim=1)
    elif x.ndim == 1 and x.shape[0] == n and not x.dtype.is_floating_point:
        if k != 1:
            raise InputError("top-k accuracy needs logits, not predictions")
        hit = x == labels.to(x.device)
    else:
        raise InputError(
            f"expected logits (N, C) or int predictions (N,) with N={n}, "
            f"got {x.dtype} {tuple(x.shape)}"
        )
    return float(hit.to(torch.float64).mean())
