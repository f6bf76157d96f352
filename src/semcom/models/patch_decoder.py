"""``patch-decoder``: rebuild a whole image from the patches an attention-guided
transmitter sent (Mortaheb et al., arXiv 2405.01521).

The transmitter keeps only a fraction ``r`` of the ViT patch grid (the patches with the
highest CLS attention, or a random subset); the receiver places the received patches on
a zero canvas and this small convolutional U-Net fills in the rest. The receiver's
classifier then judges the rebuilt image.

Inputs / output
---------------
* ``sparse``: float32 ``(N, 3, H, W)`` in ``[0, 1]``; received pixels, **zeros** elsewhere.
* ``mask``: float32 ``(N, 1, H, W)``; ``1`` where a pixel was received, ``0`` where it is
  missing (any float in ``[0, 1]``; bool is accepted). :meth:`PatchDecoder.pixel_mask`
  turns a per-patch keep mask ``bool (N, P)`` into this.
* output: float32 ``(N, 3, H, W)`` in ``[0, 1]`` (sigmoid). With
  ``forward(..., paste_received=True)`` the received pixels are passed through exactly:
  ``out = mask * sparse + (1 - mask) * prediction``.

``H`` and ``W`` must be multiples of 4 (two stride-2 stages).

Layout (default ``widths=(16, 48, 128)``, ``bottleneck_dilations=(1, 2, 4)``, about
0.6 M parameters; the full-resolution stage is kept narrow because it dominates the
CPU cost)::

    input        cat[(2 * sparse - 1) * mask, mask]                 (N, 4,  H,   W)
    enc.0        2 x (3x3 conv + norm + ReLU), 4 -> w0              (N, w0, H,   W)
    enc.1        3x3 stride-2 conv, w0 -> w1, then 3x3 conv         (N, w1, H/2, W/2)
    enc.2        3x3 stride-2 conv, w1 -> w2                        (N, w2, H/4, W/4)
    mid.{j}      residual dilated 3x3 conv (dilation d_j), w2 -> w2 (N, w2, H/4, W/4)
    dec.0        2x2 stride-2 transposed conv w2 -> w1, cat enc.1,
                 3x3 conv 2*w1 -> w1                                (N, w1, H/2, W/2)
    dec.1        2x2 stride-2 transposed conv w1 -> w0, cat enc.0,
                 3x3 conv 2*w0 -> w0                                (N, w0, H,   W)
    head         1x1 conv w0 -> 3, sigmoid                          (N, 3,  H,   W)

The dilated residual bottleneck gives a receptive field of about 60 pixels, so a
missing 8x8 patch is filled from the whole neighbourhood, not just its border.

Stable state-dict keys (``norm.*`` are BatchNorm ``weight``/``bias``/``running_mean``/
``running_var``/``num_batches_tracked`` with ``norm="batch"``, ``weight``/``bias`` with
``norm="group"``; with ``norm="none"`` the convs carry a ``bias`` instead)::

    enc.0.conv1.conv.weight, enc.0.conv1.norm.*, enc.0.conv2.conv.weight, enc.0.conv2.norm.*
    enc.1.down.conv.weight,  enc.1.down.norm.*,  enc.1.conv.conv.weight,  enc.1.conv.norm.*
    enc.2.down.conv.weight,  enc.2.down.norm.*
    mid.{j}.conv.weight, mid.{j}.norm.*                                 j = 0 .. len(d) - 1
    dec.{i}.up.weight, dec.{i}.up.bias, dec.{i}.fuse.conv.weight, dec.{i}.fuse.norm.*
                                                                        i = 0, 1
    head.weight, head.bias

Zoo: ``patch-decoder-synth`` (``semcom.models.zoo.load_pretrained``) is this
architecture trained on the synthetic world with random keep rates ``r`` in
``[0.25, 1]`` and a mix of attention (``vit-synth``) and random patch selections.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models._common import ConvNormAct, make_norm
from semcom.models.registry import register_model

__all__ = [
    "MAX_BOTTLENECK",
    "MAX_DILATION",
    "MAX_PATCH_SIZE",
    "MAX_WIDTH",
    "PatchDecoder",
    "keep_mask_to_pixels",
]

#: Bounds on the constructor's config (a checkpoint's config is untrusted input). The
#: widths and the number of bottleneck layers are also checked by the file's tensor
#: shapes and keys; the dilations and ``patch_size`` are not (no tensor depends on them),
#: yet a dilation is the zero padding of its conv at receive time: an unbounded one
#: would allocate ``(H/4 + 2 d)^2`` activations per channel.
MAX_DILATION = 64
MAX_BOTTLENECK = 32
MAX_PATCH_SIZE = 64
MAX_WIDTH = 65536


def _bounded_ints(
    name: str, values: object, lo: int, hi: int, count: int | None = None, scalar: bool = False
) -> tuple[int, ...]:
    """``values`` as a tuple of ints in ``[lo, hi]`` (exactly ``count`` of them when given);
    ``InputError`` naming the offending value otherwise."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise InputError(f"patch-decoder {name} must be a list of ints, got {values!r}")
    if count is not None and len(values) != count:
        raise InputError(f"patch-decoder {name} must be {count} ints, got {values!r}")
    if not values:
        raise InputError(f"patch-decoder {name} must not be empty")
    out = []
    for i, v in enumerate(values):
        where = name if scalar else f"{name}[{i}]"
        try:
            if isinstance(v, bool):
                raise TypeError
            k = operator.index(v)  # ints (also numpy's), not floats or strings
        except TypeError:
            raise InputError(
                f"patch-decoder {where} must be an int in {lo}..{hi}, got {v!r}"
            ) from None
        if not lo <= k <= hi:
            raise InputError(f"patch-decoder {where} = {k} is out of range {lo}..{hi}")
        out.append(k)
    return tuple(out)


def keep_mask_to_pixels(keep: Tensor, size: tuple[int, int], patch_size: int) -> Tensor:
    """Per-patch keep mask -> per-pixel mask.

    Args:
        keep: bool or float ``(N, P)``, patches numbered row-major over the
            ``(H / patch_size, W / patch_size)`` grid (as in ``semcom.patches``).
        size: ``(H, W)`` of the image.
        patch_size: patch side in pixels.

    Returns:
        float32 ``(N, 1, H, W)``: 1 on the pixels of kept patches, 0 elsewhere.
    """
    h, w = int(size[0]), int(size[1])
    if patch_size < 1 or h % patch_size or w % patch_size:
        raise InputError(f"image {h}x{w} is not a multiple of patch size {patch_size}")
    gh, gw = h // patch_size, w // patch_size
    if not isinstance(keep, Tensor) or keep.ndim != 2 or keep.shape[1] != gh * gw:
        shape = tuple(keep.shape) if isinstance(keep, Tensor) else type(keep).__name__
        raise InputError(f"keep must be (N, {gh * gw}) for a {gh}x{gw} grid, got {shape}")
    m = keep.to(torch.float32).reshape(-1, 1, gh, gw)
    return m.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


class _ResDilated(nn.Module):
    """``x + ReLU(norm(dilated 3x3 conv(x)))``: (N, c, h, w) -> (N, c, h, w)."""

    def __init__(self, c: int, dilation: int, norm: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation, bias=norm == "none")
        self.norm = make_norm(norm, c)

    def forward(self, x: Tensor) -> Tensor:
        return x + F.relu(self.norm(self.conv(x)))


class _Enc0(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(cin, cout, norm)
        self.conv2 = ConvNormAct(cout, cout, norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


class _Down(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str, refine: bool) -> None:
        super().__init__()
        self.down = ConvNormAct(cin, cout, norm, stride=2)
        self.conv = ConvNormAct(cout, cout, norm) if refine else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.down(x)
        return x if self.conv is None else self.conv(x)


class _Up(nn.Module):
    """Transposed-conv x2, concatenate the skip, fuse with a 3x3 conv."""

    def __init__(self, cin: int, cskip: int, norm: str) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cskip, 2, stride=2)
        self.fuse = ConvNormAct(2 * cskip, cskip, norm)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.fuse(torch.cat([self.up(x), skip], dim=1))


@register_model("patch-decoder")
class PatchDecoder(nn.Module):
    """Convolutional decoder: sparse patches + mask -> full image; see the module docstring.

    Args:
        widths: channels at full, 1/2 and 1/4 resolution (3 ints in ``1..MAX_WIDTH``).
        bottleneck_dilations: dilation of each residual conv at 1/4 resolution (1 to
            ``MAX_BOTTLENECK`` ints in ``1..MAX_DILATION``).
        norm: ``"batch"`` (default), ``"group"`` or ``"none"``.
        patch_size: the transmitter's patch side in pixels, ``1..MAX_PATCH_SIZE`` (used
            by :meth:`pixel_mask`; the network itself works for any mask).

    Raises:
        InputError: a config value out of these bounds (named in the message).
    """

    task = "reconstruct"

    def __init__(
        self,
        widths: tuple[int, ...] | list[int] = (16, 48, 128),
        bottleneck_dilations: tuple[int, ...] | list[int] = (1, 2, 4),
        norm: str = "batch",
        patch_size: int = 8,
    ) -> None:
        super().__init__()
        widths = _bounded_ints("widths", widths, 1, MAX_WIDTH, count=3)
        dil = _bounded_ints("bottleneck_dilations", bottleneck_dilations, 1, MAX_DILATION)
        if len(dil) > MAX_BOTTLENECK:
            raise InputError(
                f"patch-decoder bottleneck_dilations has {len(dil)} entries, "
                f"at most {MAX_BOTTLENECK} are allowed"
            )
        make_norm(norm, 1)  # validates the name
        (patch_size,) = _bounded_ints("patch_size", [patch_size], 1, MAX_PATCH_SIZE, scalar=True)
        self.patch_size = patch_size
        self.config: dict = {
            "widths": list(widths),
            "bottleneck_dilations": list(dil),
            "norm": norm,
            "patch_size": patch_size,
        }
        w0, w1, w2 = widths
        self.enc = nn.ModuleList(
            [_Enc0(4, w0, norm), _Down(w0, w1, norm, refine=True), _Down(w1, w2, norm, False)]
        )
        self.mid = nn.Sequential(*(_ResDilated(w2, d, norm) for d in dil))
        self.dec = nn.ModuleList([_Up(w2, w1, norm), _Up(w1, w0, norm)])
        self.head = nn.Conv2d(w0, 3, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)

    def pixel_mask(self, keep: Tensor, size: tuple[int, int]) -> Tensor:
        """bool/float ``(N, P)`` patch keep mask -> float32 ``(N, 1, H, W)`` pixel mask
        (``P`` patches of ``self.patch_size`` pixels, row-major)."""
        return keep_mask_to_pixels(keep, size, self.patch_size)

    @staticmethod
    def _check(sparse: Tensor, mask: Tensor) -> Tensor:
        if not isinstance(sparse, Tensor) or sparse.ndim != 4 or sparse.shape[1] != 3:
            shape = tuple(sparse.shape) if isinstance(sparse, Tensor) else type(sparse).__name__
            raise InputError(f"sparse must be a float image batch (N, 3, H, W), got {shape}")
        if not sparse.is_floating_point():
            raise InputError(f"sparse must be float in [0, 1], got dtype {sparse.dtype}")
        n, _, h, w = sparse.shape
        if h % 4 or w % 4:
            raise InputError(f"image size {h}x{w} must be a multiple of 4")
        if not isinstance(mask, Tensor) or tuple(mask.shape) != (n, 1, h, w):
            shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise InputError(f"mask must be (N, 1, H, W) = {(n, 1, h, w)}, got {shape}")
        return mask.to(sparse.dtype)

    def forward(self, sparse: Tensor, mask: Tensor, paste_received: bool = False) -> Tensor:
        """Rebuild the images.

        Args:
            sparse: float ``(N, 3, H, W)`` in ``[0, 1]``, zeros at missing pixels.
            mask: float ``(N, 1, H, W)``, 1 = received.
            paste_received: return ``mask * sparse + (1 - mask) * prediction`` (received
                pixels exactly as received) instead of the network's prediction everywhere.

        Returns:
            float ``(N, 3, H, W)`` in ``[0, 1]`` (``sparse``'s dtype).
        """
        m = self._check(sparse, mask)
        x = torch.cat([(2.0 * sparse - 1.0) * m, m], dim=1)
        e0 = self.enc[0](x)
        e1 = self.enc[1](e0)
        h = self.mid(self.enc[2](e1))
        h = self.dec[0](h, e1)
        h = self.dec[1](h, e0)
        pred = torch.sigmoid(self.head(h))
        if paste_received:
            pred = m * sparse + (1.0 - m) * pred
        return pred

    @torch.no_grad()
    def reconstruct(self, image: Tensor, keep: Tensor, paste_received: bool = True) -> Tensor:
        """Convenience: zero the patches not in ``keep`` and rebuild.

        Args:
            image: float ``(N, 3, H, W)`` in ``[0, 1]`` (the original images).
            keep: bool ``(N, P)`` patch keep mask.
            paste_received: as in :meth:`forward`.

        Returns:
            float ``(N, 3, H, W)`` in ``[0, 1]``.
        """
        m = self.pixel_mask(keep, tuple(image.shape[-2:])).to(image.dtype)
        return self.forward(image * m, m, paste_received=paste_received)
