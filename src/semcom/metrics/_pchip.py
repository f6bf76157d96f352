"""Piecewise cubic Hermite interpolation (PCHIP, Fritsch-Carlson slopes) and its exact integral.

Shape preserving: on monotonic data the interpolant is monotonic and never overshoots.
Slopes follow the usual recipe (weighted harmonic mean of neighbouring secants inside,
a one-sided three-point estimate at the ends, limited to keep the shape). numpy only.
"""

from __future__ import annotations

import numpy as np


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Knot derivatives, float64 ``(n,)``, for strictly increasing ``x`` ``(n,)``, ``n >= 2``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    h = np.diff(x)
    delta = np.diff(y) / h
    n = x.size
    d = np.zeros(n)
    if n == 2:
        d[:] = delta[0]
        return d
    for k in range(1, n - 1):
        a, b = delta[k - 1], delta[k]
        if a * b > 0:
            w1 = 2 * h[k] + h[k - 1]
            w2 = h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / a + w2 / b)
    d[0] = _end_slope(h[0], h[1], delta[0], delta[1])
    d[-1] = _end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _end_slope(h0: float, h1: float, d0: float, d1: float) -> float:
    """One-sided three-point end slope, limited so the end segment keeps its shape."""
    s = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if np.sign(s) != np.sign(d0):
        return 0.0
    if np.sign(d0) != np.sign(d1) and abs(s) > 3 * abs(d0):
        return 3 * d0
    return float(s)


def _coefficients(x: np.ndarray, y: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment ``c2, c3`` of ``p(s) = y_k + d_k s + c2 s^2 + c3 s^3``, ``s = t - x_k``."""
    h = np.diff(x)
    delta = np.diff(y) / h
    c2 = (3 * delta - 2 * d[:-1] - d[1:]) / h
    c3 = (d[:-1] + d[1:] - 2 * delta) / h**2
    return c2, c3


def pchip_eval(x: np.ndarray, y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Interpolant at ``t`` (clipped to ``[x_0, x_{n-1}]``), float64 shaped like ``t``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d = pchip_slopes(x, y)
    c2, c3 = _coefficients(x, y, d)
    t = np.clip(np.asarray(t, dtype=np.float64), x[0], x[-1])
    k = np.clip(np.searchsorted(x, t, side="right") - 1, 0, x.size - 2)
    s = t - x[k]
    return y[k] + d[k] * s + c2[k] * s**2 + c3[k] * s**3


def pchip_integral(x: np.ndarray, y: np.ndarray, a: float, b: float) -> float:
    """Exact integral of the interpolant over ``[a, b]``, ``x_0 <= a <= b <= x_{n-1}``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d = pchip_slopes(x, y)
    c2, c3 = _coefficients(x, y, d)
    total = 0.0
    for k in range(x.size - 1):
        lo, hi = max(a, x[k]), min(b, x[k + 1])
        if hi <= lo:
            continue

        def prim(s: float, k: int = k) -> float:
            return y[k] * s + d[k] * s**2 / 2 + c2[k] * s**3 / 3 + c3[k] * s**4 / 4

        total += prim(hi - x[k]) - prim(lo - x[k])
    return float(total)
