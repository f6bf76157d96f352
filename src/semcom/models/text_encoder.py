"""A small transformer text encoder that shows its attention (``text-encoder``).

The receiver's generator reads a caption through it (cross-attention to its outputs),
and the transmitter's attentive orderings rank words by its self-attention, as Nam et
al. rank them by the text encoder of Stable Diffusion.

Input: ``ids`` int64 ``(B, T)`` word ids (:mod:`semcom.text.words`; :data:`PAD` = 0 is
padding, never attended to) and optionally ``positions`` int64 ``(B, T)``: where each
word stands in the *whole* caption. A receiver that holds only some of the words gives
their caption positions, so "small" at place 12 still belongs to the second object
(default: ``0 .. T-1``). Output of :meth:`TextEncoder.forward`: ``hidden`` float32
``(B, T, D)`` (layer-normed) and, with ``attentions=True``, one float32 ``(B, heads, T,
T)`` tensor per layer: row ``i`` is the softmax over the words token ``i`` attends to
(padded columns exactly 0; a padded row is all 0).

State-dict keys (stable): ``embed.weight`` ``(V, D)``, ``pos.weight`` ``(P, D)``,
``layers.<l>.{norm1,norm2}.{weight,bias}``, ``layers.<l>.qkv.{weight,bias}`` ``(3D, D)``,
``layers.<l>.proj.{weight,bias}``, ``layers.<l>.mlp.{0,2}.{weight,bias}``,
``norm.{weight,bias}``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.registry import register_model

__all__ = ["TextEncoder"]


class _Layer(nn.Module):
    """Pre-norm self-attention + MLP block whose attention probabilities are returned."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (a.transpose(1, 2) for a in (q, k, v))  # (B, H, T, d_h)
        logits = (q @ k.transpose(-1, -2)) * (d // self.heads) ** -0.5
        # padded keys get a finite -max (not -inf: an all-padding row stays NaN-free,
        # gradients included), and padded rows are zeroed afterwards
        logits = logits.masked_fill(~keep[:, None, None, :], torch.finfo(logits.dtype).min)
        att = torch.softmax(logits, -1) * keep[:, None, :, None]
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.mlp(self.norm2(x)), att


@register_model("text-encoder")
class TextEncoder(nn.Module):
    """See the module docstring.

    Args:
        vocab_size: ids ``0 .. vocab_size - 1`` (the vocabulary's length).
        dim: width ``D``; heads: attention heads (dividing ``dim``); depth: layers.
        max_positions: longest caption (positions ``0 .. max_positions - 1``).
    """

    def __init__(
        self,
        vocab_size: int = 48,
        dim: int = 96,
        heads: int = 4,
        depth: int = 3,
        max_positions: int = 66,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise InputError(f"text-encoder: heads ({heads}) must divide dim ({dim})")
        if vocab_size < 5 or depth < 1 or max_positions < 2:
            raise InputError("text-encoder: vocab_size >= 5, depth >= 1, max_positions >= 2")
        self.vocab_size, self.dim, self.max_positions = vocab_size, dim, max_positions
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(max_positions, dim)
        self.layers = nn.ModuleList([_Layer(dim, heads, 4 * dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(
        self, ids: Tensor, positions: Tensor | None = None, *, attentions: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        """``(hidden (B, T, D), [attention (B, heads, T, T)] * depth)`` (the list is empty
        unless ``attentions``)."""
        if ids.ndim != 2 or ids.dtype != torch.int64:
            raise InputError(
                f"text-encoder takes int64 (B, T) ids, got {ids.dtype} {tuple(ids.shape)}"
            )
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise InputError(f"word ids must be in 0..{self.vocab_size - 1}")
        if positions is None:
            positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        if positions.shape != ids.shape:
            raise InputError("positions must have the ids' shape")
        top = self.max_positions
        if ids.numel() and (int(positions.min()) < 0 or int(positions.max()) >= top):
            raise InputError(f"positions must be in 0..{self.max_positions - 1}")
        keep = ids != 0
        x = self.embed(ids) + self.pos(positions)
        atts = []
        for layer in self.layers:
            x, att = layer(x, keep)
            if attentions:
                atts.append(att)
        return self.norm(x), atts

    def pool(self, hidden: Tensor, ids: Tensor) -> Tensor:
        """float ``(B, D)``: the mean of ``hidden`` over the non-padding words (zeros for
        an empty caption)."""
        keep = (ids != 0).to(hidden.dtype)[..., None]
        return (hidden * keep).sum(1) / keep.sum(1).clamp_min(1.0)
