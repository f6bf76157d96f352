"""``vqvae`` / ``vqvae-res``: a VQ-VAE image codec (van den Oord et al., 2017) whose codebook
indices are entropy coded -- the foundation of GOS-VAE (Chao et al.).

An encoder maps an image to a grid of ``code_dim``-dimensional vectors, each replaced by
its nearest codebook entry; the grid of entry *indices* is what a transmitter sends
(:mod:`semcom.schemes.vqvae`), and the decoder rebuilds the image from the entries.

Inputs / outputs
----------------
* ``x``: float32 ``(N, 3, H, W)`` in ``[0, 1]``, ``H`` and ``W`` multiples of ``r``
  (:class:`~semcom.errors.InputError` otherwise);
* ``encode(x)`` -> indices int64 ``(N, h, w)``, ``h = H / r``, ``w = W / r``, values in
  ``[0, K)``;
* ``decode(indices)`` -> ``x_hat`` float32 ``(N, 3, H, W)`` in ``[0, 1]`` (sigmoid);
* ``forward(x)`` -> dict ``x_hat`` float32 ``(N, 3, H, W)``, ``indices`` int64
  ``(N, h, w)``, ``commit_loss`` float32 scalar (``beta`` included), ``z_e`` float32
  ``(N, D, h, w)`` (encoder output), ``z_q`` float32 ``(N, D, h, w)`` (the quantised
  vectors with straight-through gradients: ``z_e + sg[e - z_e]``) and ``perplexity``
  float32 scalar (of this batch's indices, detached).

Layout (``L = log2 r`` downsampling stages, ``c_i = widths[i]``, ``c = widths[-1]``;
default ``widths = [32, 64, 128][:L]``, ``code_dim = 64``, ``depth = 2``)::

    encoder.down.{i}     4x4 stride-2 conv + ReLU, c_{i-1} -> c_i (c_{-1} = 3)
                                                        (N, c_i, H / 2^(i+1), W / 2^(i+1))
    encoder.blocks.{j}   depth blocks at c channels     (N, c, h, w)
    encoder.out          1x1 conv c -> D                (N, D, h, w)          = z_e
    quantizer            nearest codebook entry         (N, h, w) indices, (N, D, h, w) z_q
    decoder.inp          3x3 conv D -> c                (N, c, h, w)
    decoder.blocks.{j}   depth blocks at c channels     (N, c, h, w)
    decoder.up.{i}       4x4 stride-2 transposed conv + ReLU, c_{L-1-i} -> c_{max(L-2-i, 0)}
    decoder.out          3x3 conv c_0 -> 3, sigmoid     (N, 3, H, W)          = x_hat

A block is, with ``variant="shallow"``, a plain 3x3 conv + ReLU (key ``conv``); with
``variant="residual"`` (``vqvae-res``) the residual block of the VQ-VAE paper,
``x + conv2(ReLU(conv1(ReLU(x))))`` with a 3x3 ``conv1`` and a 1x1 ``conv2``, and the
stack of blocks is followed by a ReLU. There are no normalisation layers: an image's
reconstruction depends on its indices only, never on the batch it is decoded in.

Vector quantiser (``quantizer``), trained without a codebook gradient:

* **assignment**: ``k(i) = argmin_k ||z_e(i) - e_k||^2`` (ties: the lowest index);
* **straight-through** gradient: ``z_q = z_e + sg[e_k - z_e]``, so the decoder's gradient
  reaches the encoder unchanged;
* **commitment loss** ``beta * mean((z_e - sg[e_k])^2)`` (mean over every element of
  ``z_e``; ``beta = 0.25``) pulls the encoder towards its codes. The paper's *codebook*
  loss ``||sg[z_e] - e_k||^2`` is replaced by exponential moving averages (the paper's
  appendix A.1, Razavi et al. 2019): at every training forward, with ``n_k`` vectors and
  their sum ``s_k`` assigned to code ``k`` in the batch (summed over DDP ranks),
  ``N_k <- d N_k + (1 - d) n_k``, ``m_k <- d m_k + (1 - d) s_k`` (decay ``d = 0.99``) and
  ``e_k = m_k / N'_k`` with Laplace-smoothed counts
  ``N'_k = (N_k + eps) / (sum N + K eps) * sum N``. The codebook is therefore a buffer,
  not a parameter: no optimiser touches it;
* **dead-code restarts**: a code no vector was assigned to for ``dead_after``
  consecutive training steps is re-seeded from a random encoder output of the current
  batch (``e_k = m_k = z_e``, ``N_k = 1``). Every code starts out dead, so the first
  training batch seeds the codebook from the data.

The EMA update and the restarts happen in ``train()`` mode only; ``eval()`` forwards
change nothing.

Static prior (``prior``): ``K`` index probabilities for entropy coding, fitted from
training-set index statistics by :meth:`VQVAE.fit_prior` (Laplace-smoothed counts,
``(c_k + alpha) / (sum c + K alpha)``); uniform until fitted. It is part of the state dict,
so it travels with the weights (and their fingerprint): sender and receiver code with the
same table.

Stable state-dict keys::

    encoder.down.{i}.weight, encoder.down.{i}.bias                      i = 0 .. L - 1
    encoder.blocks.{j}.conv.weight, .conv.bias                          (shallow)
    encoder.blocks.{j}.conv1.weight, .conv1.bias, .conv2.weight, .conv2.bias (residual)
    encoder.out.weight, encoder.out.bias
    quantizer.codebook     float32 (K, D)   the codebook e
    quantizer.ema_count    float32 (K,)     N, the EMA of assignment counts
    quantizer.ema_sum      float32 (K, D)   m, the EMA of assigned vector sums
    quantizer.unused       int64   (K,)     training steps since each code was last used
    decoder.inp.weight, decoder.inp.bias
    decoder.blocks.{j}.*   (as the encoder's)
    decoder.up.{i}.weight, decoder.up.{i}.bias                          i = 0 .. L - 1
    decoder.out.weight, decoder.out.bias
    prior.probs            float32 (K,)     the static prior (sums to 1)
    prior.count            float64 ()       indices it was fitted on (0: not fitted, uniform)
    context.*              (context > 0 only) the context-adaptive prior's keys,
                           :mod:`semcom.models.index_context`
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.index_context import MAX_HIDDEN, IndexContext
from semcom.models.registry import register_model

__all__ = [
    "BETA",
    "DECAY",
    "FACTORS",
    "MAX_CODE_DIM",
    "MAX_DEPTH",
    "MAX_K",
    "MAX_WIDTH",
    "MIN_K",
    "VARIANTS",
    "IndexPrior",
    "VQVAE",
    "VectorQuantizerEMA",
    "index_statistics",
]

#: Downsampling factors ``r`` (``log2 r`` stride-2 stages).
FACTORS = (2, 4, 8)
#: Codebook sizes ``K`` allowed.
MIN_K, MAX_K = 64, 16384
#: Bounds on the other config values (a checkpoint's config is untrusted input).
MAX_CODE_DIM = 1024
MAX_WIDTH = 1024
MAX_DEPTH = 16
MAX_DEAD_AFTER = 1 << 20
VARIANTS = ("shallow", "residual")
#: The paper's commitment weight and a usual EMA decay.
BETA = 0.25
DECAY = 0.99
#: Most elements of one distance matrix (rows x K) in the nearest-code search.
_SEARCH_CHUNK = 1 << 22


def _int(name: str, value: object, lo: int, hi: int) -> int:
    """``value`` as an int in ``[lo, hi]`` (not a bool or a float), else InputError."""
    try:
        if isinstance(value, bool):
            raise TypeError
        v = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InputError(f"vqvae {name} must be an int in {lo}..{hi}, got {value!r}") from None
    if not lo <= v <= hi:
        raise InputError(f"vqvae {name} = {v} is out of range {lo}..{hi}")
    return v


def _float(name: str, value: object, lo: float, hi: float, *, open_lo: bool = False) -> float:
    """``value`` as a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"vqvae {name} must be a number, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and (v > lo if open_lo else v >= lo) and v <= hi):
        where = f"({lo}, {hi}]" if open_lo else f"[{lo}, {hi}]"
        raise InputError(f"vqvae {name} must be in {where}, got {value!r}")
    return v


def index_statistics(counts: Tensor | np.ndarray) -> dict[str, float]:
    """Codebook statistics of an index histogram ``counts`` (``(K,)``, non-negative).

    Returns ``codes_used`` (codes with a count > 0), ``usage`` (``codes_used / K``),
    ``entropy_bits`` (entropy of the empirical index distribution, bits per index),
    ``perplexity`` (``2 ** entropy_bits``) and ``log2_k`` (the bits of a fixed-length
    index, before rounding up).
    """
    c = torch.as_tensor(np.asarray(counts), dtype=torch.float64).flatten()
    k = int(c.numel())
    if k < 1 or bool((c < 0).any()):
        raise InputError("counts must be a non-empty histogram of non-negative values")
    total = float(c.sum())
    used = int((c > 0).sum())
    if total > 0:
        p = c[c > 0] / total
        h = float(-(p * torch.log2(p)).sum())
    else:
        h = 0.0
    return {
        "codes_used": float(used),
        "usage": used / k,
        "entropy_bits": h,
        "perplexity": 2.0**h,
        "log2_k": math.log2(k),
    }


# ----------------------------------------------------------------------------- blocks


class _Plain(nn.Module):
    """3x3 conv + ReLU: (N, c, h, w) -> (N, c, h, w)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv(x))


class _Residual(nn.Module):
    """``x + conv2(ReLU(conv1(ReLU(x))))``, 3x3 then 1x1: (N, c, h, w) -> (N, c, h, w)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class _Blocks(nn.Sequential):
    """``depth`` blocks of one variant (a final ReLU after residual ones)."""

    def __init__(self, c: int, depth: int, variant: str) -> None:
        block = _Plain if variant == "shallow" else _Residual
        super().__init__(*(block(c) for _ in range(depth)))
        self.final_relu = variant == "residual" and depth > 0

    def forward(self, x: Tensor) -> Tensor:
        x = super().forward(x)
        return F.relu(x) if self.final_relu else x


class _Encoder(nn.Module):
    """float ``(N, 3, H, W)`` in ``[0, 1]`` -> ``z_e`` float ``(N, D, H / r, W / r)``."""

    def __init__(self, widths: tuple[int, ...], code_dim: int, depth: int, variant: str):
        super().__init__()
        cins = (3, *widths[:-1])
        self.down = nn.ModuleList(
            nn.Conv2d(a, b, 4, 2, 1) for a, b in zip(cins, widths, strict=True)
        )
        self.blocks = _Blocks(widths[-1], depth, variant)
        self.out = nn.Conv2d(widths[-1], code_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = 2.0 * x - 1.0
        for conv in self.down:
            h = F.relu(conv(h))
        return self.out(self.blocks(h))


class _Decoder(nn.Module):
    """``z_q`` float ``(N, D, h, w)`` -> ``x_hat`` float ``(N, 3, h r, w r)`` in ``[0, 1]``."""

    def __init__(self, widths: tuple[int, ...], code_dim: int, depth: int, variant: str):
        super().__init__()
        c = widths[-1]
        self.inp = nn.Conv2d(code_dim, c, 3, padding=1)
        self.blocks = _Blocks(c, depth, variant)
        rev = widths[::-1]
        outs = (*rev[1:], widths[0])
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(a, b, 4, 2, 1) for a, b in zip(rev, outs, strict=True)
        )
        self.out = nn.Conv2d(widths[0], 3, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.blocks(self.inp(z))
        for conv in self.up:
            h = F.relu(conv(h))
        return torch.sigmoid(self.out(h))


# ---------------------------------------------------------------------- quantiser


class VectorQuantizerEMA(nn.Module):
    """Nearest-codebook quantiser with EMA codebook updates and dead-code restarts (see the
    module docstring).

    Args:
        num_codes: ``K``. code_dim: ``D``.
        decay: EMA decay ``d`` in ``(0, 1)``. eps: Laplace smoothing of the counts.
        dead_after: training steps without an assignment after which a code is restarted.
    """

    def __init__(
        self, num_codes: int, code_dim: int, decay: float, eps: float, dead_after: int
    ) -> None:
        super().__init__()
        self.num_codes, self.code_dim = num_codes, code_dim
        self.decay, self.eps, self.dead_after = decay, eps, dead_after
        codebook = torch.empty(num_codes, code_dim).uniform_(-1.0 / num_codes, 1.0 / num_codes)
        self.register_buffer("codebook", codebook)
        self.register_buffer("ema_count", torch.ones(num_codes))
        self.register_buffer("ema_sum", codebook.clone())
        # every code starts dead: the first training batch seeds the unused ones
        self.register_buffer("unused", torch.full((num_codes,), dead_after, dtype=torch.int64))

    def nearest(self, z: Tensor) -> Tensor:
        """Index of the nearest code of each row: float ``(M, D)`` -> int64 ``(M,)``
        (squared Euclidean distance; ties go to the lower index)."""
        e = self.codebook.to(z.dtype)
        e_sq = e.pow(2).sum(1)
        rows = max(1, _SEARCH_CHUNK // self.num_codes)
        out = []
        for lo in range(0, z.shape[0], rows):
            zc = z[lo : lo + rows]
            d = zc.pow(2).sum(1, keepdim=True) - 2.0 * zc @ e.t() + e_sq
            out.append(d.argmin(dim=1))
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64, device=z.device)

    def lookup(self, indices: Tensor) -> Tensor:
        """Codes of ``indices`` int64 ``(N, h, w)`` -> float32 ``(N, D, h, w)``."""
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def _update(self, flat: Tensor, idx: Tensor) -> None:
        """One EMA step and the restarts, from the batch's vectors ``flat`` float ``(M, D)``
        and their codes ``idx`` int64 ``(M,)``."""
        k = self.num_codes
        flat = flat.float()
        counts = torch.bincount(idx, minlength=k).float()
        sums = torch.zeros(k, self.code_dim, device=flat.device).index_add_(0, idx, flat)
        if _distributed():
            import torch.distributed as dist

            dist.all_reduce(counts)
            dist.all_reduce(sums)
        d = self.decay
        self.ema_count.mul_(d).add_(counts, alpha=1.0 - d)
        self.ema_sum.mul_(d).add_(sums, alpha=1.0 - d)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + k * self.eps) * n
        self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        used = counts > 0
        self.unused.add_(1).masked_fill_(used, 0)
        dead = (self.unused >= self.dead_after).nonzero().flatten()
        if dead.numel() and flat.shape[0]:
            m = flat.shape[0]
            if m >= dead.numel():
                pick = torch.randperm(m, device=flat.device)[: dead.numel()]
            else:
                pick = torch.randint(m, (dead.numel(),), device=flat.device)
            fresh = flat[pick]
            self.codebook[dead] = fresh
            self.ema_sum[dead] = fresh
            self.ema_count[dead] = 1.0
            self.unused[dead] = 0

    def forward(self, z_e: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``z_e`` float ``(N, D, h, w)`` -> ``(z_q straight-through (N, D, h, w), indices
        int64 (N, h, w), commitment error mean ||z_e - sg[e]||^2 (scalar, beta not
        applied))``; in training mode the codebook is then updated."""
        n, dim, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, dim)
        idx = self.nearest(flat.detach())
        e = self.codebook[idx].view(n, h, w, dim).permute(0, 3, 1, 2).to(z_e.dtype)
        commit = F.mse_loss(z_e, e.detach())
        z_q = z_e + (e - z_e).detach()
        if self.training:
            self._update(flat.detach(), idx)
        return z_q, idx.view(n, h, w), commit


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


# -------------------------------------------------------------------------- prior


class IndexPrior(nn.Module):
    """The static prior over ``K`` codebook indices: buffers ``probs`` float32 ``(K,)`` and
    ``count`` float64 ``()`` (indices it was fitted on; 0 = uniform, not fitted)."""

    def __init__(self, num_codes: int) -> None:
        super().__init__()
        self.num_codes = num_codes
        self.register_buffer("probs", torch.full((num_codes,), 1.0 / num_codes))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has set the table (else it is uniform)."""
        return float(self.count) > 0

    @torch.no_grad()
    def fit(self, counts: Tensor, alpha: float = 1.0) -> Tensor:
        """Set ``probs = (counts + alpha) / (sum counts + K alpha)`` from an index histogram
        ``counts`` (``(K,)``, non-negative); returns ``probs``."""
        c = counts.to(torch.float64).flatten()
        if c.numel() != self.num_codes or bool((c < 0).any()):
            raise InputError(f"prior counts must be {self.num_codes} non-negative values")
        alpha = _float("prior alpha", alpha, 0.0, 1e9, open_lo=True)
        p = (c + alpha) / (c.sum() + self.num_codes * alpha)
        self.probs.copy_(p.to(self.probs.dtype))
        self.count.fill_(float(c.sum()))
        return self.probs

    def table(self) -> np.ndarray:
        """``probs`` as float64 ``(K,)`` for the range coder; InputError when the table is
        not a distribution (a checkpoint whose prior is broken)."""
        p = self.probs.detach().to(torch.float64).cpu().numpy()
        if not (np.all(np.isfinite(p)) and np.all(p >= 0) and p.sum() > 0):
            raise InputError("the model's prior.probs is not a probability table")
        return p / p.sum()


# -------------------------------------------------------------------------- model


@register_model("vqvae")
class VQVAE(nn.Module):
    """VQ-VAE image codec; see the module docstring for layout, training and key names.

    Args:
        r: downsampling factor, one of :data:`FACTORS` (``log2 r`` stride-2 stages).
        K: codebook size, ``MIN_K..MAX_K``.
        code_dim: codebook vector size ``D``, ``1..MAX_CODE_DIM``.
        widths: channels after each downsampling stage (``log2 r`` ints in
            ``1..MAX_WIDTH``); ``None``: ``[32, 64, 128][:log2 r]``.
        depth: blocks at the lowest resolution in the encoder and in the decoder,
            ``0..MAX_DEPTH``.
        variant: ``"shallow"`` (plain 3x3 conv blocks) or ``"residual"`` (residual blocks).
        beta: commitment weight (``>= 0``).
        decay: EMA decay of the codebook, in ``(0, 1)``.
        eps: Laplace smoothing of the EMA counts (``> 0``).
        dead_after: training steps without an assignment after which a code is
            re-seeded from the batch, ``1..2**20``.
        context: hidden width of the context-adaptive index prior
            (:mod:`semcom.models.index_context`, submodule ``context``), ``0..1024``;
            0 (default): none, only the static prior.

    Raises:
        InputError: a config value out of these bounds (named in the message).
    """

    task = "codec"

    def __init__(
        self,
        r: int = 4,
        K: int = 512,  # noqa: N803 - the paper's name
        code_dim: int = 64,
        widths: list[int] | tuple[int, ...] | None = None,
        depth: int = 2,
        variant: str = "shallow",
        beta: float = BETA,
        decay: float = DECAY,
        eps: float = 1e-5,
        dead_after: int = 32,
        context: int = 0,
    ) -> None:
        super().__init__()
        r = _int("r", r, 0, 1 << 20)
        if r not in FACTORS:
            raise InputError(f"vqvae r must be one of {FACTORS}, got {r}")
        stages = int(math.log2(r))
        K = _int("K", K, MIN_K, MAX_K)  # noqa: N806
        code_dim = _int("code_dim", code_dim, 1, MAX_CODE_DIM)
        if widths is None:
            widths = [32, 64, 128][:stages]
        if isinstance(widths, (str, bytes)) or not isinstance(widths, (list, tuple)):
            raise InputError(f"vqvae widths must be a list of {stages} ints, got {widths!r}")
        if len(widths) != stages:
            raise InputError(
                f"vqvae widths must be {stages} ints for r={r} (one per stage), got {widths!r}"
            )
        widths = tuple(_int(f"widths[{i}]", w, 1, MAX_WIDTH) for i, w in enumerate(widths))
        depth = _int("depth", depth, 0, MAX_DEPTH)
        if variant not in VARIANTS:
            raise InputError(f"vqvae variant must be one of {VARIANTS}, got {variant!r}")
        self.beta = _float("beta", beta, 0.0, 1e6)
        decay = _float("decay", decay, 0.0, 1.0, open_lo=True)
        if decay >= 1.0:
            raise InputError(f"vqvae decay must be in (0, 1), got {decay!r}")
        eps = _float("eps", eps, 0.0, 1.0, open_lo=True)
        dead_after = _int("dead_after", dead_after, 1, MAX_DEAD_AFTER)
        self.r, self.num_codes, self.code_dim = r, K, code_dim
        self.variant = variant
        self.config: dict[str, Any] = {
            "r": r,
            "K": K,
            "code_dim": code_dim,
            "widths": list(widths),
            "depth": depth,
            "variant": variant,
            "beta": self.beta,
            "decay": decay,
            "eps": eps,
            "dead_after": dead_after,
            "context": _int("context", context, 0, MAX_HIDDEN),
        }
        self.encoder = _Encoder(widths, code_dim, depth, variant)
        self.quantizer = VectorQuantizerEMA(K, code_dim, decay, eps, dead_after)
        self.decoder = _Decoder(widths, code_dim, depth, variant)
        self.prior = IndexPrior(K)
        self.context = IndexContext(K, context) if context else None

    @property
    def K(self) -> int:  # noqa: N802 - the paper's name
        """Codebook size."""
        return self.num_codes

    # ------------------------------------------------------------------ checks
    def _check_images(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputError(f"vqvae expects a float image batch (N, 3, H, W), got {shape}")
        if not x.is_floating_point():
            raise InputError(f"vqvae expects float images in [0, 1], got dtype {x.dtype}")
        h, w = int(x.shape[2]), int(x.shape[3])
        if h < self.r or w < self.r or h % self.r or w % self.r:
            raise InputError(
                f"vqvae with r={self.r}: image size {h}x{w} is not a multiple of {self.r}"
            )

    def check_indices(self, indices: Tensor) -> Tensor:
        """``indices`` as int64 ``(N, h, w)`` on the model's device, values in ``[0, K)``;
        InputError otherwise."""
        if not isinstance(indices, Tensor) or indices.ndim != 3:
            shape = tuple(indices.shape) if isinstance(indices, Tensor) else type(indices).__name__
            raise InputError(f"vqvae indices must be an int tensor (N, h, w), got {shape}")
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise InputError(f"vqvae indices must be integers, got dtype {indices.dtype}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_codes):
            lo, hi = int(indices.min()), int(indices.max())
            raise InputError(f"vqvae indices must lie in [0, {self.num_codes}), got [{lo}, {hi}]")
        return indices.to(device=self.quantizer.codebook.device, dtype=torch.int64)

    # --------------------------------------------------------------- the codec
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Training / analysis pass; see the module docstring for the outputs."""
        self._check_images(x)
        z_e = self.encoder(x)
        z_q, idx, commit = self.quantizer(z_e)
        counts = torch.bincount(idx.flatten(), minlength=self.num_codes).double()
        p = counts[counts > 0] / counts.sum()
        perplexity = torch.exp(-(p * p.log()).sum()).float()
        return {
            "x_hat": self.decoder(z_q),
            "indices": idx,
            "commit_loss": self.beta * commit,
            "z_e": z_e,
            "z_q": z_q,
            "perplexity": perplexity,
        }

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images float ``(N, 3, H, W)`` in ``[0, 1]`` -> indices int64 ``(N, H/r, W/r)``
        (no codebook update, whatever the mode)."""
        self._check_images(x)
        z_e = self.encoder(x)
        n, dim, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, dim)
        return self.quantizer.nearest(flat).view(n, h, w)

    def embed(self, indices: Tensor) -> Tensor:
        """Codebook vectors of ``indices`` int ``(N, h, w)`` -> float32 ``(N, D, h, w)``."""
        return self.quantizer.lookup(self.check_indices(indices))

    @torch.no_grad()
    def decode(self, indices: Tensor) -> Tensor:
        """Indices int ``(N, h, w)`` in ``[0, K)`` -> ``x_hat`` float32 ``(N, 3, h r, w r)``
        in ``[0, 1]``."""
        return self.decoder(self.embed(indices))

    # ------------------------------------------------------------ statistics
    def index_counts(self, indices: Tensor) -> Tensor:
        """Histogram int64 ``(K,)`` of ``indices`` (int, any shape, values in ``[0, K)``)."""
        if not isinstance(indices, Tensor) or indices.is_floating_point():
            raise InputError("indices must be an integer tensor")
        flat = indices.detach().flatten().to(torch.int64).cpu()
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= self.num_codes):
            raise InputError(f"indices must lie in [0, {self.num_codes})")
        return torch.bincount(flat, minlength=self.num_codes)

    def codebook_usage(self, indices: Tensor) -> dict[str, float]:
        """:func:`index_statistics` of ``indices`` (int, any shape): ``codes_used``,
        ``usage`` (fraction of the K codes used), ``entropy_bits`` (empirical index
        entropy, bits per index), ``perplexity`` and ``log2_k``."""
        return index_statistics(self.index_counts(indices))

    def fit_prior(self, indices: Tensor | Iterable[Tensor], alpha: float = 1.0) -> Tensor:
        """Fit the static prior to index statistics: ``indices`` is one int tensor or an
        iterable of them (any shapes, values in ``[0, K)``), e.g. a training set's
        :meth:`encode` outputs batch by batch; the prior becomes the Laplace-smoothed
        frequencies ``(c_k + alpha) / (n + K alpha)``. Returns ``prior.probs`` float32
        ``(K,)``."""
        parts = [indices] if isinstance(indices, Tensor) else indices
        counts = torch.zeros(self.num_codes, dtype=torch.int64)
        for part in parts:
            counts += self.index_counts(part)
        return self.prior.fit(counts, alpha)

    def fit_context(self, grids: Iterable[Tensor], **kw: Any) -> dict[str, float]:
        """Train the context model (:meth:`IndexContext.fit`, keyword arguments passed on)
        on index grids (int ``(N, h, w)`` each, e.g. a training set's :meth:`encode`
        outputs); InputError if the model has none (``context=0``)."""
        if self.context is None:
            raise InputError("this VQ-VAE has no context model (build it with context > 0)")
        return self.context.fit(grids, **kw)

    def bits_per_index(self, indices: Tensor) -> float:
        """Mean ideal code length of ``indices`` under the static prior, in bits
        (``-mean log2 prior[index]``; the range coder spends a few bytes more per message)."""
        counts = self.index_counts(indices).to(torch.float64)
        n = float(counts.sum())
        if n == 0:
            return 0.0
        logp = torch.from_numpy(np.log2(self.prior.table()))
        return float(-(counts * logp).sum() / n)


@register_model("vqvae-res")
def vqvae_res(variant: str = "residual", **kwargs: Any) -> VQVAE:
    """:class:`VQVAE` with residual blocks (``variant="residual"``); same config otherwise."""
    if variant != "residual":
        raise InputError(f"vqvae-res is the residual variant; use vqvae for {variant!r}")
    return VQVAE(variant="residual", **kwargs)


vqvae_res.task = "codec"  # type: ignore[attr-defined]
