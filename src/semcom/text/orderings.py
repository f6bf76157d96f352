"""The orders in which the transmitter sends a caption's words (Nam et al., Sec. III).

Every function returns a permutation of ``range(n)``: word positions in the caption, in
sending order.

* :func:`natural_order` -- the caption as written (a baseline);
* :func:`random_order` -- a seeded permutation (a baseline);
* :func:`attentive_order` -- from the text encoder's word-to-word attention ``W``
  (:func:`semcom.text.attention.word_attention`, row ``i`` = what word ``i`` attends
  to). First the word with the most attention overall: the largest column sum of ``W``
  with the diagonal removed (what *other* words give it). Then, repeatedly, among the
  words not sent yet, the one the last word sent attends to most (``most``) or least
  (``least``). Ties go to the earlier word. The paper's reference code reverses the
  order it means; this is the order the paper describes;
* :func:`lowest_distance_order` -- greedy on the receiver's result: at each step the
  transmitter simulates the receiver's image for every word not sent yet (the sent words
  plus that one) and sends the word whose image is closest to the original.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from semcom.errors import InputError

__all__ = [
    "ORDERINGS",
    "attentive_order",
    "lowest_distance_order",
    "natural_order",
    "random_order",
]

#: The orderings by name (what ``order=`` takes in the text scheme).
ORDERINGS: tuple[str, ...] = ("lowest-distance", "most-attentive", "least-attentive",
                              "natural", "random")  # fmt: skip


def natural_order(n: int) -> list[int]:
    """``[0, 1, ..., n-1]``."""
    return list(range(int(n)))


def random_order(n: int, seed: int = 0) -> list[int]:
    """A permutation of ``range(n)`` drawn from ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(int(n), generator=g).tolist()


def attentive_order(w: Tensor, mode: str = "most") -> list[int]:
    """The attentive order of a caption with word-to-word attention ``w`` ``(n, n)``
    (module docstring); ``mode`` is ``"most"`` or ``"least"``."""
    if mode not in ("most", "least"):
        raise InputError(f"attentive order mode must be most or least, got {mode!r}")
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise InputError(f"word attention must be square (n, n), got {tuple(w.shape)}")
    n = w.shape[0]
    if n == 0:
        return []
    w = w.double()
    off = w * (1 - torch.eye(n, dtype=torch.float64))
    overall = off.sum(0)
    first = int(torch.argmax(overall))  # argmax returns the first of equal maxima
    order, left = [first], set(range(n)) - {first}
    while left:
        cand = sorted(left)
        row = w[order[-1], cand]
        k = int(torch.argmax(row)) if mode == "most" else int(torch.argmin(row))
        order.append(cand[k])
        left.discard(cand[k])
    return order


def lowest_distance_order(
    n: int,
    distance: Callable[[Sequence[Sequence[int]]], Sequence[float]],
    *,
    stop_at: float | None = None,
    budget: int | None = None,
) -> tuple[list[int], list[float]]:
    """Greedy lowest-distance order of ``n`` words.

    ``distance(sets)`` gets candidate word sets (lists of caption positions, each the
    words sent so far plus one candidate, in caption order) and returns the distance of
    the receiver's image for each (one batched simulation per step). Returns the order
    and the distance after each word. With ``stop_at``, the search ends as soon as a
    distance reaches it (``<=``), and with ``budget`` after that many words: the
    remaining words are appended in caption order without simulating them (they would
    not be sent).
    """
    order: list[int] = []
    curve: list[float] = []
    left = list(range(int(n)))
    while left:
        done = stop_at is not None and curve and curve[-1] <= stop_at
        if done or (budget is not None and len(order) >= budget):
            order.extend(left)
            break
        sets = [sorted([*order, j]) for j in left]
        d = [float(x) for x in distance(sets)]
        if len(d) != len(sets):
            raise InputError(f"distance() gave {len(d)} values for {len(sets)} candidates")
        k = min(range(len(d)), key=lambda i: (d[i], left[i]))
        order.append(left.pop(k))
        curve.append(d[k])
    return order, curve
