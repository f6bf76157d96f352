"""A context-adaptive prior for VQ-VAE indices: ``p(k | left, up, up-left, up-right)``.

The static prior (:class:`~semcom.models.vqvae.IndexPrior`) codes every index with the
training set's marginal frequencies; neighbouring indices of a natural image are far from
independent, so conditioning on the four causal neighbours of a grid position codes them
in fewer bits. The model is a small MLP over the neighbours' learned embeddings, trained
with cross-entropy on a training set's index grids (:meth:`IndexContext.fit`), and used by
the ``vqvae`` scheme's ``coding=context`` (:func:`encode_grid` / :func:`decode_grid`).

Model (``K`` codes, ``E`` = ``hidden``)::

    c = (left, up, up_left, up_right)      neighbour indices, K where unavailable
    h1 = relu(left[c0] + up[c1] + up_left[c2] + up_right[c3])    (M, E)   embeddings (K+1, E)
    h2 = relu(mid(h1))                                            (M, E)
    logits = out(h2)                                              (M, K)

A neighbour is *unavailable* outside the grid and, with slices of ``slice_rows`` rows
(``slice_rows=0``: the whole grid is one slice), above a slice's first row, so a slice
decodes on its own when another one was lost.

Coding order and determinism
----------------------------
Position ``(i, j)`` depends on ``(i, j-1)``, ``(i-1, j-1)``, ``(i-1, j)`` and
``(i-1, j+1)``, all of which come earlier in the **wavefront** order ``t = 2 i + j``
(ties by ``i``): the decoder predicts every position of one wavefront in one batch, so a
``h x w`` grid takes ``2 (h - 1) + w`` model calls (``h`` when ``w = 1``), not ``h w``.
The range coder needs bit-identical probabilities at both ends, which floating point does
not promise across machines or batch shapes, so coding runs the model in **fixed point**:
weights and activations are integers at scale ``2^FRAC_BITS`` (exact integer arithmetic:
float64 matrix products where every partial sum stays below ``2^53``, else int64), and a
logit ``d`` below the row's maximum maps to the integer weight
``LUT[d >> LUT_SHIFT]``, ``LUT[i] = round(2^30 exp(-i / 2^(FRAC_BITS - LUT_SHIFT)))``.
Training is float32; the fixed-point model costs a fraction of a percent in bits (measured by
:meth:`IndexContext.bits_per_index` against the float model's cross-entropy).

Stable state-dict keys (prefix ``context.`` inside a VQ-VAE)::

    left.weight, up.weight, up_left.weight, up_right.weight   float32 (K + 1, E)
    mid.weight float32 (E, E), mid.bias float32 (E,)
    out.weight float32 (K, E), out.bias float32 (K,)
    count      float64 ()   positions it was fitted on (0: not fitted, unusable)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import BitstreamError, InputError

__all__ = [
    "FRAC_BITS",
    "IndexContext",
    "check_context",
    "context_of",
    "decode_grid",
    "encode_grid",
    "wavefronts",
]

#: Fixed-point fraction bits of the coding-time model.
FRAC_BITS = 12
#: Logit resolution of the weight table: ``2^-(FRAC_BITS - LUT_SHIFT)`` nats.
LUT_SHIFT = 8
_LUT_STEP = 1 << (FRAC_BITS - LUT_SHIFT)  # table entries per nat
_LUT = np.array(
    [round((1 << 30) * math.exp(-i / _LUT_STEP)) for i in range(int(31 * math.log(2) * _LUT_STEP))],
    dtype=np.int64,
)
_NEIGHBOURS = ("left", "up", "up_left", "up_right")
MAX_HIDDEN = 1024


def wavefronts(h: int, w: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The coding order of an ``h x w`` grid: per wavefront ``t = 2 i + j`` (``t`` from 0 to
    ``2 (h - 1) + w - 1``), the rows and columns of its positions, rows ascending."""
    out = []
    for t in range(2 * (h - 1) + w):
        rows = np.arange(max(0, (t - w + 2) // 2), min(h - 1, t // 2) + 1)
        if rows.size:
            out.append((rows, t - 2 * rows))
    return out


def context_of(grid: np.ndarray, k: int, slice_rows: int = 0) -> np.ndarray:
    """The four neighbours of every position of ``grid`` (int ``(h, w)`` in ``[0, k)``):
    int64 ``(h, w, 4)`` in the order ``left, up, up_left, up_right``, ``k`` where
    unavailable (outside the grid, or above the first row of a slice of ``slice_rows``
    rows; 0: one slice)."""
    g = np.asarray(grid, dtype=np.int64)
    h, w = g.shape
    pad = np.full((h + 1, w + 2), k, dtype=np.int64)
    pad[1:, 1:-1] = g
    ctx = np.stack([pad[1:, :-2], pad[:-1, 1:-1], pad[:-1, :-2], pad[:-1, 2:]], axis=-1)
    if slice_rows:
        ctx[0:h:slice_rows, :, 1:] = k  # a slice's first row sees nothing above it
    return ctx


def _context_at(part: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: int) -> np.ndarray:
    """:func:`context_of` of one slice at the positions ``(rows, cols)`` only."""
    h, w = part.shape
    out = np.full((rows.size, 4), k, dtype=np.int64)
    for i, (dr, dc) in enumerate(((0, -1), (-1, 0), (-1, -1), (-1, 1))):
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (c >= 0) & (c < w)
        out[inside, i] = part[r[inside], c[inside]]
    return out


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` of int64 matrices, exactly: through float64 BLAS when every product and
    partial sum is an integer below ``2^53`` in magnitude (then float64 is exact whatever
    the summation order), else numpy's integer matmul."""
    if a.size == 0 or b.size == 0:
        return a @ b
    bound = float(np.abs(a).max()) * float(np.abs(b).max()) * a.shape[1]
    if bound < 2.0**53:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a @ b


class IndexContext(nn.Module):
    """The context model of the module docstring over ``num_codes`` codes.

    Input: neighbour indices int64 ``(M, 4)`` in ``[0, K]`` (``K``: unavailable). Output of
    :meth:`forward`: logits float32 ``(M, K)``; of :meth:`weights`: the fixed-point
    coding weights int64 ``(M, K)`` (what the range coder uses).
    """

    def __init__(self, num_codes: int, hidden: int = 64) -> None:
        super().__init__()
        if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= MAX_HIDDEN:
            raise InputError(
                f"context hidden width must be an int in [1, {MAX_HIDDEN}], got {hidden!r}"
            )
        self.num_codes, self.hidden = int(num_codes), hidden
        for name in _NEIGHBOURS:
            setattr(self, name, nn.Embedding(num_codes + 1, hidden))
        self.mid = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, num_codes)
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self._fixed: dict[str, np.ndarray] | None = None
        self._fixed_key: tuple[int, ...] | None = None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has trained it (an unfitted model cannot code)."""
        return float(self.count) > 0

    def forward(self, ctx: Tensor) -> Tensor:
        """Neighbours int64 ``(M, 4)`` -> logits float32 ``(M, K)``."""
        h = sum(getattr(self, n)(ctx[:, i]) for i, n in enumerate(_NEIGHBOURS))
        return self.out(F.relu(self.mid(F.relu(h))))

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        grids: Iterable[Tensor],
        *,
        steps: int = 1500,
        batch_size: int = 4096,
        lr: float = 3e-3,
        seed: int = 0,
        slice_rows: int = 0,
    ) -> dict[str, float]:
        """Train on index grids (each int ``(N, h, w)`` or ``(h, w)``): cross-entropy of
        every position given its neighbours, Adam, ``steps`` batches of ``batch_size``
        positions drawn with ``seed``. Returns ``train_bits`` (the float model's mean code
        length, bits per index, on all the positions) and ``positions``."""
        ctxs, targets = [], []
        k = self.num_codes
        for g in grids:
            g = g.reshape(-1, *g.shape[-2:]).cpu().numpy()
            for one in g:
                ctxs.append(context_of(one, k, slice_rows).reshape(-1, 4))
                targets.append(one.reshape(-1))
        if not ctxs:
            raise InputError("context fit: no index grids given")
        ctx = torch.from_numpy(np.concatenate(ctxs))
        tgt = torch.from_numpy(np.concatenate(targets).astype(np.int64))
        if int(tgt.min()) < 0 or int(tgt.max()) >= k:
            raise InputError(f"context fit: indices must lie in [0, {k})")
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
        was = self.training
        self.train()
        for _ in range(steps):
            pick = torch.randint(0, tgt.numel(), (min(batch_size, tgt.numel()),), generator=gen)
            loss = F.cross_entropy(self(ctx[pick]), tgt[pick])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        self.train(was)
        with torch.no_grad():
            nats = sum(
                float(
                    F.cross_entropy(
                        self(ctx[lo : lo + 65536]), tgt[lo : lo + 65536], reduction="sum"
                    )
                )
                for lo in range(0, tgt.numel(), 65536)
            )
        self.count.fill_(float(tgt.numel()))
        self._fixed = None
        return {"train_bits": nats / tgt.numel() / math.log(2), "positions": float(tgt.numel())}

    # ------------------------------------------------------------ fixed point
    def _quantised(self) -> dict[str, np.ndarray]:
        key = tuple(p._version for p in self.parameters())  # refresh after any update
        if self._fixed is None or self._fixed_key != key:
            scale = float(1 << FRAC_BITS)

            def q(t: Tensor) -> np.ndarray:
                a = t.detach().double().cpu().numpy() * scale
                if not np.all(np.isfinite(a)) or np.abs(a).max(initial=0.0) > 2.0**24:
                    raise InputError(
                        "the model's context weights are not finite numbers of sane size"
                    )
                return np.round(a).astype(np.int64)

            self._fixed = {n: q(getattr(self, n).weight) for n in _NEIGHBOURS}
            self._fixed.update(
                mid_w=q(self.mid.weight.T),
                mid_b=q(self.mid.bias),
                out_w=q(self.out.weight.T),
                out_b=q(self.out.bias),
            )
            self._fixed_key = key
        return self._fixed

    def weights(self, ctx: np.ndarray) -> np.ndarray:
        """Neighbours int ``(M, 4)`` in ``[0, K]`` -> coding weights int64 ``(M, K)``,
        every entry ``>= 0`` and each row's maximum ``2^30`` (exact integer arithmetic)."""
        f = self._quantised()
        c = np.asarray(ctx, dtype=np.int64)
        h = sum(f[n][c[:, i]] for i, n in enumerate(_NEIGHBOURS))
        h = np.maximum(h, 0)
        h = np.maximum((_exact_matmul(h, f["mid_w"]) >> FRAC_BITS) + f["mid_b"], 0)
        logits = (_exact_matmul(h, f["out_w"]) >> FRAC_BITS) + f["out_b"]
        d = (logits.max(axis=1, keepdims=True) - logits) >> LUT_SHIFT
        return np.where(d < _LUT.size, _LUT[np.minimum(d, _LUT.size - 1)], 0)

    @torch.no_grad()
    def bits_per_index(self, grid: Tensor | np.ndarray, slice_rows: int = 0) -> float:
        """Ideal code length (bits per index) of one or more grids (int ``(..., h, w)``)
        under the fixed-point model -- what :func:`encode_grid` spends, less the range
        coder's few bytes."""
        g = np.asarray(grid.cpu() if isinstance(grid, Tensor) else grid, dtype=np.int64)
        g = g.reshape(-1, *g.shape[-2:])
        bits, n = 0.0, 0
        for one in g:
            ctx = context_of(one, self.num_codes, slice_rows).reshape(-1, 4)
            w = self.weights(ctx).astype(np.float64)
            w[w == 0] = 1.0  # the coder's floor, roughly
            p = w[np.arange(w.shape[0]), one.reshape(-1)] / w.sum(axis=1)
            bits += float(-np.log2(p).sum())
            n += one.size
        return bits / max(n, 1)


def check_context(model: IndexContext | None) -> IndexContext:
    """``model`` if it is a fitted context model; InputError saying what is missing."""
    if model is None or not isinstance(model, IndexContext):
        raise InputError("coding=context needs a VQ-VAE with a context model (context > 0)")
    if not model.fitted:
        raise InputError("the VQ-VAE's context model is not fitted (context.count = 0)")
    return model


def encode_grid(grid: np.ndarray, model: IndexContext, slice_rows: int = 0) -> list[bytes]:
    """Code an index grid (int ``(h, w)`` in ``[0, K)``) with the context model: one byte
    string per slice of ``slice_rows`` rows (0: one for the whole grid), each decodable on
    its own (:func:`decode_grid`)."""
    from semcom.codec.entropy import encode_categorical

    model = check_context(model)
    g = np.asarray(grid, dtype=np.int64)
    h, w = g.shape
    step = slice_rows or h
    ctx = context_of(g, model.num_codes, slice_rows)
    out = []
    for top in range(0, h, step):
        part = g[top : top + step]
        pctx = ctx[top : top + step]
        fronts = wavefronts(*part.shape)
        rows = np.concatenate([r for r, _ in fronts])
        cols = np.concatenate([c for _, c in fronts])
        # exact integer arithmetic: one call for every position gives the decoder's weights
        table = model.weights(pctx[rows, cols]).astype(np.float64)
        out.append(encode_categorical(part[rows, cols], table))
    return out


def decode_grid(
    slices: list[bytes | None],
    model: IndexContext,
    h: int,
    w: int,
    slice_rows: int = 0,
) -> tuple[np.ndarray, list[str | None]]:
    """Inverse of :func:`encode_grid`: the ``h x w`` grid int64 and, per slice, why it did
    not decode (``None``: it did). A slice given as ``None`` (lost) or that fails to
    decode is left at ``-1`` for the caller to conceal; a wrong slice count raises
    :class:`BitstreamError`."""
    from semcom.codec.entropy import decode_chunked

    model = check_context(model)
    k = model.num_codes
    step = slice_rows or h
    count = -(-h // step) if h else 0
    if len(slices) != count:
        raise BitstreamError(f"context-coded indices: {len(slices)} slices, expected {count}")
    grid = np.full((h, w), -1, dtype=np.int64)
    ok: list[str | None] = []
    for s, data in enumerate(slices):
        top = s * step
        rows_here = min(step, h - top)
        if data is None:
            ok.append("lost or damaged")
            continue
        part = np.zeros((rows_here, w), dtype=np.int64)
        fronts = wavefronts(rows_here, w)

        def probs(
            i: int, prev: np.ndarray | None, part: np.ndarray = part, fronts: Any = fronts
        ) -> np.ndarray:
            if prev is not None:
                r, c = fronts[i - 1]
                part[r, c] = prev
            r, c = fronts[i]  # one slice: its top row has no upper context
            return model.weights(_context_at(part, r, c, k)).astype(np.float64)

        try:
            flat = decode_chunked(
                data, [r.size for r, _ in fronts], probs, what="context-coded slice"
            )
        except BitstreamError as exc:
            ok.append(str(exc))
            continue
        r, c = fronts[-1]
        part[r, c] = flat[flat.size - r.size :]
        grid[top : top + rows_here] = part
        ok.append(None)
    return grid, ok
