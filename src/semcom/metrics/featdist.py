"""Deep-feature distance: the LPIPS recipe *without learned weights*, on any backbone.

For each selected feature map ``f_l`` of a backbone (``(N, C_l, h_l, w_l)``), features are
unit-normalised along channels at every position, the squared difference between the two
images is summed over channels and averaged over positions, and the per-layer values are
summed:

    d(x, y) = sum_l mean_{h,w} || f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)| ||^2

This is *not* LPIPS (no learned per-channel weights, and usually a different backbone);
its metric name carries the backbone, e.g. ``featdist[semcom-classifier]``, so numbers
from different backbones are never mixed up. Each layer contributes at most 4.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.metrics._check import check_image_pair

FeatureFn = Callable[[Tensor], "Tensor | Sequence[Tensor]"]


def _owner_module(backbone: object) -> nn.Module | None:
    if isinstance(backbone, nn.Module):
        return backbone
    owner = getattr(backbone, "__self__", None)  # bound method such as model.features
    return owner if isinstance(owner, nn.Module) else None


def _default_name(backbone: object) -> str:
    owner = _owner_module(backbone)
    if owner is not None:
        return type(owner).__name__
    return str(getattr(backbone, "__name__", type(backbone).__name__))


class FeatureDistance:
    """Perceptual distance on a backbone's feature maps; ``(N,)`` per image pair.

    Args:
        backbone: a module or callable mapping float ``(N, 3, H, W)`` in ``[0, 1]`` to a
            list of feature maps ``(N, C_l, h_l, w_l)`` (a single tensor counts as a
            one-element list), e.g. ``model.features``. If it is (or is bound to) an
            ``nn.Module``, that module is switched to eval mode.
        layers: indices of the feature maps to use (default: all).
        name: the backbone's name in the metric name (default: its class name).
        eps: added to the channel norm before dividing.

    Attributes:
        name: the metric key, ``"featdist[<backbone name>]"``.
        backbone_name: the backbone's name alone.
    """

    def __init__(
        self,
        backbone: nn.Module | FeatureFn,
        layers: Sequence[int] | None = None,
        name: str | None = None,
        eps: float = 1e-10,
    ) -> None:
        if not callable(backbone):
            raise InputError(f"featdist: backbone must be callable, got {type(backbone).__name__}")
        owner = _owner_module(backbone)
        if owner is not None:
            owner.eval()
        self.backbone = backbone
        self.layers = None if layers is None else [int(i) for i in layers]
        if self.layers is not None and not self.layers:
            raise InputError("featdist: layers is empty")
        self.backbone_name = _default_name(backbone) if name is None else str(name)
        if not self.backbone_name or any(c in self.backbone_name for c in "[]"):
            raise InputError(f"featdist: bad backbone name {self.backbone_name!r}")
        self.eps = eps

    @property
    def name(self) -> str:
        """Metric key, e.g. ``"featdist[semcom-classifier]"``."""
        return f"featdist[{self.backbone_name}]"

    def __repr__(self) -> str:
        return f"FeatureDistance(name={self.name!r}, layers={self.layers})"

    def _features(self, x: Tensor) -> list[Tensor]:
        out = self.backbone(x)
        feats = [out] if isinstance(out, Tensor) else list(out)
        if self.layers is not None:
            n = len(feats)
            if any(not -n <= i < n for i in self.layers):
                raise InputError(f"featdist: layers {self.layers} out of range for {n} maps")
            feats = [feats[i] for i in self.layers]
        if not feats:
            raise InputError("featdist: the backbone returned no feature maps")
        return feats

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Distance per pair: float ``(N, 3, H, W)`` x2 in ``[0, 1]`` -> ``(N,)`` (x's dtype)."""
        check_image_pair(x, y, "featdist")
        n = x.shape[0]
        feats = self._features(torch.cat([x, y], dim=0))
        total = torch.zeros(n, dtype=torch.float64, device=x.device)
        for f in feats:
            if f.ndim < 2 or f.shape[0] != 2 * n:
                raise InputError(f"featdist: feature map {tuple(f.shape)} for batch {2 * n}")
            f = f.to(torch.float64).flatten(2) if f.ndim > 2 else f.to(torch.float64).unsqueeze(2)
            f = f / (f.norm(dim=1, keepdim=True) + self.eps)  # (2N, C, P) unit vectors
            total = total + (f[:n] - f[n:]).pow(2).sum(dim=1).mean(dim=1)
        return total.to(x.dtype)
