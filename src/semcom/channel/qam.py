"""Gray-labelled square QAM in plain torch: constellation, mapping, hard demapping.

The labelling is the one of 3GPP TS 38.211 Sec. 5.1 (also used by Sionna): of the
``m`` bits of a symbol, the even-indexed ones (``b0, b2, ...``) select the in-phase
amplitude and the odd-indexed ones (``b1, b3, ...``) the quadrature amplitude, each
axis being a Gray-labelled PAM whose first bit is the sign. The constellation has unit
average energy.
"""

from __future__ import annotations

import math

import torch

from semcom.errors import InputError

__all__ = ["SUPPORTED_BITS", "QAM", "pam_levels"]

SUPPORTED_BITS = (2, 4, 6, 8)


def pam_levels(bits_per_axis: int) -> torch.Tensor:
    """Unnormalised Gray PAM amplitude of every label.

    Input
    -----
    bits_per_axis : int, ``r >= 1``

    Output
    ------
    levels : float64 ``(2**r,)``; ``levels[i]`` is the amplitude (odd integer in
        ``[-(2**r - 1), 2**r - 1]``) of the label whose binary form, MSB first, is ``i``.
    """
    r = bits_per_axis
    labels = torch.arange(2**r, dtype=torch.int64)
    bits = (labels[:, None] >> torch.arange(r - 1, -1, -1)) & 1  # (2**r, r), MSB first
    signs = 1 - 2 * bits.to(torch.float64)
    value = signs[:, r - 1]
    for j in range(r - 2, -1, -1):
        value = signs[:, j] * (2 ** (r - 1 - j) - value)
    return value


class QAM:
    """Square Gray QAM with ``m`` bits per symbol (``m`` in 2, 4, 6, 8).

    Parameters
    ----------
    bits_per_symbol : int
        ``m``; the constellation has ``2**m`` points.
    """

    def __init__(self, bits_per_symbol: int) -> None:
        if bits_per_symbol not in SUPPORTED_BITS:
            raise InputError(f"QAM needs {SUPPORTED_BITS} bits per symbol, got {bits_per_symbol!r}")
        self.m = bits_per_symbol
        r = bits_per_symbol // 2
        self._r = r
        scale = math.sqrt(2.0 * (2**bits_per_symbol - 1) / 3.0)
        levels = pam_levels(r) / scale  # amplitude of each per-axis label
        self._levels = levels.to(torch.float32)
        order = torch.argsort(levels)  # labels sorted by amplitude
        self._sorted_levels = levels[order].to(torch.float32)
        self._sorted_labels = order
        self._weights = 2 ** torch.arange(r - 1, -1, -1)  # MSB-first label weights

    @property
    def points(self) -> torch.Tensor:
        """The constellation: complex64 ``(2**m,)``, point ``i`` carries label ``i`` (MSB first)."""
        idx = torch.arange(2**self.m)
        bits = (idx[:, None] >> torch.arange(self.m - 1, -1, -1)) & 1
        return torch.complex(
            self._levels[self._axis_label(bits[:, 0::2])],
            self._levels[self._axis_label(bits[:, 1::2])],
        )

    def _axis_label(self, bits: torch.Tensor) -> torch.Tensor:
        return (bits.to(torch.int64) * self._weights).sum(-1)

    def map(self, bits: torch.Tensor) -> torch.Tensor:
        """Map bits to symbols.

        Input
        -----
        bits : integer/bool/float tensor ``(S * m,)`` of 0/1

        Output
        ------
        symbols : complex64 ``(S,)``
        """
        if bits.numel() % self.m:
            raise InputError(f"number of bits must be a multiple of {self.m}, got {bits.numel()}")
        b = bits.reshape(-1, self.m)
        return torch.complex(
            self._levels[self._axis_label(b[:, 0::2])], self._levels[self._axis_label(b[:, 1::2])]
        )

    def _decide_axis(self, y: torch.Tensor) -> torch.Tensor:
        """Nearest-amplitude label bits for one axis: ``(S,)`` float -> ``(S, r)`` uint8."""
        edges = (self._sorted_levels[1:] + self._sorted_levels[:-1]) / 2
        label = self._sorted_labels[torch.bucketize(y.contiguous(), edges)]
        return ((label[:, None] >> torch.arange(self._r - 1, -1, -1)) & 1).to(torch.uint8)

    def demap_hard(self, y: torch.Tensor) -> torch.Tensor:
        """Nearest-point (maximum-likelihood for AWGN) hard decisions.

        Input
        -----
        y : complex ``(S,)`` received (equalised) symbols

        Output
        ------
        bits : uint8 ``(S * m,)``
        """
        out = torch.empty(y.shape[0], self.m, dtype=torch.uint8)
        out[:, 0::2] = self._decide_axis(y.real.float())
        out[:, 1::2] = self._decide_axis(y.imag.float())
        return out.reshape(-1)
