"""Official LPIPS (Zhang et al. 2018) through the optional ``lpips`` package, when usable.

LPIPS needs the ``lpips`` package (its learned linear weights ship inside it) *and*
torchvision's ImageNet-pretrained backbone weights in the torch hub cache (``lpips``
downloads them otherwise). :func:`lpips_available` checks all of that without importing
anything unless every file is there, and says why not; importing this module never
imports ``lpips`` or ``torchvision``. Where LPIPS is unavailable, use
:class:`semcom.metrics.FeatureDistance` (a different, unweighted metric).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from semcom.errors import InputError, SemcomError
from semcom.metrics._check import check_image_pair

#: torchvision's checkpoint file names of the backbones LPIPS can use.
BACKBONE_WEIGHTS: dict[str, str] = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


@dataclass(frozen=True)
class Availability:
    """Whether an optional metric can run here; falsy when not, with the ``reason``."""

    available: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.available


def lpips_available(net: str = "alex") -> Availability:
    """Check that LPIPS with backbone ``net`` ("alex", "vgg", "squeeze") can run offline.

    Never raises for an environment problem: returns ``Availability(False, reason)``.
    """
    if net not in BACKBONE_WEIGHTS:
        raise InputError(f"lpips: net must be one of {sorted(BACKBONE_WEIGHTS)}, got {net!r}")
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        return Availability(False, "the optional 'lpips' package is not installed")
    lin = Path(spec.origin).parent / "weights" / "v0.1" / f"{net}.pth"
    if not lin.is_file():
        return Availability(False, f"lpips linear weights missing: {lin}")
    backbone = Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_WEIGHTS[net]
    if not backbone.is_file():
        return Availability(
            False, f"torchvision's pretrained '{net}' weights are not cached at {backbone}"
        )
    try:
        importlib.import_module("lpips")
    except Exception as e:  # e.g. a torchvision build that does not match torch
        return Availability(False, f"importing lpips failed: {type(e).__name__}: {e}")
    return Availability(True, "")


class LPIPSMetric:
    """LPIPS distance per image pair (lower = more similar); metric name ``lpips[<net>]``.

    Raises :class:`SemcomError` at construction when :func:`lpips_available` is false.
    """

    def __init__(self, net: str = "alex") -> None:
        av = lpips_available(net)
        if not av:
            raise SemcomError(f"LPIPS is unavailable: {av.reason}")
        lpips = importlib.import_module("lpips")
        self.net = net
        self.model = lpips.LPIPS(net=net, verbose=False).eval()

    @property
    def name(self) -> str:
        """Metric key, e.g. ``"lpips[alex]"``."""
        return f"lpips[{self.net}]"

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """float ``(N, 3, H, W)`` x2 in ``[0, 1]`` -> ``(N,)`` LPIPS (x's dtype)."""
        check_image_pair(x, y, "lpips")
        with torch.no_grad():
            d = self.model(x.float(), y.float(), normalize=True)  # [0, 1] -> [-1, 1] inside
        return d.reshape(x.shape[0], -1).mean(dim=1).to(x.dtype)
