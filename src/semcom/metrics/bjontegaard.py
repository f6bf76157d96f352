"""Bjontegaard delta rate / delta metric between two rate-quality curves.

Curve A is the anchor, curve B the test. Each curve is a few ``(rate, metric)`` points
(rate in bytes, bits or bpp -- any unit, as long as both curves use the same one).

* **BD-rate**: the metric axis is the abscissa; ``log(rate)`` is interpolated as a
  function of the metric for each curve, integrated over the *overlapping metric
  interval*, and the mean difference ``Delta = mean(log r_B - log r_A)`` gives
  ``BD-rate = (exp(Delta) - 1) * 100`` percent. Negative: B needs fewer bytes for the same
  quality. (Curve B = curve A with every rate times 0.8 gives exactly -20 %.)
* **BD-metric**: ``log(rate)`` is the abscissa; the mean of ``metric_B - metric_A`` over
  the overlapping log-rate interval, in metric units (for PSNR: BD-PSNR in dB). It is a
  raw difference: positive means B scores higher, which is better only for
  higher-is-better metrics.

Interpolation (``method``): ``"pchip"`` (default; piecewise cubic Hermite, shape
preserving, as in newer BD implementations) or ``"cubic"`` (least-squares cubic
polynomial, the original VCEG-M33 recipe). Both need at least 4 points per curve; with
2 or 3 points on either curve, both fall back to **piecewise-linear** interpolation
(``BDResult.method == "linear"``), which is less accurate.

Inputs: each curve needs >= 2 points, equal-length rate/metric arrays, finite values and
positive rates, otherwise :class:`InputError`. Exact duplicate points are dropped. After
sorting by rate the metric must be strictly increasing (``higher_is_better=True``, e.g.
PSNR, accuracy) or strictly decreasing (``False``, e.g. a distance); a curve that is not,
or metric/rate ranges that do not overlap, give ``NaN`` with a ``reason`` (or
:class:`InputError` with ``strict=True``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from semcom.errors import InputError
from semcom.metrics._pchip import pchip_integral

METHODS = ("pchip", "cubic")
MIN_POINTS = 4


@dataclass(frozen=True)
class BDResult:
    """BD-rate (percent) and BD-metric (metric units) of B vs A; NaN with a ``reason``."""

    bd_rate: float
    bd_metric: float
    method: str
    reason: str = ""


def _curve(rate: Sequence[float], metric: Sequence[float], which: str) -> tuple[np.ndarray, ...]:
    """Validated, de-duplicated points sorted by rate: ``(rate, metric)`` float64."""
    r = np.asarray(rate, dtype=np.float64)
    m = np.asarray(metric, dtype=np.float64)
    if r.ndim != 1 or m.ndim != 1 or r.shape != m.shape:
        raise InputError(f"curve {which}: rate and metric must be 1-D of equal length")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(m))):
        raise InputError(f"curve {which}: rates and metrics must be finite")
    if np.any(r <= 0):
        raise InputError(f"curve {which}: rates must be > 0")
    pts = sorted(set(zip(r.tolist(), m.tolist(), strict=True)))
    if len(pts) < 2:
        raise InputError(f"curve {which}: needs at least 2 distinct points, got {len(pts)}")
    arr = np.array(pts)
    return arr[:, 0], arr[:, 1]


def _monotonic(r: np.ndarray, m: np.ndarray, higher_is_better: bool) -> bool:
    dr, dm = np.diff(r), np.diff(m)
    return bool(np.all(dr > 0) and (np.all(dm > 0) if higher_is_better else np.all(dm < 0)))


def _integral(x: np.ndarray, y: np.ndarray, a: float, b: float, method: str) -> float:
    """Integral over ``[a, b]`` of the curve through ``(x, y)`` (``x`` increasing)."""
    if method == "pchip":
        return pchip_integral(x, y, a, b)
    if method == "cubic":
        p = np.polyint(np.polyfit(x, y, 3))
        return float(np.polyval(p, b) - np.polyval(p, a))
    inner = x[(x > a) & (x < b)]
    t = np.concatenate([[a], inner, [b]])
    v = np.interp(t, x, y)
    return float(np.sum((v[1:] + v[:-1]) * np.diff(t)) / 2)


def _mean_gap(
    xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray, method: str
) -> tuple[float, str]:
    """Mean of ``y_B - y_A`` over the overlap of the x ranges, or ``(nan, reason)``."""
    oa, ob = np.argsort(xa), np.argsort(xb)
    xa, ya, xb, yb = xa[oa], ya[oa], xb[ob], yb[ob]
    lo, hi = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if not hi > lo:
        ranges = f"[{xa[0]:g}, {xa[-1]:g}] vs [{xb[0]:g}, {xb[-1]:g}]"
        return math.nan, f"ranges do not overlap ({ranges})"
    gap = (_integral(xb, yb, lo, hi, method) - _integral(xa, ya, lo, hi, method)) / (hi - lo)
    return float(gap), ""


def bjontegaard(
    rate_a: Sequence[float],
    metric_a: Sequence[float],
    rate_b: Sequence[float],
    metric_b: Sequence[float],
    *,
    method: str = "pchip",
    higher_is_better: bool = True,
) -> BDResult:
    """BD-rate and BD-metric of curve B (test) against curve A (anchor); see module doc."""
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    ra, ma = _curve(rate_a, metric_a, "A")
    rb, mb = _curve(rate_b, metric_b, "B")
    used = method if min(ra.size, rb.size) >= MIN_POINTS else "linear"
    curves = (("A", ra, ma), ("B", rb, mb))
    bad = [w for w, r, m in curves if not _monotonic(r, m, higher_is_better)]
    if bad:
        trend = "increasing" if higher_is_better else "decreasing"
        why = f"curve {' and '.join(bad)}: metric not strictly {trend} in rate"
        return BDResult(math.nan, math.nan, used, why)
    la, lb = np.log(ra), np.log(rb)
    d_log_rate, why_rate = _mean_gap(ma, la, mb, lb, used)
    d_metric, why_metric = _mean_gap(la, ma, lb, mb, used)
    reasons = [f"metric {why_rate}"] if why_rate else []
    reasons += [f"log-rate {why_metric}"] if why_metric else []
    bd_rate = (math.exp(d_log_rate) - 1) * 100 if not why_rate else math.nan
    return BDResult(bd_rate, d_metric, used, "; ".join(reasons))


def _one_number(attr: str, label: str, doc: str) -> Callable[..., float]:
    """:func:`bjontegaard` reduced to its field ``attr``: the same arguments plus
    ``strict`` (an incomparable pair raises :class:`InputError` with the reason)."""

    def one(*curves: Sequence[float], strict: bool = False, **options: Any) -> float:
        res = bjontegaard(*curves, **options)
        value: float = getattr(res, attr)
        if strict and math.isnan(value):
            raise InputError(f"{label} undefined: {res.reason}")
        return value

    sig = inspect.signature(bjontegaard)
    strict = inspect.Parameter(
        "strict", inspect.Parameter.KEYWORD_ONLY, default=False, annotation="bool"
    )
    one.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[*sig.parameters.values(), strict], return_annotation="float"
    )
    one.__name__ = one.__qualname__ = attr
    one.__doc__ = doc
    return one


bd_rate = _one_number(
    "bd_rate",
    "BD-rate",
    """BD-rate of B vs A in percent (negative = B needs fewer bytes); NaN if not comparable.

    Arguments as :func:`bjontegaard`. With ``strict=True`` an incomparable pair raises
    :class:`InputError` with the reason.
    """,
)

bd_metric = _one_number(
    "bd_metric",
    "BD-metric",
    """Mean ``metric_B - metric_A`` at equal rate (metric units); NaN if not comparable.

    Arguments as :func:`bjontegaard`; ``strict=True`` as for :func:`bd_rate`.
    """,
)
