"""A small text-to-image diffusion model of our own (``text-diffusion``): the receiver's
generator in the progressive text scheme (Nam et al. use Stable Diffusion v2).

Parts: a :class:`~semcom.models.text_encoder.TextEncoder` reads the words received so
far (ids and their caption positions); a small U-Net predicts the noise of a noisy
image, conditioned on the diffusion time (sinusoidal embedding) and, through
cross-attention at its two coarser resolutions, on the encoder's outputs.

* **Training** (:meth:`TextDiffusion.loss`): DDPM over ``T`` steps of a cosine schedule
  (Nichol & Dhariwal), the network predicting ``v = sqrt(abar) eps - sqrt(1 - abar) x0``
  (Salimans & Ho; ``prediction="v"``, the default: at high noise the target is the image
  itself, so the caption's content is learnt early) or the noise (``"eps"``); its MSE
  optionally min-SNR weighted (Hang et al.). Each caption keeps a random subset of
  its words (each word kept with a probability drawn uniformly per caption; *word
  dropout*), at their caption positions, so any subset yields an image; with
  probability ``p_uncond`` the caption is dropped altogether (the empty caption is the
  unconditional model that classifier-free guidance needs).
* **Sampling** (:meth:`TextDiffusion.generate`): deterministic DDIM (eta = 0) over
  ``steps`` evenly spaced times, with classifier-free guidance ``out = out_u + w (out_c -
  out_u)`` on the network's outputs. The starting noise of each image comes from its own
  ``seed`` (a CPU generator), so an image depends only on its words and seed, not on the batch it is
  generated in: the transmitter's simulation equals the receiver's image.

Shapes: images float32 ``(B, 3, S, S)`` in ``[0, 1]`` (the model works in ``[-1, 1]``),
``S = image_size`` divisible by 4; ids / positions int64 ``(B, L)``.

State-dict keys: ``text.*`` (the text encoder's), ``time.{0,2}.*``, ``inp.*``,
``down.<i>.*``, ``mid.*``, ``up.<i>.*``, ``out.*``; buffers ``alphas_cumprod`` ``(T,)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.registry import register_model
from semcom.models.text_encoder import TextEncoder

__all__ = ["TextDiffusion", "cosine_alphas_cumprod", "drop_words"]


def cosine_alphas_cumprod(steps: int, s: float = 0.008) -> Tensor:
    """float64 ``(steps,)``: the cosine schedule's cumulative signal fraction (clipped so
    that each step's beta stays <= 0.999)."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    betas = (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0)


def drop_words(
    ids: Tensor, positions: Tensor, generator: torch.Generator, p_uncond: float = 0.1
) -> tuple[Tensor, Tensor]:
    """Word dropout of a batch: each row keeps each word with a probability drawn from
    U(0, 1) for that row (all of them dropped with probability ``p_uncond``); dropped
    words become padding (id 0), positions are kept. Returns ``(ids, positions)``."""
    b = ids.shape[0]
    keep_p = torch.rand(b, 1, generator=generator)
    keep = torch.rand(ids.shape, generator=generator) < keep_p
    keep &= torch.rand(b, 1, generator=generator) >= p_uncond
    return torch.where(keep, ids, torch.zeros_like(ids)), positions


def _timestep_embedding(t: Tensor, dim: int) -> Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], -1)


class _Res(nn.Module):
    def __init__(self, cin: int, cout: int, tdim: int) -> None:
        super().__init__()
        self.n1 = nn.GroupNorm(8, cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(tdim, cout)
        self.n2 = nn.GroupNorm(8, cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.c1(F.silu(self.n1(x))) + self.t(temb)[..., None, None]
        h = self.c2(F.silu(self.n2(h)))
        return h + self.skip(x)


class _Cross(nn.Module):
    """Self-attention over the pixels, then cross-attention to the text (pre-norm)."""

    def __init__(self, ch: int, tdim: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(8, ch)
        self.self_attn = nn.MultiheadAttention(ch, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(ch)
        self.cross = nn.MultiheadAttention(ch, heads, kdim=tdim, vdim=tdim, batch_first=True)

    def forward(self, x: Tensor, text: Tensor, pad: Tensor) -> Tensor:
        b, c, h, w = x.shape
        r = x.flatten(2).transpose(1, 2)  # (B, HW, C): the residual stream
        s = self.norm(x).flatten(2).transpose(1, 2)
        r = r + self.self_attn(s, s, s, need_weights=False)[0]
        q = self.norm2(r)
        r = r + self.cross(q, text, text, key_padding_mask=pad, need_weights=False)[0]
        return r.transpose(1, 2).reshape(b, c, h, w)


@register_model("text-diffusion")
class TextDiffusion(nn.Module):
    """See the module docstring.

    Args:
        vocab_size: the vocabulary's length (:func:`semcom.text.words.synthetic_vocabulary`).
        image_size: side ``S`` of the generated images (a multiple of 4).
        widths: U-Net channels at ``S``, ``S/2``, ``S/4`` (multiples of 8).
        text_dim / text_depth / text_heads: the text encoder's width, layers, heads.
        timesteps: ``T`` of the diffusion.
        p_uncond: probability of training on the empty caption (for guidance).
        min_snr: > 0: the loss weighs each image's error by ``min(SNR, min_snr) / SNR``
            (``eps``) or ``min(SNR, min_snr) / (SNR + 1)`` (``v``), Hang et al.'s min-SNR
            weighting. 0 (the default): unweighted. For ``v`` that weighs the image error
            by ``SNR + 1``, so the high-noise steps, where the layout is decided, count
            as much as the others (the noise loss weighs them by ``SNR``, nearly 0); a
            min-SNR weighting would take that back.
        prediction: what the network predicts, ``"v"`` or ``"eps"`` (the noise).
    """

    task = "generate"

    def __init__(
        self,
        vocab_size: int = 48,
        image_size: int = 32,
        widths: Sequence[int] = (32, 64, 96),
        text_dim: int = 96,
        text_depth: int = 3,
        text_heads: int = 4,
        max_positions: int = 66,
        timesteps: int = 1000,
        p_uncond: float = 0.1,
        min_snr: float = 0.0,
        prediction: str = "v",
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) != 3 or any(w < 8 or w % 8 for w in widths):
            raise InputError(f"text-diffusion: widths must be 3 multiples of 8, got {widths}")
        if image_size < 8 or image_size % 4:
            raise InputError(
                f"text-diffusion: image_size must be a multiple of 4, got {image_size}"
            )
        if timesteps < 2 or not 0.0 <= p_uncond < 1.0 or not 0.0 <= min_snr < 1e6:
            raise InputError("text-diffusion: timesteps >= 2, p_uncond in [0, 1) and min_snr >= 0")
        self.image_size, self.timesteps, self.p_uncond = int(image_size), int(timesteps), p_uncond
        self.min_snr = float(min_snr)
        if prediction not in ("v", "eps"):
            raise InputError(f"text-diffusion: prediction must be 'v' or 'eps', got {prediction!r}")
        self.prediction = prediction
        self.text = TextEncoder(vocab_size, text_dim, text_heads, text_depth, max_positions)
        tdim = 4 * widths[0]
        self.tdim0 = widths[0]
        self.time = nn.Sequential(nn.Linear(widths[0], tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        a, b, c = widths
        self.inp = nn.Conv2d(3, a, 3, padding=1)
        self.down = nn.ModuleList(
            [
                _Res(a, a, tdim),
                nn.Conv2d(a, a, 3, stride=2, padding=1),
                _Res(a, b, tdim),
                _Cross(b, text_dim),
                nn.Conv2d(b, b, 3, stride=2, padding=1),
                _Res(b, c, tdim),
                _Cross(c, text_dim),
            ]
        )
        self.mid = nn.ModuleList([_Res(c, c, tdim), _Cross(c, text_dim), _Res(c, c, tdim)])
        self.up = nn.ModuleList(
            [
                _Res(2 * c, c, tdim),
                _Cross(c, text_dim),
                nn.Upsample(scale_factor=2, mode="nearest"),
                _Res(c + b, b, tdim),
                _Cross(b, text_dim),
                nn.Upsample(scale_factor=2, mode="nearest"),
                _Res(b + a, a, tdim),
            ]
        )
        self.out = nn.Sequential(nn.GroupNorm(8, a), nn.SiLU(), nn.Conv2d(a, 3, 3, padding=1))
        nn.init.zeros_(self.out[2].weight)
        nn.init.zeros_(self.out[2].bias)
        self.register_buffer("alphas_cumprod", cosine_alphas_cumprod(timesteps).float())

    # ---------------------------------------------------------------- network
    def encode_text(self, ids: Tensor, positions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(text (B, L, D), padding mask bool (B, L))``; an empty caption (no words,
        ``L = 0`` or all padding) gets one zero token so attention has a key."""
        if ids.shape[1] == 0:
            ids = ids.new_zeros(ids.shape[0], 1)
            positions = None if positions is None else positions.new_zeros(ids.shape[0], 1)
        hidden, _ = self.text(ids, positions)
        pad = ids == 0
        empty = pad.all(1)
        if bool(empty.any()):  # a key no query can ignore: a zero vector
            hidden = hidden.masked_fill(empty[:, None, None], 0.0)
            pad = pad.clone()
            pad[empty, 0] = False
        return hidden, pad

    def split(self, x: Tensor, out: Tensor, abar: Tensor) -> tuple[Tensor, Tensor]:
        """``(eps, x0)`` of noisy images ``x`` from the network's output ``out`` at signal
        fraction ``abar`` (a scalar or ``(B, 1, 1, 1)``), for either ``prediction``."""
        a, b = abar.sqrt(), (1 - abar).sqrt()
        if self.prediction == "v":
            return b * x + a * out, a * x - b * out
        return out, (x - b * out) / a

    def eps(self, x: Tensor, t: Tensor, text: Tensor, pad: Tensor) -> Tensor:
        """The network's output ``(B, 3, S, S)`` (``v`` or the noise, as ``prediction``
        says) for noisy images ``x`` in ``[-1, 1]`` at integer times ``t`` ``(B,)``."""
        temb = self.time(_timestep_embedding(t, self.tdim0))
        h = self.inp(x)
        skips = [h]
        for m in self.down:
            if isinstance(m, _Res):
                h = m(h, temb)
            elif isinstance(m, _Cross):
                h = m(h, text, pad)
            else:
                h = m(h)
            if isinstance(m, _Cross) or m is self.down[0]:
                skips.append(h)
        for m in self.mid:
            h = m(h, temb) if isinstance(m, _Res) else m(h, text, pad)
        skips = skips[1:]  # [after res@S, after cross@S/2, after cross@S/4]
        for m in self.up:
            if isinstance(m, _Res):
                h = m(torch.cat([h, skips.pop()], 1), temb)
            elif isinstance(m, _Cross):
                h = m(h, text, pad)
            else:
                h = m(h)
        return self.out(h)

    # ---------------------------------------------------------------- training
    def loss(
        self, images: Tensor, ids: Tensor, positions: Tensor, generator: torch.Generator
    ) -> Tensor:
        """The training loss (scalar) of a batch: images float ``(B, 3, S, S)`` in
        ``[0, 1]``, their captions' ids and positions ``(B, L)``; word dropout and the
        times and noise drawn from ``generator``."""
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=(self.image_size,) * 2, mode="area")
        ids, positions = drop_words(ids, positions, generator, self.p_uncond)
        x0 = images * 2 - 1
        b = x0.shape[0]
        t = torch.randint(0, self.timesteps, (b,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        abar = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        xt = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        text, pad = self.encode_text(ids, positions)
        v = self.prediction == "v"
        target = abar.sqrt() * noise - (1 - abar).sqrt() * x0 if v else noise
        err = (self.eps(xt, t, text, pad) - target).pow(2).mean((1, 2, 3))
        if self.min_snr > 0:
            snr = abar.flatten() / (1 - abar.flatten()).clamp_min(1e-8)
            err = err * snr.clamp(max=self.min_snr) / (snr + 1 if v else snr.clamp_min(1e-8))
        return err.mean()

    # ---------------------------------------------------------------- sampling
    @torch.no_grad()
    def generate(
        self,
        ids: Tensor,
        positions: Tensor | None = None,
        seeds: Sequence[int] | Tensor | None = None,
        *,
        steps: int = 20,
        guidance: float = 3.0,
    ) -> Tensor:
        """Images float32 ``(B, 3, S, S)`` in ``[0, 1]`` for captions ``ids`` / ``positions``
        ``(B, L)`` (padding 0 = no word there), image ``b`` started from the noise of
        ``seeds[b]`` (default 0 each); DDIM with ``steps`` steps and guidance weight
        ``guidance`` (0: unconditional, 1: no guidance)."""
        if not 1 <= steps <= self.timesteps:
            raise InputError(f"steps must be in 1..{self.timesteps}, got {steps}")
        if not 0.0 <= guidance <= 50.0:
            raise InputError(f"guidance must be in [0, 50], got {guidance}")
        b = ids.shape[0]
        seeds = [0] * b if seeds is None else [int(s) for s in seeds]
        if len(seeds) != b:
            raise InputError(f"{len(seeds)} seeds for {b} captions")
        s = self.image_size
        x = torch.stack(
            [torch.randn(3, s, s, generator=torch.Generator().manual_seed(sd)) for sd in seeds]
        )
        cond, pad = self.encode_text(ids, positions)
        unc, upad = self.encode_text(ids.new_zeros(b, 1))
        times = torch.linspace(self.timesteps - 1, 0, steps).round().long()
        for k, t in enumerate(times.tolist()):
            tt = torch.full((b,), t, dtype=torch.int64)
            if guidance == 1.0:
                e = self.eps(x, tt, cond, pad)
            else:
                L = max(cond.shape[1], unc.shape[1])
                text = torch.cat([F.pad(cond, (0, 0, 0, L - cond.shape[1])),
                                  F.pad(unc, (0, 0, 0, L - unc.shape[1]))])  # fmt: skip
                mask = torch.cat([F.pad(pad, (0, L - pad.shape[1]), value=True),
                                  F.pad(upad, (0, L - upad.shape[1]), value=True)])  # fmt: skip
                e_c, e_u = self.eps(torch.cat([x, x]), torch.cat([tt, tt]), text, mask).chunk(2)
                e = e_u + guidance * (e_c - e_u)
            abar = self.alphas_cumprod[t]
            x0 = self.split(x, e, abar)[1].clamp(-1, 1)
            nxt = times[k + 1].item() if k + 1 < len(times) else None
            abar_n = self.alphas_cumprod[nxt] if nxt is not None else torch.tensor(1.0)
            e = (x - abar.sqrt() * x0) / (1 - abar).sqrt()  # eps consistent with the clamp
            x = abar_n.sqrt() * x0 + (1 - abar_n).sqrt() * e
        return ((x + 1) / 2).clamp(0, 1)
