"""Task BD-rate: Pareto fronts, BD-rate tables against an anchor, best vs best.

Every comparison puts task quality against ``mean_bytes`` and integrates each scheme's
:func:`pareto_front`. Schemes are compared by their role: :func:`bd_rate_table` compares
every scheme but the references with an anchor (default: :func:`default_anchor`, the
first baseline), :func:`best_vs_best` the best ``proposed`` scheme with the best
``baseline`` of each condition; ``reference`` schemes (e.g. raw pixels) are never
compared. Points over their byte budget are left out. When the BD-rate is undefined, a
curve better at every byte count both reach *dominates* the other.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from semcom.errors import InputError
from semcom.experiments.records import PointRecord, higher_is_better
from semcom.experiments.report.format import _round_text, format_bytes, format_metric
from semcom.experiments.report.groups import (
    _by_condition,
    _finite,
    _in_budget,
    _lower,
    _metrics,
    _references,
    _require,
    _roles,
    _unique,
    _with_role,
)

#: A curve: (bytes, metric) points sorted by bytes.
_Front = tuple[list[float], list[float]]

#: The one wording of "the BD-rate is undefined, but one curve is better everywhere".
DOMINATES, DOMINATED = "dominates", "dominated"


def _curve(records: Iterable[PointRecord], metric: str) -> _Front:
    """(bytes, metric) points with finite values and positive bytes, sorted by bytes."""
    pts = sorted(
        (r.mean_bytes, r.metrics[metric])
        for r in records
        if metric in r.metrics and _finite(r.metrics[metric]) and r.mean_bytes > 0
    )
    return [p[0] for p in pts], [p[1] for p in pts]


def pareto_front(xs: Sequence[float], ys: Sequence[float], higher: bool = True) -> _Front:
    """The operational rate-quality curve of points sorted by bytes: keep a point only when
    its quality beats every cheaper point's (strictly). A scheme's best setting at each
    byte budget; what BD-rate integrates (it needs a strictly monotone curve)."""
    keep_x: list[float] = []
    keep_y: list[float] = []
    for x, y in zip(xs, ys, strict=True):
        if not keep_y or (y > keep_y[-1] if higher else y < keep_y[-1]):
            if keep_x and x == keep_x[-1]:
                keep_y[-1] = y
            else:
                keep_x.append(x)
                keep_y.append(y)
    return keep_x, keep_y


def _front(group: Iterable[PointRecord], scheme: str, metric: str, higher: bool) -> _Front:
    """The :func:`pareto_front` of ``scheme``'s (bytes, ``metric``) points in ``group``.

    Points that went over their byte budget (``over_budget > 0``) are left out: they do
    not show what the scheme does at the rate it was asked for."""
    recs = (r for r in group if r.scheme == scheme and _in_budget(r))
    return pareto_front(*_curve(recs, metric), higher)


def _n_over(group: Iterable[PointRecord], scheme: str, metric: str) -> int:
    return sum(
        1
        for r in group
        if r.scheme == scheme and not _in_budget(r) and _finite(r.metrics.get(metric))
    )


def _with_over_note(reason: str, n_over: int) -> str:
    if not n_over:
        return reason
    pts = "1 point" if n_over == 1 else f"{n_over} points"
    return f"{reason}; {pts} over budget left out"


def _try_bd(
    call: Any, ax: list[float], ay: list[float], bx: list[float], by: list[float]
) -> tuple[float | None, str]:
    """``(BD-rate of curve b vs anchor a, "")``, or ``(None, why not)``."""
    try:
        value = call(ax, ay, bx, by)
    except (ValueError, ArithmeticError) as exc:  # InputError is a ValueError
        return None, str(exc).strip() or type(exc).__name__
    return (value, "") if math.isfinite(value) else (None, "curves do not overlap")


@dataclass(frozen=True)
class BDRateEntry:
    """BD-rate of ``scheme`` against ``anchor`` on one condition (percent; None = n/a).

    When the BD-rate is undefined, ``verdict`` is ``"dominates"`` (over the byte counts
    both reach, every anchor point is matched or beaten by a cheaper-or-equal ``scheme``
    point), ``"dominated"`` (the reverse) or ``""``; ``reason`` says why / how.
    """

    metric: str
    condition: str
    scheme: str
    anchor: str
    bd_rate: float | None
    reason: str = ""
    verdict: str = ""

    def display(self) -> str:
        """``-23.4 %``, ``dominates (...)``, ``dominated (...)`` or ``n/a (reason)``."""
        return _verdict_text(self.bd_rate, self.verdict, self.reason)


def _verdict_text(value: float | None, verdict: str, reason: str) -> str:
    """The one wording of a comparison, everywhere (tables, best-vs-best, terminal)."""
    if value is not None:
        return f"{value:+.1f} %"
    head = verdict or "n/a"
    return f"{head} ({reason})" if reason else head


def _points(n: int) -> str:
    return "no points" if n == 0 else "only 1 point" if n == 1 else f"{n} points"


def _bd_caller(bd_rate: Any, higher: bool) -> Any:
    """``f(rate_a, metric_a, rate_b, metric_b) -> float`` around ``semcom.metrics.bd_rate``.

    Uses its ``higher_is_better=`` / ``strict=`` keywords when it has them (``strict``
    turns NaN into an InputError that says why); otherwise negates lower-is-better metrics.
    """
    try:
        params = inspect.signature(bd_rate).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs: dict[str, Any] = {"strict": True} if "strict" in params else {}
    sign = 1.0
    if "higher_is_better" in params:
        kwargs["higher_is_better"] = higher
    elif not higher:
        sign = -1.0

    def call(ra: list[float], ma: list[float], rb: list[float], mb: list[float]) -> float:
        return float(bd_rate(ra, [sign * m for m in ma], rb, [sign * m for m in mb], **kwargs))

    return call


def _setup(
    records: Sequence[PointRecord | Mapping[str, Any]], metric: str
) -> tuple[list[PointRecord], bool, Any]:
    """``(records, higher is better, BD-rate caller)`` for comparisons on ``metric``."""
    from semcom.metrics import bd_rate

    recs = _require(records)
    if metric not in _metrics(recs):
        raise InputError(f"metric {metric!r} is not in the records")
    higher = higher_is_better(metric, _lower(recs))
    return recs, higher, _bd_caller(bd_rate, higher)


def default_anchor(records: Sequence[PointRecord]) -> str:
    """The anchor scheme used when none is given: the first scheme of role ``baseline``
    in record order, else the first one that is not a ``reference``, else the first."""
    roles = _roles(records)
    if not roles:
        raise InputError("no records: cannot choose an anchor scheme")
    for wanted in ("baseline", "proposed"):
        found = [s for s, role in roles.items() if role == wanted]
        if found:
            return found[0]
    return next(iter(roles))


def bd_rate_table(
    records: Sequence[PointRecord | Mapping[str, Any]], metric: str, anchor_scheme: str
) -> list[BDRateEntry]:
    """Task BD-rate (on ``mean_bytes``) of every other scheme vs ``anchor_scheme``, per condition.

    Each curve is first reduced to its :func:`pareto_front` (a setting that costs more
    bytes without improving the metric is never the one to use). Schemes of role
    ``reference`` are never compared (nor can one be the anchor).

    Uses :func:`semcom.metrics.bd_rate` (negative = fewer bytes than the anchor for the
    same task quality). Lower-is-better metrics are negated first. Pairs that cannot be
    compared (too few points, curves that do not overlap, ...) get ``bd_rate=None`` and a
    reason instead of an exception.
    """
    recs = _require(records)
    if anchor_scheme not in {r.scheme for r in recs}:
        raise InputError(f"anchor scheme {anchor_scheme!r} is not in the records")
    references = _references(recs)
    if anchor_scheme in references:
        raise InputError(
            f"anchor scheme {anchor_scheme!r} is a reference (plotted, never compared)"
        )
    recs, higher, call = _setup(recs, metric)
    entries: list[BDRateEntry] = []
    for cond, group in _by_condition(recs).items():
        ref = _front(group, anchor_scheme, metric, higher)
        for scheme in _unique(r.scheme for r in group):
            if scheme == anchor_scheme or scheme in references:
                continue
            front = _front(group, scheme, metric, higher)
            if len(ref[0]) < 2:
                n_over = _n_over(group, anchor_scheme, metric)
                few = _with_over_note(f"anchor has {_points(len(ref[0]))} here", n_over)
            else:
                n_over = _n_over(group, scheme, metric)
                few = f"{scheme} has {_points(len(front[0]))} with this metric"
                few = _with_over_note(few, n_over)
            pair = _Pair(anchor_scheme, ref, scheme, front, metric, higher)
            value, verdict, reason = _compare(call, pair, few)
            entries.append(BDRateEntry(metric, cond, scheme, anchor_scheme, value, reason, verdict))
    return entries


@dataclass(frozen=True)
class _Pair:
    """What one comparison compares: scheme ``name``'s Pareto front against ``ref``'s
    on ``metric`` (``higher``: higher is better)."""

    ref: str
    ref_front: _Front
    name: str
    front: _Front
    metric: str
    higher: bool


def _explain(reason: str, pair: _Pair) -> str:
    """Why there is no BD-rate, in the report's own words, numbers rounded."""
    (rx, ry), (cx, cy) = pair.ref_front, pair.front
    ref, name, metric = pair.ref, pair.name, pair.metric
    if rx and cx:

        def span(lo: float, hi: float) -> str:
            return f"{format_metric(metric, lo)}–{format_metric(metric, hi)}"

        if not min(max(ry), max(cy)) > max(min(ry), min(cy)):
            return (
                f"quality ranges do not overlap: {name} {span(min(cy), max(cy))}, "
                f"{ref} {span(min(ry), max(ry))}"
            )
        if not min(max(rx), max(cx)) > max(min(rx), min(cx)):
            return (
                f"byte ranges do not overlap: {name} {format_bytes(min(cx))}–"
                f"{format_bytes(max(cx))} B, {ref} {format_bytes(min(rx))}–"
                f"{format_bytes(max(rx))} B"
            )
    return _round_text(reason.removeprefix("BD-rate undefined: "))


def _dominance(pair: _Pair) -> tuple[str, str]:
    """``("dominates" | "dominated" | "", detail)`` of curve ``name`` against ``ref``."""
    (rx, ry), (cx, cy) = pair.ref_front, pair.front
    ref, name, metric, higher = pair.ref, pair.name, pair.metric, pair.higher

    def q(v: float) -> str:
        return format_metric(metric, v, compact=True)

    def best(ys: list[float]) -> int:
        return max(range(len(ys)), key=lambda i: ys[i] if higher else -ys[i])

    def detail(win: str, wx: list[float], wy: list[float], lose: str, ly: list[float]) -> str:
        i = best(ly)
        ahead = wy[0] >= ly[i] if higher else wy[0] <= ly[i]
        if ahead:  # the winner's cheapest point already beats the loser's best
            return (
                f"{win} reaches {q(wy[0])} at {format_bytes(wx[0])} B; "
                f"{lose}'s best is {q(ly[i])} at {format_bytes(lx_of[lose][i])} B"
            )
        return (
            f"from {format_bytes(wx[0])} B on, {win} matches or beats every {lose} point "
            "with no more bytes"
        )

    lx_of = {ref: rx, name: cx}
    if _covers(cx, cy, rx, ry, higher) and not _covers(rx, ry, cx, cy, higher):
        return DOMINATES, detail(name, cx, cy, ref, ry)
    if _covers(rx, ry, cx, cy, higher):
        return DOMINATED, detail(ref, rx, ry, name, cy)
    return "", ""


def _compare(call: Any, pair: _Pair, few_points: str) -> tuple[float | None, str, str]:
    """``(BD-rate or None, verdict, reason)`` of curve ``name`` against ``ref``: the one
    comparison behind the BD-rate tables and :func:`best_vs_best`. ``few_points`` is the
    reason used when either curve has fewer than 2 points."""
    value: float | None = None
    if len(pair.ref_front[0]) >= 2 and len(pair.front[0]) >= 2:
        value, reason = _try_bd(call, *pair.ref_front, *pair.front)
        if value is None:
            reason = _explain(reason, pair)
    else:
        reason = few_points
    if value is not None:
        return value, "", ""
    verdict, detail = _dominance(pair)
    if not verdict:
        return None, "", reason
    if not reason.startswith("quality ranges do not overlap"):
        detail = f"{detail}; no BD-rate: {reason}"
    return None, verdict, detail


@dataclass
class BestVsBest:
    """Headline BD-rate of one condition: the best candidate (a scheme of role
    ``proposed``) vs the best baseline (role ``baseline``).

    ``ranking`` holds ``(candidate, BD-rate or None, note)`` for every candidate, best
    first. BD-rate is undefined when the quality ranges do not overlap; then ``note`` says
    ``"dominates"`` (over the byte counts both reach, every baseline point is matched or
    beaten by a candidate point with no more bytes), ``"dominated"`` (the reverse) or why
    it could not be compared. Dominating candidates rank first (cheapest first), then
    finite BD-rates ascending. ``candidate`` / ``bd_rate`` / ``dominates`` describe the first entry.
    """

    metric: str
    condition: str
    baseline: str | None
    candidate: str | None
    bd_rate: float | None
    ranking: list[tuple[str, float | None, str]] = field(default_factory=list)
    reason: str = ""
    dominates: bool = False
    verdict: str = ""

    def display(self) -> str:
        """``-23.4 %``, ``dominates (...)``, ``dominated (...)`` or ``n/a (...)``."""
        verdict = self.verdict or (DOMINATES if self.dominates else "")
        return _verdict_text(self.bd_rate, verdict, self.reason)


def _covers(
    ax: Sequence[float], ay: Sequence[float], bx: Sequence[float], by: Sequence[float], higher: bool
) -> bool:
    """True when, over the byte counts both curves reach (b's points costing at least a's
    cheapest), every point of curve b is matched or beaten by a point of curve a that costs
    no more bytes; and there is at least one such point."""

    def better(u: float, v: float) -> bool:
        return u >= v if higher else u <= v

    if not ax:
        return False
    shared = [(xb, yb) for xb, yb in zip(bx, by, strict=True) if xb >= min(ax)]
    return bool(shared) and all(
        any(x <= xb and better(y, yb) for x, y in zip(ax, ay, strict=True)) for xb, yb in shared
    )


def _best_baseline(
    group: Sequence[PointRecord],
    metric: str,
    baselines: Sequence[str],
    higher: bool,
    call: Any,
    prefer: str | None = None,
) -> str:
    """The baseline whose BD-rate against the other baselines is lowest on average; among
    baselines that tie (e.g. none can be compared), ``prefer`` (the anchor), else the
    first in ``baselines``."""
    present = [b for b in baselines if any(r.scheme == b for r in group)]
    if len(present) == 1:
        return present[0]
    fronts = {b: _front(group, b, metric, higher) for b in present}
    scores: dict[str, float] = {}
    for b in present:
        vals = [_try_bd(call, *fronts[o], *fronts[b])[0] for o in present if o != b]
        found = [v for v in vals if v is not None]
        scores[b] = sum(found) / len(found) if found else math.inf
    return min(present, key=lambda b: (scores[b], b != prefer, present.index(b)))


def _rank_key(entry: tuple[str, float | None, str], cheapest: dict[str, float]) -> tuple:
    """Sort key of :func:`best_vs_best`'s ranking: dominating (cheapest first), then finite
    BD-rates ascending, then the rest."""
    c, v, n = entry
    if n == DOMINATES:
        return (0, cheapest[c])
    if v is not None:
        return (1, v)
    return (3, 0.0) if n == DOMINATED else (2, 0.0)


def best_vs_best(
    records: Sequence[PointRecord | Mapping[str, Any]],
    metric: str = "accuracy",
    candidates: Sequence[str] | None = None,
    baselines: Sequence[str] | None = None,
    *,
    anchor_scheme: str | None = None,
) -> list[BestVsBest]:
    """Per condition, the task BD-rate of the best of ``candidates`` (default: the schemes
    of role ``proposed``) against the best of ``baselines`` (default: those of role
    ``baseline``): the baseline with the lowest mean BD-rate against the others, ties
    going to ``anchor_scheme`` (when it is a baseline), else to the first in record order.
    Schemes of role ``reference`` are never compared.

    Negative = the candidate needs fewer bytes for the same ``metric``. Conditions missing
    either side are left out; candidates whose curves cannot be compared get ``None`` and
    a note (see :class:`BestVsBest`).
    """
    recs, higher, call = _setup(records, metric)
    for name, given in (("candidates", candidates), ("baselines", baselines)):
        if isinstance(given, str):
            raise InputError(f"{name} must be a list of scheme names, not a string")
    references = _references(recs)
    wanted = set(candidates if candidates is not None else _with_role(recs, "proposed"))
    base_list = list(baselines if baselines is not None else _with_role(recs, "baseline"))
    base_list = [b for b in base_list if b not in references]
    out: list[BestVsBest] = []
    for cond, group in _by_condition(recs).items():
        schemes = _unique(r.scheme for r in group)
        cands = [s for s in schemes if s in wanted and s not in references]
        if not cands or not any(b in schemes for b in base_list):
            continue
        base = _best_baseline(group, metric, base_list, higher, call, anchor_scheme)
        cands = [c for c in cands if c != base]  # lists given that share a scheme
        if not cands:
            continue
        ref = _front(group, base, metric, higher)
        fronts = {c: _front(group, c, metric, higher) for c in cands}
        cheapest = {c: (f[0][0] if f[0] else math.inf) for c, f in fronts.items()}
        ranking: list[tuple[str, float | None, str]] = []
        details: dict[str, str] = {}
        for c in cands:
            front = fronts[c]
            side = base if len(ref[0]) < 2 else c
            n = len(ref[0]) if side == base else len(front[0])
            few = _with_over_note(
                f"{side} has {_points(n)} on a Pareto front", _n_over(group, side, metric)
            )
            pair = _Pair(base, ref, c, front, metric, higher)
            value, verdict, reason = _compare(call, pair, few)
            details[c] = reason
            ranking.append((c, value, verdict or reason))

        ranking.sort(key=lambda e, ch=cheapest: _rank_key(e, ch))
        best, value, note = ranking[0]
        dominates = value is None and note == DOMINATES
        verdict = ""
        if value is not None:
            reason = ""
        elif dominates:
            verdict, reason = DOMINATES, details[best]
        elif all(n == DOMINATED for _, v, n in ranking if v is None):
            verdict = DOMINATED
            reason = f"{base} dominates every candidate, e.g. {details[best]}"
        else:
            reason = f"no candidate can be compared; {best}: {details[best]}"
        out.append(
            BestVsBest(
                metric,
                cond,
                base,
                best if (value is not None or dominates) else None,
                value,
                ranking,
                reason,
                dominates,
                verdict,
            )
        )
    return out
