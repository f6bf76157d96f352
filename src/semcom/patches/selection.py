"""Patch-selection rules: which image patches a transmitter sends.

Every rule maps a batch of per-patch scores (usually a ViT's CLS attention, see
``semcom.models.vit``) to a boolean keep-mask::

    rule = create_rule("topk:16")
    mask = rule(scores)              # scores: float (N, P)  ->  mask: bool (N, P)
    keep = mask_to_keep(mask)        # int64 (N, K) ascending, for VisionTransformer(keep=...)

Common contract
---------------
* Rows are independent: a row's mask depends only on that row's scores (and, for
  ``random``, on the seed and the row's position -- or its own seed, see :class:`RandomK`).
* Ties are broken deterministically towards the *lower* patch index.
* Every rule keeps at least one patch per row (the receiver always has something to
  classify) and never more than ``P``.
* Scores must be finite and real; the attention rules also require them non-negative.
  They are used as given (attention from semcom's ViT already sums to 1 per row).

Rules and their spec strings (for :func:`create_rule`)
------------------------------------------------------
======================  =====================  ==========================================
spec                    class                  keeps
======================  =====================  ==========================================
``topk:K``              :class:`TopK`          the ``min(K, P)`` highest scores
``random:K[:SEED]``     :class:`RandomK`       ``min(K, P)`` patches uniformly at random
``rate:R``              :class:`Rate`          the ``max(1, floor(R*P + 0.5))`` highest
``threshold:D``         :class:`AttentionThreshold`    every patch with score ``>= D``
``cumsum:D``            :class:`AttentionSumThreshold` highest patches while their
                                               cumulative score stays ``<= D``
``mass:D``              :class:`AttentionMass` the fewest highest patches whose
                                               cumulative score reaches ``D``
======================  =====================  ==========================================

``mass`` is the cumulative-sum rule of Im et al. as defined (the smallest set whose
attention mass reaches ``D``: the patch that crosses ``D`` is kept); ``cumsum`` is the
authors' code's version, which stops before the crossing patch (and would send nothing
when the top patch alone exceeds ``D``; here it keeps that one patch).
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from semcom.errors import InputError

__all__ = [
    "RULES",
    "AttentionMass",
    "AttentionSumThreshold",
    "AttentionThreshold",
    "Rate",
    "RandomK",
    "SelectionRule",
    "TopK",
    "create_rule",
    "mask_to_indices",
    "mask_to_keep",
]

#: Relative slack of the cumulative-sum comparison (float rounding of the running sum).
CUMSUM_TOLERANCE = 1e-6

SeedLike = int | Sequence[int] | Tensor | None


def _check_scores(scores: Tensor, *, nonnegative: bool = False) -> Tensor:
    """Validate a score batch: real float ``(N, P)`` with ``P >= 1`` and finite entries."""
    if not isinstance(scores, Tensor):
        raise InputError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if not scores.is_floating_point():
        raise InputError(f"scores must be a float tensor, got {scores.dtype}")
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise InputError(f"scores must have shape (N, P) with P >= 1, got {tuple(scores.shape)}")
    if scores.numel() and not bool(torch.isfinite(scores).all()):
        raise InputError("scores must be finite (no NaN / inf)")
    if nonnegative and scores.numel() and bool((scores < 0).any()):
        raise InputError("attention scores must be non-negative")
    return scores


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) < 1:
        raise InputError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def _check_unit(name: str, value: object, *, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise InputError(f"{name} must be a number, got {value!r}")
    v = float(value)
    low_ok = v > 0.0 if open_low else v >= 0.0
    if not (math.isfinite(v) and low_ok and v <= 1.0):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise InputError(f"{name} must lie in {interval}, got {value!r}")
    return v


def _order(scores: Tensor) -> Tensor:
    """Patch indices by descending score, ties to the lower index: int64 ``(N, P)``."""
    return torch.sort(scores, dim=1, descending=True, stable=True).indices


def _mask_from_order(order: Tensor, counts: Tensor) -> Tensor:
    """Keep the first ``counts[i]`` entries of ``order[i]``: bool ``(N, P)``."""
    n, p = order.shape
    rank_keep = torch.arange(p, device=order.device).unsqueeze(0) < counts.unsqueeze(1)
    mask = torch.zeros(n, p, dtype=torch.bool, device=order.device)
    return mask.scatter_(1, order, rank_keep)


class SelectionRule(ABC):
    """A patch-selection rule: ``rule(scores, seed=None) -> bool (N, P)`` keep-mask."""

    #: name used in spec strings (``"topk"``, ...).
    name: ClassVar[str]

    @abstractmethod
    def __call__(self, scores: Tensor, seed: SeedLike = None) -> Tensor:
        """Select patches.

        Args:
            scores: float ``(N, P)`` per-patch scores (higher = more important).
            seed: only used by :class:`RandomK`; ignored by the deterministic rules.

        Returns:
            bool ``(N, P)``, ``True`` = send the patch; at least one per row.
        """

    @property
    @abstractmethod
    def spec(self) -> str:
        """The spec string that :func:`create_rule` turns back into this rule."""

    def indices(self, scores: Tensor, seed: SeedLike = None) -> list[Tensor]:
        """Per-row kept patch indices: list of ``N`` int64 1-D tensors, ascending."""
        return mask_to_indices(self(scores, seed))


class _HighestCount(SelectionRule):
    """Keep the :meth:`count` highest-scoring patches of every row (ties: lower index first)."""

    @abstractmethod
    def count(self, num_patches: int) -> int:
        """Patches kept out of ``num_patches``."""

    def __call__(self, scores: Tensor, seed: SeedLike = None) -> Tensor:
        scores = _check_scores(scores)
        n, p = scores.shape
        counts = torch.full((n,), self.count(p), dtype=torch.long, device=scores.device)
        return _mask_from_order(_order(scores), counts)


@dataclass(frozen=True)
class TopK(_HighestCount):
    """Keep the ``min(k, P)`` highest-scoring patches (ties: lower index first)."""

    k: int
    name: ClassVar[str] = "topk"

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", _check_k(self.k))

    def count(self, num_patches: int) -> int:
        """Patches kept out of ``num_patches``."""
        return min(self.k, num_patches)

    @property
    def spec(self) -> str:
        return f"topk:{self.k}"


@dataclass(frozen=True)
class RandomK(SelectionRule):
    """Keep ``min(k, P)`` patches uniformly at random, ignoring the score values.

    Deterministic: row ``i`` of a batch draws from a generator seeded with
    ``numpy.random.SeedSequence([seed, i])``. ``seed`` may also be a sequence / 1-D tensor
    of ``N`` per-row seeds -- then row ``i`` uses ``SeedSequence([seed[i]])`` and its mask
    does not depend on where it sits in the batch. ``seed=None`` at call time uses the
    rule's own ``seed``.
    """

    k: int
    seed: int = 0
    name: ClassVar[str] = "random"

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", _check_k(self.k))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise InputError(f"seed must be a non-negative integer, got {self.seed!r}")
        if int(self.seed) < 0:
            raise InputError(f"seed must be a non-negative integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))

    def _row_entropy(self, n: int, seed: SeedLike) -> list[list[int]]:
        if seed is None:
            seed = self.seed
        if isinstance(seed, Tensor):
            if seed.ndim == 0:
                seed = int(seed)
            elif seed.ndim == 1 and not seed.is_floating_point():
                seed = [int(s) for s in seed.tolist()]
            else:
                raise InputError("seed tensor must be a scalar or 1-D integer tensor")
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            if int(seed) < 0:
                raise InputError(f"seed must be non-negative, got {seed}")
            return [[int(seed), i] for i in range(n)]
        if isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)):
            if len(seed) != n:
                raise InputError(f"need {n} per-row seeds, got {len(seed)}")
            rows = []
            for s in seed:
                if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or int(s) < 0:
                    raise InputError(f"per-row seeds must be non-negative integers, got {s!r}")
                rows.append([int(s)])
            return rows
        raise InputError(f"seed must be an int or a sequence of ints, got {seed!r}")

    def __call__(self, scores: Tensor, seed: SeedLike = None) -> Tensor:
        scores = _check_scores(scores)
        n, p = scores.shape
        k = min(self.k, p)
        mask = torch.zeros(n, p, dtype=torch.bool)
        for i, entropy in enumerate(self._row_entropy(n, seed)):
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
            mask[i, torch.from_numpy(rng.permutation(p)[:k])] = True
        return mask.to(scores.device)

    @property
    def spec(self) -> str:
        return f"random:{self.k}" if self.seed == 0 else f"random:{self.k}:{self.seed}"


@dataclass(frozen=True)
class Rate(_HighestCount):
    """Keep a fraction ``r`` of the patches: top ``k = max(1, floor(r * P + 0.5))``
    (``r * P`` rounded half up)."""

    r: float
    name: ClassVar[str] = "rate"

    def __post_init__(self) -> None:
        object.__setattr__(self, "r", _check_unit("rate r", self.r, open_low=True))

    def count(self, num_patches: int) -> int:
        """Patches kept out of ``num_patches``."""
        return min(num_patches, max(1, math.floor(self.r * num_patches + 0.5)))

    @property
    def spec(self) -> str:
        return f"rate:{self.r!r}"


@dataclass(frozen=True)
class _Threshold(SelectionRule):
    """A rule with one parameter ``delta`` in ``[0, 1]``; spec ``"<name>:<delta>"``."""

    delta: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta", _check_unit(f"{self.name} delta", self.delta))

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.delta!r}"


@dataclass(frozen=True)
class AttentionThreshold(_Threshold):
    """Keep every patch whose score is ``>= delta``; a row with none keeps its single
    highest-scoring patch (lowest index on ties)."""

    name: ClassVar[str] = "threshold"

    def __call__(self, scores: Tensor, seed: SeedLike = None) -> Tensor:
        scores = _check_scores(scores, nonnegative=True)
        mask = scores >= self.delta
        if scores.shape[0]:
            best = _order(scores)[:, :1]
            empty = ~mask.any(dim=1, keepdim=True)
            mask.scatter_(1, best, torch.gather(mask, 1, best) | empty)
        return mask


@dataclass(frozen=True)
class AttentionSumThreshold(_Threshold):
    """Keep the highest-scoring patches while their cumulative score stays within
    ``delta``.

    Sort descending (ties: lower index first) and keep the longest prefix whose running
    sum is ``<= delta`` (with a relative slack of ``CUMSUM_TOLERANCE`` for rounding; sums
    are taken in float64). The patch whose addition would push the sum past ``delta`` is
    **not** included; at least one patch is always kept. With scores summing to 1,
    ``delta = 1`` keeps every patch.
    """

    name: ClassVar[str] = "cumsum"

    def __call__(self, scores: Tensor, seed: SeedLike = None) -> Tensor:
        scores = _check_scores(scores, nonnegative=True)
        order = _order(scores)
        csum = torch.gather(scores, 1, order).double().cumsum(dim=1)
        limit = self.delta + CUMSUM_TOLERANCE * max(self.delta, 1e-300)
        # cumulative sums of non-negative scores are non-decreasing: count the prefix.
        counts = (csum <= limit).sum(dim=1).clamp_min(1)
        return _mask_from_order(order, counts)


@dataclass(frozen=True)
class AttentionMass(_Threshold):
    """Keep the fewest highest-scoring patches whose cumulative score reaches ``delta``.

    Sort descending (ties: lower index first) and keep the shortest prefix whose running
    sum (float64) is ``>= delta`` minus a relative slack of ``CUMSUM_TOLERANCE``; the
    patch that crosses ``delta`` is included. A row whose scores never reach ``delta``
    keeps every patch; ``delta = 0`` keeps the single top patch (at least one is always
    kept).
    """

    name: ClassVar[str] = "mass"

    def __call__(self, scores: Tensor, seed: SeedLike = None) -> Tensor:
        scores = _check_scores(scores, nonnegative=True)
        order = _order(scores)
        csum = torch.gather(scores, 1, order).double().cumsum(dim=1)
        goal = self.delta - CUMSUM_TOLERANCE * max(self.delta, 1e-300)
        # patches before the prefix reaches the goal, plus the crossing one
        counts = ((csum < goal).sum(dim=1) + 1).clamp(1, scores.shape[1])
        return _mask_from_order(order, counts)


#: Spec name -> rule class.
RULES: dict[str, type[SelectionRule]] = {
    cls.name: cls
    for cls in (TopK, RandomK, Rate, AttentionThreshold, AttentionSumThreshold, AttentionMass)
}

_INT = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _parse_int(text: str, what: str, spec: str) -> int:
    if not _INT.fullmatch(text):
        raise InputError(f"bad selection rule {spec!r}: {what} must be an integer, got {text!r}")
    return int(text)


def _parse_float(text: str, what: str, spec: str) -> float:
    if not _FLOAT.fullmatch(text):
        raise InputError(f"bad selection rule {spec!r}: {what} must be a number, got {text!r}")
    return float(text)


def create_rule(spec: str) -> SelectionRule:
    """Parse a rule spec: ``"topk:16"``, ``"random:16"``, ``"random:16:3"`` (seed 3),
    ``"rate:0.25"``, ``"threshold:0.01"``, ``"cumsum:0.9"``, ``"mass:0.9"``.

    Raises:
        InputError: unknown rule, malformed or missing parameter, ``k < 1``, non-integer
            ``k``, ``rate`` outside ``(0, 1]``, threshold ``delta`` outside ``[0, 1]``.
    """
    if not isinstance(spec, str):
        raise InputError(f"selection rule spec must be a string, got {type(spec).__name__}")
    parts = [part.strip() for part in spec.strip().split(":")]
    name, args = parts[0].lower(), parts[1:]
    if name not in RULES:
        raise InputError(f"unknown selection rule {name!r} in {spec!r}; known: {sorted(RULES)}")
    n_args = (1, 2) if name == "random" else (1,)
    if len(args) not in n_args:
        usage = "random:K[:SEED]" if name == "random" else f"{name}:VALUE"
        raise InputError(f"bad selection rule {spec!r}: expected {usage}")
    if name in ("topk", "random"):
        k = _parse_int(args[0], "k", spec)
        if name == "topk":
            return TopK(k)
        seed = _parse_int(args[1], "seed", spec) if len(args) == 2 else 0
        return RandomK(k, seed)
    value = _parse_float(args[0], "the parameter", spec)
    return RULES[name](value)  # type: ignore[call-arg]


def mask_to_indices(mask: Tensor) -> list[Tensor]:
    """bool ``(N, P)`` -> list of ``N`` int64 1-D tensors of kept indices, ascending."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.ndim != 2:
        raise InputError("mask must be a bool tensor of shape (N, P)")
    return [row.nonzero().flatten() for row in mask]


def mask_to_keep(mask: Tensor) -> Tensor:
    """bool ``(N, P)`` with the same count ``K >= 1`` per row -> int64 ``(N, K)`` ascending
    indices (the ``keep`` argument of ``VisionTransformer.forward``).

    Raises:
        InputError: rows keep different numbers of patches (use :func:`mask_to_indices`
            and classify row by row) or a row keeps none.
    """
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.ndim != 2:
        raise InputError("mask must be a bool tensor of shape (N, P)")
    counts = mask.sum(dim=1)
    if mask.shape[0] == 0:
        return torch.zeros(0, 0, dtype=torch.long, device=mask.device)
    k = int(counts[0])
    if k < 1 or bool((counts != k).any()):
        raise InputError(
            f"mask rows keep different or zero patch counts ({counts.tolist()}); "
            "cannot form an (N, K) index tensor"
        )
    # nonzero() lists row-major, so each row's indices come out ascending.
    return mask.nonzero()[:, 1].reshape(mask.shape[0], k)
