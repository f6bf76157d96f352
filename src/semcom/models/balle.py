"""``balle-factorized`` / ``balle-hyperprior``: the standard learned image codecs of Ballé
et al. -- the factorized prior ("End-to-end optimized image compression", ICLR 2017) and
the scale hyperprior ("Variational image compression with a scale hyperprior", ICLR 2018)
-- as the baselines a codec engineer compares a task-trained codec with.

CompressAI (the reference implementation) does not import here: its package imports
torchvision (broken beside this CPU torch) and requires torch-geometric. These are our
own implementations, entropy coded with constriction's range coder, with CompressAI's
layer layout and state-dict key names (``g_a``, ``g_s``, ``h_a``, ``h_s``,
``entropy_bottleneck.matrices.{i}`` / ``biases.{i}`` / ``factors.{i}``,
``gaussian_conditional.scale_table``; GDN ``beta`` / ``gamma``). Differences, on
purpose: no auxiliary quantile loss (symbols are ``round(y)``, not offset by learned
medians), and integer probability tables (``pmf`` buffers) in place of CompressAI's CDF
buffers, so that both ends code with identical tables.

Inputs / outputs (``N``, ``M``: channels; ``s``: the total stride, 16 or 64)
------------------------------------------------------------------------------
* ``forward(x)``: ``x`` float32 ``(B, 3, H, W)`` in ``[0, 1]``, ``H`` and ``W`` multiples of
  :attr:`stride` -> dict ``x_hat`` float32 ``(B, 3, H, W)`` and ``likelihoods`` (``{"y":
  (B, M, H/16, W/16)}``, and ``"z": (B, N, H/64, W/64)`` for the hyperprior), float32 in
  ``(0, 1]``. Training mode adds uniform noise in place of rounding (the paper's proxy);
  eval mode rounds. ``rate_bits(out)`` is ``-sum log2`` of the likelihoods.
* ``compress(x)`` (eval; one image ``(1, 3, H, W)``) -> ``{"strings": [y, (z)], "shape":
  (h, w)}`` of the latent ``y``; ``decompress(strings, shape)`` -> ``{"x_hat": (1, 3, H, W)}``
  in ``[0, 1]``. The CompressAI contract; the ``balle`` scheme wraps it in a message.
* Symbols are clipped to ``[-support, support]`` (default 127) and coded with the channel's
  table (factorized) or the table of the scale-table entry nearest below the predicted
  scale (hyperprior); the hyper-latent ``z`` is coded as the factorized prior codes ``y``.
  :meth:`update` computes the factorized tables from the learned density (training calls
  it at the end; the tables are buffers, so they travel with the weights).

Layers (``conv``: 5x5 stride 2; ``deconv``: its transpose; GDN / IGDN: generalised divisive
normalisation)::

    g_a   conv(3,N) GDN conv(N,N) GDN conv(N,N) GDN conv(N,M)              x -> y
    g_s   deconv(M,N) IGDN deconv(N,N) IGDN deconv(N,N) IGDN deconv(N,3)   y_hat -> x_hat
    h_a   conv3x3 s1(M,N) ReLU conv(N,N) ReLU conv(N,N)                    |y| -> z
    h_s   deconv(N,N) ReLU deconv(N,N) ReLU conv3x3 s1(N,M) ReLU           z_hat -> scales
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.registry import register_model

__all__ = [
    "EntropyBottleneck",
    "FactorizedPrior",
    "GDN",
    "GaussianConditional",
    "ScaleHyperprior",
    "rate_bits",
]

#: Probability resolution of the integer tables (weights sum to about ``2^PMF_BITS``).
PMF_BITS = 20
#: CompressAI's scale table: 64 levels from 0.11 to 256, log spaced.
SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64
LIKELIHOOD_BOUND = 1e-9
MAX_CHANNELS = 1024
MAX_SUPPORT = 4096


class _LowerBound(torch.autograd.Function):
    """``max(x, bound)`` whose gradient still flows where it would push ``x`` up."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, bound: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp(min=bound)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * ((x >= ctx.bound) | (grad < 0)).to(grad.dtype), None


def _lower_bound(x: Tensor, bound: float) -> Tensor:
    return _LowerBound.apply(x, bound)  # type: ignore[no-any-return]


class GDN(nn.Module):
    """Generalised divisive normalisation: ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)``
    (``inverse=True``: multiplied, IGDN). ``beta`` / ``gamma`` are stored reparametrised
    (value = ``param^2 - pedestal``, kept non-negative), as CompressAI stores them.
    Input / output float32 ``(B, C, H, W)``."""

    _PEDESTAL = 2.0**-36

    def __init__(self, channels: int, inverse: bool = False, gamma_init: float = 0.1) -> None:
        super().__init__()
        self.inverse = inverse
        ped = self._PEDESTAL
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + ped))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + ped))

    def forward(self, x: Tensor) -> Tensor:
        ped = self._PEDESTAL
        beta = _lower_bound(self.beta, math.sqrt(1e-6 + ped)) ** 2 - ped
        gamma = _lower_bound(self.gamma, math.sqrt(ped)) ** 2 - ped
        norm = F.conv2d(x * x, gamma[:, :, None, None], beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


def _likelihood_floor(p: Tensor) -> Tensor:
    return _lower_bound(p, LIKELIHOOD_BOUND)


def _int_table(p: np.ndarray) -> np.ndarray:
    """Probabilities float ``(..., L)`` -> integer weights int64 (zeros allowed: the range
    coder's leaky quantiser keeps every symbol codable)."""
    p = np.nan_to_num(np.asarray(p, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    p = np.clip(p, 0.0, None)
    s = p.sum(axis=-1, keepdims=True)
    p = np.where(s > 0, p / np.where(s > 0, s, 1.0), 1.0 / p.shape[-1])
    return np.round(p * (1 << PMF_BITS)).astype(np.int64)


class EntropyBottleneck(nn.Module):
    """The factorized prior's learned density, one per channel (Ballé et al. 2018,
    appendix 6.1): a monotone cumulative ``c(v)`` built of ``len(filters) + 1`` small
    layers; the likelihood of an integer ``v`` is ``c(v + 0.5) - c(v - 0.5)``.

    Input of :meth:`forward`: ``y`` float32 ``(B, C, H, W)``; output ``(y_hat, likelihoods)``
    of the same shape. Buffer ``pmf`` int64 ``(C, 2 support + 1)``: the coding tables
    (:meth:`update`; zeros until then)."""

    def __init__(
        self,
        channels: int,
        support: int = 127,
        filters: tuple[int, ...] = (3, 3, 3, 3),
        init_scale: float = 10.0,
    ) -> None:
        super().__init__()
        self.channels, self.support = channels, support
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        self.register_buffer("pmf", torch.zeros(channels, 2 * support + 1, dtype=torch.int64))

    def logits_cumulative(self, v: Tensor) -> Tensor:
        """``v`` float ``(C, 1, n)`` -> logits of ``c(v)``, ``(C, 1, n)``."""
        for i, matrix in enumerate(self.matrices):
            v = torch.matmul(F.softplus(matrix), v) + self.biases[i]
            if i < len(self.factors):
                v = v + torch.tanh(self.factors[i]) * torch.tanh(v)
        return v

    def likelihood(self, v: Tensor) -> Tensor:
        """Likelihood of the (integer or noisy) values ``v`` ``(C, 1, n)`` -> ``(C, 1, n)``."""
        lower = self.logits_cumulative(v - 0.5)
        upper = self.logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        y_hat = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else torch.round(y)
        b, c, h, w = y_hat.shape
        v = y_hat.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lik = self.likelihood(v).reshape(c, b, h, w).permute(1, 0, 2, 3)
        return y_hat, _likelihood_floor(lik)

    @torch.no_grad()
    def update(self) -> None:
        """Compute ``pmf``: each channel's probabilities of ``-support .. support``, the
        mass beyond the ends folded into the end symbols (what clipping codes)."""
        r = self.support
        v = torch.arange(-r, r + 1, dtype=torch.float32).expand(self.channels, 1, -1)
        p = self.likelihood(v).double()
        edge = torch.tensor([-r - 0.5, r + 0.5]).expand(self.channels, 1, -1)
        tails = torch.sigmoid(self.logits_cumulative(edge).double())
        p[:, 0, 0] += tails[:, 0, 0]  # P(v < -r - 0.5)
        p[:, 0, -1] += 1.0 - tails[:, 0, 1]  # P(v > r + 0.5)
        self.pmf.copy_(torch.from_numpy(_int_table(p[:, 0].numpy())))

    @property
    def ready(self) -> bool:
        """Whether :meth:`update` has filled the tables."""
        return bool((self.pmf.sum(dim=1) > 0).all())

    def tables(self) -> np.ndarray:
        """``pmf`` as float64 for the range coder; InputError unless it is usable."""
        t = self.pmf.cpu().numpy()
        if not self.ready or (t < 0).any():
            raise InputError("the codec's entropy_bottleneck.pmf tables are not set (update())")
        return t.astype(np.float64)


class GaussianConditional(nn.Module):
    """Zero-mean Gaussian likelihoods with predicted scales (the hyperprior's ``y``).

    :meth:`forward`: ``y`` and ``scales`` float32 ``(B, C, H, W)`` -> ``(y_hat, likelihoods)``.
    Buffers ``scale_table`` float32 ``(64,)`` and ``pmf`` int64 ``(64, 2 support + 1)``:
    each scale's integer table (fixed by the formula, built at construction)."""

    def __init__(self, support: int = 127) -> None:
        super().__init__()
        self.support = support
        table = torch.exp(torch.linspace(math.log(SCALES_MIN), math.log(SCALES_MAX), SCALES_LEVELS))
        self.register_buffer("scale_table", table.float())
        self.register_buffer("pmf", self._tables(table.double()))

    def _tables(self, scales: Tensor) -> Tensor:
        r = self.support
        v = torch.arange(-r, r + 1, dtype=torch.float64)
        s = scales[:, None]
        upper = torch.special.ndtr((v + 0.5) / s)
        lower = torch.special.ndtr((v - 0.5) / s)
        upper[:, -1], lower[:, 0] = 1.0, 0.0  # the tails fold into the end symbols
        return torch.from_numpy(_int_table((upper - lower).numpy()))

    def likelihood(self, y_hat: Tensor, scales: Tensor) -> Tensor:
        s = _lower_bound(scales, SCALES_MIN)
        v = torch.abs(y_hat)
        return torch.special.ndtr((0.5 - v) / s) - torch.special.ndtr((-0.5 - v) / s)

    def forward(self, y: Tensor, scales: Tensor) -> tuple[Tensor, Tensor]:
        y_hat = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else torch.round(y)
        return y_hat, _likelihood_floor(self.likelihood(y_hat, scales))

    def index(self, scales: Tensor) -> Tensor:
        """The table entry for each scale: the largest ``scale_table`` value ``<=`` it
        (clamped to the table), int64 of the same shape."""
        idx = torch.searchsorted(self.scale_table, scales.contiguous().float(), right=True) - 1
        return idx.clamp_(0, len(self.scale_table) - 1)

    def tables(self) -> np.ndarray:
        t = self.pmf.cpu().numpy()
        if (
            t.shape != (SCALES_LEVELS, 2 * self.support + 1)
            or (t < 0).any()
            or not (t.sum(axis=1) > 0).all()
        ):
            raise InputError("the codec's gaussian_conditional.pmf tables are broken")
        return t.astype(np.float64)


def rate_bits(out: dict[str, Any]) -> Tensor:
    """``-sum log2`` of a forward's likelihoods (all latents): the ideal rate in bits."""
    return sum((-torch.log2(lik).sum() for lik in out["likelihoods"].values()), torch.zeros(()))


def _conv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def _deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride, padding=k // 2, output_padding=stride - 1)


def _check(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"balle {name} must be an int in [{lo}, {hi}], got {value!r}")
    return value


def _code(symbols: Tensor, tables: np.ndarray, rows: np.ndarray, support: int) -> bytes:
    from semcom.codec.entropy import encode_grouped

    sym = (symbols.clamp(-support, support) + support).reshape(-1).cpu().numpy().astype(np.int64)
    return encode_grouped(sym, rows, tables)


def _decode(data: bytes, tables: np.ndarray, rows: np.ndarray, support: int, what: str) -> Tensor:
    from semcom.codec.entropy import decode_grouped

    return torch.from_numpy(decode_grouped(data, rows, tables, what=what) - support).float()


class FactorizedPrior(nn.Module):
    """Ballé et al. 2017/2018's factorized-prior codec (module docstring).

    Args:
        N: channels of the hidden layers (``1..1024``).
        M: channels of the latent ``y`` (``1..1024``).
        support: symbols are clipped to ``[-support, support]`` (``1..4096``).
    """

    task = "codec"
    stride = 16

    def __init__(self, N: int = 64, M: int = 96, support: int = 127) -> None:  # noqa: N803
        super().__init__()
        N, M = _check("N", N, 1, MAX_CHANNELS), _check("M", M, 1, MAX_CHANNELS)  # noqa: N806
        self.support = _check("support", support, 1, MAX_SUPPORT)
        self.N, self.M = N, M
        self.config: dict[str, Any] = {"N": N, "M": M, "support": support}
        self.g_a = nn.Sequential(
            _conv(3, N), GDN(N), _conv(N, N), GDN(N), _conv(N, N), GDN(N), _conv(N, M)
        )
        self.g_s = nn.Sequential(
            _deconv(M, N), GDN(N, inverse=True), _deconv(N, N), GDN(N, inverse=True),
            _deconv(N, N), GDN(N, inverse=True), _deconv(N, 3),
        )  # fmt: skip
        self._build_prior()

    def _build_prior(self) -> None:
        self.entropy_bottleneck = EntropyBottleneck(self.M, self.support)

    def check_images(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise InputError("balle codecs take float images (B, 3, H, W) in [0, 1]")
        if x.shape[2] % self.stride or x.shape[3] % self.stride:
            raise InputError(
                f"balle: image size {x.shape[2]}x{x.shape[3]} is not a multiple of "
                f"{self.stride} (pad it first)"
            )

    def forward(self, x: Tensor) -> dict[str, Any]:
        self.check_images(x)
        y = self.g_a(x)
        y_hat, lik = self.entropy_bottleneck(y)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": lik}}

    @torch.no_grad()
    def update(self) -> None:
        """Fill the coding tables from the learned densities (after training)."""
        self.entropy_bottleneck.update()

    def latent_shape(self, h: int, w: int) -> tuple[int, int]:
        """Size of ``y`` for an ``h x w`` image (multiples of :attr:`stride`)."""
        return h // 16, w // 16

    def _channel_rows(self, h: int, w: int, channels: int) -> np.ndarray:
        return np.repeat(np.arange(channels), h * w)

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict[str, Any]:
        """One image float ``(1, 3, H, W)`` -> ``{"strings": [y bytes], "shape": (h, w)}``."""
        self.check_images(x)
        y = self.g_a(x)[0]
        h, w = y.shape[-2:]
        t = self.entropy_bottleneck.tables()
        rows = self._channel_rows(h, w, self.M)
        return {"strings": [_code(torch.round(y), t, rows, self.support)], "shape": (h, w)}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape: tuple[int, int]) -> dict[str, Tensor]:
        """Inverse of :meth:`compress` -> ``{"x_hat": float32 (1, 3, 16 h, 16 w)}`` in
        ``[0, 1]``; BitstreamError if a string does not decode."""
        h, w = shape
        t = self.entropy_bottleneck.tables()
        rows = self._channel_rows(h, w, self.M)
        y = _decode(strings[0], t, rows, self.support, "balle y").view(1, self.M, h, w)
        return {"x_hat": self.g_s(y).clamp_(0, 1)}


class ScaleHyperprior(FactorizedPrior):
    """Ballé et al. 2018's scale-hyperprior codec (module docstring); args as
    :class:`FactorizedPrior`."""

    stride = 64

    def _build_prior(self) -> None:
        N, M = self.N, self.M  # noqa: N806
        self.h_a = nn.Sequential(_conv(M, N, 3, 1), nn.ReLU(), _conv(N, N), nn.ReLU(), _conv(N, N))
        self.h_s = nn.Sequential(
            _deconv(N, N), nn.ReLU(), _deconv(N, N), nn.ReLU(), _conv(N, M, 3, 1), nn.ReLU()
        )
        self.entropy_bottleneck = EntropyBottleneck(N, self.support)
        self.gaussian_conditional = GaussianConditional(self.support)

    def forward(self, x: Tensor) -> dict[str, Any]:
        self.check_images(x)
        y = self.g_a(x)
        z_hat, z_lik = self.entropy_bottleneck(self.h_a(torch.abs(y)))
        y_hat, y_lik = self.gaussian_conditional(y, self.h_s(z_hat))
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik, "z": z_lik}}

    def _scale_rows(self, z_hat: Tensor) -> np.ndarray:
        # one image at a time at both ends: the same shapes, so the same floats
        return self.gaussian_conditional.index(self.h_s(z_hat)).reshape(-1).cpu().numpy()

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict[str, Any]:
        """One image ``(1, 3, H, W)`` -> ``{"strings": [y bytes, z bytes], "shape": (h, w)}``
        (``shape``: of ``z``)."""
        self.check_images(x)
        y = self.g_a(x)
        z_hat = torch.round(self.h_a(torch.abs(y))).clamp_(-self.support, self.support)
        h, w = z_hat.shape[-2:]
        tz = self.entropy_bottleneck.tables()
        z_bytes = _code(z_hat[0], tz, self._channel_rows(h, w, self.N), self.support)
        ty = self.gaussian_conditional.tables()
        y_bytes = _code(torch.round(y[0]), ty, self._scale_rows(z_hat), self.support)
        return {"strings": [y_bytes, z_bytes], "shape": (h, w)}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape: tuple[int, int]) -> dict[str, Tensor]:
        h, w = shape
        tz = self.entropy_bottleneck.tables()
        rows = self._channel_rows(h, w, self.N)
        z_hat = _decode(strings[1], tz, rows, self.support, "balle z").view(1, self.N, h, w)
        ty = self.gaussian_conditional.tables()
        rows_y = self._scale_rows(z_hat)
        y = _decode(strings[0], ty, rows_y, self.support, "balle y")
        y = y.view(1, self.M, 4 * h, 4 * w)
        return {"x_hat": self.g_s(y).clamp_(0, 1)}

    def latent_shape(self, h: int, w: int) -> tuple[int, int]:
        """Size of ``z`` for an ``h x w`` image (multiples of :attr:`stride`)."""
        return h // 64, w // 64


@register_model("balle-factorized")
def balle_factorized(**kw: Any) -> FactorizedPrior:
    """:class:`FactorizedPrior` (``N``, ``M``, ``support``)."""
    return FactorizedPrior(**kw)


@register_model("balle-hyperprior")
def balle_hyperprior(**kw: Any) -> ScaleHyperprior:
    """:class:`ScaleHyperprior` (``N``, ``M``, ``support``)."""
    return ScaleHyperprior(**kw)
