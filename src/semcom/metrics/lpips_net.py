"""LPIPS (Zhang et al., CVPR 2018) of our own: the AlexNet / VGG16 trunks and the v0.1
linear heads, in plain torch (no torchvision, no ``lpips`` package).

``LPIPS("alex")`` builds the network with random weights; :meth:`LPIPS.load` reads the
trunk (torchvision layout: ``features.N.weight`` / ``.bias``) and the heads (lpips'
names: ``lin0.model.1.weight`` ...) from safetensors files, checking every key and shape
before a tensor is read. :func:`load_lpips` finds both files in one folder under the
names ``alexnet_features.safetensors`` + ``lpips_v0.1_alex_lin.safetensors`` (``vgg16_``,
``vgg`` for VGG).

Distance of images ``x``, ``y`` float ``(N, 3, H, W)`` in ``[0, 1]``: scaled to ``[-1, 1]``,
normalised with LPIPS' shift and scale, passed through the trunk; at each tap (a ReLU
output) the features are unit-normalised over channels, squared differences weighted by
the head's 1x1 convolution and averaged over space; the distance is the sum over taps,
``float32 (N,)``. Gradients flow (usable as a training loss).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from semcom.errors import InputError

__all__ = ["LPIPS", "NETS", "load_lpips"]

#: LPIPS' input normalisation (ImageNet mean / std applied to ``(x + 1) / 2``).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

# (out channels, kernel, stride, padding) of each conv, "M<k>,<s>" a max pool
_ALEX = [(64, 11, 4, 2), "M3,2", (192, 5, 1, 2), "M3,2", (384, 3, 1, 1), (256, 3, 1, 1),
         (256, 3, 1, 1)]  # fmt: skip
_VGG = [(64, 3, 1, 1), (64, 3, 1, 1), "M2,2", (128, 3, 1, 1), (128, 3, 1, 1), "M2,2",
        (256, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), "M2,2", (512, 3, 1, 1),
        (512, 3, 1, 1), (512, 3, 1, 1), "M2,2", (512, 3, 1, 1), (512, 3, 1, 1),
        (512, 3, 1, 1)]  # fmt: skip

#: The smallest image side each trunk takes (its last tapped layer keeps >= 1 pixel).
MIN_SIDE = {"alex": 31, "vgg": 16}

#: net -> (layer plan, indices in ``features`` of the tapped ReLUs, file names).
NETS: dict[str, tuple[list, tuple[int, ...], tuple[str, str]]] = {
    "alex": (_ALEX, (1, 4, 7, 9, 11), ("alexnet_features.safetensors",
                                       "lpips_v0.1_alex_lin.safetensors")),
    "vgg": (_VGG, (3, 8, 15, 22, 29), ("vgg16_features.safetensors",
                                      "lpips_v0.1_vgg_lin.safetensors")),
}  # fmt: skip


def _trunk(plan: list) -> nn.Sequential:
    """The torchvision-layout ``features``: conv, ReLU (and pools) in index order."""
    layers: list[nn.Module] = []
    c = 3
    for step in plan:
        if isinstance(step, str):
            k, s = (int(v) for v in step[1:].split(","))
            layers.append(nn.MaxPool2d(k, s))
            continue
        out, k, s, p = step
        layers += [nn.Conv2d(c, out, k, s, p), nn.ReLU(inplace=False)]
        c = out
    return nn.Sequential(*layers)


class _Head(nn.Module):
    """lpips' ``NetLinLayer``: ``model.0`` Dropout (identity here), ``model.1`` 1x1 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPS(nn.Module):
    """The LPIPS network for ``net`` (``"alex"`` or ``"vgg"``); see the module docstring.

    Input: ``x``, ``y`` float ``(N, 3, H, W)`` in ``[0, 1]`` (``H, W >= 31`` for AlexNet,
    ``>= 16`` for VGG: :data:`MIN_SIDE`; smaller is an InputError). Output: float32 ``(N,)``.
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in NETS:
            raise InputError(f"LPIPS net must be one of {sorted(NETS)}, got {net!r}")
        plan, taps, _ = NETS[net]
        self.net = net
        self.features = _trunk(plan)
        self.taps = taps
        widths = [self.features[i - 1].out_channels for i in taps]
        for k, c in enumerate(widths):
            self.add_module(f"lin{k}", _Head(c))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _taps(self, x: Tensor) -> list[Tensor]:
        h = (x * 2 - 1 - self.shift) / self.scale
        out = []
        last = max(self.taps)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h)
            if i == last:
                break
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"LPIPS takes two (N, 3, H, W) batches, got {tuple(x.shape)} "
                             f"and {tuple(y.shape)}")  # fmt: skip
        if min(x.shape[-2:]) < MIN_SIDE[self.net]:
            raise InputError(
                f"LPIPS-{self.net} needs images of at least {MIN_SIDE[self.net]} pixels a "
                f"side, got {tuple(x.shape[-2:])}"
            )
        total = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
        for k, (fx, fy) in enumerate(zip(self._taps(x), self._taps(y), strict=True)):
            nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            head = getattr(self, f"lin{k}").model[1]
            total = total + head((nx - ny) ** 2).mean((2, 3)).flatten().float()
        return total

    def load(self, trunk: str | Path, heads: str | Path) -> LPIPS:
        """Read the trunk and head weights (keys and shapes checked first: a wrong file is
        a one-line :class:`~semcom.errors.BitstreamError`); returns ``self``."""
        from semcom.models.tensor_files import load_state_dict_file

        own = self.state_dict()
        feat = {k: v for k, v in own.items() if k.startswith("features.")}
        lin = {k: v for k, v in own.items() if k.startswith("lin")}
        sd_f, _ = load_state_dict_file(trunk, like=feat)
        sd_l, _ = load_state_dict_file(heads, like=lin)
        self.load_state_dict({**sd_f, **sd_l})
        return self


def load_lpips(net: str, folder: str | Path) -> LPIPS:
    """:class:`LPIPS` for ``net`` with the weights in ``folder`` (see the module docstring
    for the file names); InputError naming a missing file."""
    if net not in NETS:
        raise InputError(f"LPIPS net must be one of {sorted(NETS)}, got {net!r}")
    folder = Path(folder)
    names = NETS[net][2]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise InputError(f"lpips-{net}: {folder} has no {', '.join(missing)}")
    return LPIPS(net).load(folder / names[0], folder / names[1])
