"""Confidence gates of collaborative inference (Im et al., IEEE IoT-J 2024).

The edge classifier's softmax ``p`` (float ``(N, C)``, rows summing to 1) decides, per
image, whether the edge's own answer stands (*confident*: nothing is sent) or the image
is offloaded to the server. Each gate maps ``p`` to a score and compares it with the
threshold ``eta``:

===============  ===============================  ======================  ============
gate             score                            confident when          eta range
===============  ===============================  ======================  ============
``entropy``      Shannon ``H = -sum p log2 p``    ``H < eta``             ``[0, log2 C]``
``min-entropy``  ``-log2 max p``                  ``-log2 max p < eta``   ``[0, log2 C]``
``margin``       ``p1 - p2`` (top two)            ``p1 - p2 > eta``       ``[0, 1]``
``never``        --                               always (client only)    ignored
``always``       --                               never (every image
                                                  offloaded)              ignored
===============  ===============================  ======================  ============

``0 log 0`` is taken as 0. Both entropies are in bits. Raising ``eta`` makes the
entropy gates keep more images on the edge and the margin gate offload more.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from semcom.errors import InputError

__all__ = ["GATES", "check_eta", "confident", "gate_score"]

#: Gate names, in the order the report lists them.
GATES: tuple[str, ...] = ("entropy", "min-entropy", "margin", "never", "always")


def _check_probs(probs: Tensor) -> Tensor:
    if not isinstance(probs, Tensor) or not probs.is_floating_point() or probs.ndim != 2:
        raise InputError("probs must be a float tensor (N, C) of softmax rows")
    if probs.shape[1] < 1:
        raise InputError("probs needs at least one class")
    return probs.double()


def gate_score(probs: Tensor, gate: str) -> Tensor:
    """The gate's score of each row: float64 ``(N,)`` (NaN for ``never`` / ``always``)."""
    if gate not in GATES:
        raise InputError(f"unknown gate {gate!r}; known: {', '.join(GATES)}")
    p = _check_probs(probs)
    if gate == "entropy":
        return -(p * torch.log2(p.clamp_min(1e-300))).where(p > 0, 0.0).sum(dim=1)
    if gate == "min-entropy":
        return -torch.log2(p.amax(dim=1).clamp_min(1e-300))
    if gate == "margin":
        if p.shape[1] == 1:
            return p[:, 0]
        top = p.topk(2, dim=1).values
        return top[:, 0] - top[:, 1]
    return torch.full((p.shape[0],), math.nan, dtype=torch.float64)


def check_eta(gate: str, eta: float) -> float:
    """``eta`` as a float if it suits ``gate`` (finite, ``>= 0``; ``<= 1`` for
    ``margin``), else InputError."""
    if gate not in GATES:
        raise InputError(f"unknown gate {gate!r}; known: {', '.join(GATES)}")
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not math.isfinite(eta):
        raise InputError(f"gate threshold eta must be a finite number, got {eta!r}")
    if eta < 0 or (gate == "margin" and eta > 1):
        rng = "[0, 1]" if gate == "margin" else ">= 0 (bits)"
        raise InputError(f"gate {gate!r}: eta must be {rng}, got {eta}")
    return float(eta)


def confident(probs: Tensor, gate: str, eta: float) -> Tensor:
    """bool ``(N,)``: True where the edge keeps its own answer (see the module table)."""
    eta = check_eta(gate, eta)
    score = gate_score(probs, gate)
    if gate == "never":
        return torch.ones(score.shape[0], dtype=torch.bool)
    if gate == "always":
        return torch.zeros(score.shape[0], dtype=torch.bool)
    if gate == "margin":
        return score > eta
    return score < eta
