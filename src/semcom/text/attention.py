"""Word-to-word attention of a text encoder, from its token-level attention.

A text encoder's self-attention is per layer and per head, over *tokens*; the
attentive orderings (:mod:`semcom.text.orderings`) need one matrix over the caption's
*words*. :func:`word_attention` builds it, as follows (Nam et al.'s code instead takes
one head of one layer and ranks tokenizer pieces against whitespace words):

1. average the attention over the chosen layers and heads (default: all of them), giving
   ``A`` ``(T, T)``, row ``i`` = how token ``i`` spreads its attention;
2. drop the special tokens (``<bos>``, ``<eos>``, padding, CLIP's start / end tokens:
   every token whose word index is ``-1``) as queries and as keys, and renormalise each
   remaining row to sum 1, so a sink token that soaks up attention counts for nothing;
3. pool tokens into words: the attention word ``j`` receives from token ``i`` is the
   *sum* over ``j``'s tokens (attention mass adds up), and a word's row is the *mean*
   over its own tokens' rows (each piece speaks for the word equally).

The result ``W`` ``(n_words, n_words)`` is row-stochastic; ``W[i, j]`` is how much word
``i`` attends to word ``j``. A word-level tokenizer (ours) has one token per word, so
step 3 is the identity there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from semcom.errors import InputError

__all__ = ["word_attention"]


def word_attention(
    attentions: Sequence[Tensor],
    token_words: Sequence[int],
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
) -> Tensor:
    """float64 ``(n, n)`` word-to-word attention of one caption (module docstring).

    Args:
        attentions: per layer, float ``(heads, T, T)`` (or ``(1, heads, T, T)``).
        token_words: length ``T``: the word index (``0 .. n-1``) of each token, ``-1``
            for special tokens; word indices must appear in order, each at least once.
        layers / heads: which to average (default all).
    """
    if not attentions:
        raise InputError("word_attention needs the attention of at least one layer")
    mats = [a[0] if a.ndim == 4 else a for a in attentions]
    t = len(token_words)
    if any(m.ndim != 3 or m.shape[-2:] != (t, t) for m in mats):
        shapes = sorted({tuple(m.shape) for m in mats})
        raise InputError(f"attention of shape {shapes} does not fit {t} tokens")
    pick_l = range(len(mats)) if layers is None else list(layers)
    if not pick_l or any(not 0 <= i < len(mats) for i in pick_l):
        raise InputError(f"layers {layers} outside 0..{len(mats) - 1}")
    n_heads = mats[0].shape[0]
    pick_h = list(range(n_heads)) if heads is None else list(heads)
    if not pick_h or any(not 0 <= h < n_heads for h in pick_h):
        raise InputError(f"heads {heads} outside 0..{n_heads - 1}")
    a = torch.stack([mats[i][pick_h].double().mean(0) for i in pick_l]).mean(0)
    tw = torch.as_tensor(list(token_words), dtype=torch.int64)
    words = tw[tw >= 0]
    n = int(words.max()) + 1 if words.numel() else 0
    if n == 0:
        return torch.zeros(0, 0, dtype=torch.float64)
    if not torch.equal(torch.unique_consecutive(words), torch.arange(n)):
        raise InputError("token_words must number the words 0, 1, ... in order")
    real = tw >= 0
    a = a[real][:, real]
    a = a / a.sum(1, keepdim=True).clamp_min(1e-12)
    onehot = torch.nn.functional.one_hot(words, n).double()  # (T', n)
    received = a @ onehot  # (T', n): each token's attention to each word (summed pieces)
    return (onehot.T @ received) / onehot.sum(0)[:, None]  # mean over a word's own tokens
