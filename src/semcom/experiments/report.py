"""The sweep report: ``results.json``, ``results.csv``, PNG plots and a static ``index.html``.

Every plot and table puts task quality against ``mean_bytes`` -- the mean size of the
*whole* message (container header included) per image -- so schemes are compared on the
bytes they actually send. ``write_report`` does everything and returns the HTML path::

    index = write_report(records, "runs/sweep1")
    print_summary(records)

Records are grouped into *conditions*: the channel name, plus ``dataset/split`` when the
records mix several data sets. Each condition gets its own table and subplot.
"""

from __future__ import annotations

import csv
import html
import inspect
import json
import math
import os
import re
import shutil
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semcom.errors import InputError
from semcom.experiments.records import (
    PointRecord,
    current_git_commit,
    higher_is_better,
    metric_sort_key,
    now_iso,
    to_json_safe,
)

__all__ = [
    "BDRateEntry",
    "ExtraSection",
    "bd_rate_table",
    "default_anchor",
    "load_results",
    "make_plots",
    "metric_label",
    "print_summary",
    "write_html",
    "write_report",
    "write_results",
]

#: An extra HTML section: (title, trusted HTML fragment) or (title, path of an image).
ExtraSection = tuple[str, "str | Path"]

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
INDEX_HTML = "index.html"
BYTES_LABEL = "bytes per image (whole message)"

_BASE_COLUMNS = (
    "scheme", "rate_label", "channel", "dataset", "split", "n_images", "seed",
    "mean_bytes", "mean_channel_bytes", "bpp", "failure_rate",
)  # fmt: skip
_TAIL_COLUMNS = ("version", "git_commit", "created")
_TIMING_ORDER = ("encode_ms", "decode_ms")
_METRIC_LABELS = {
    "accuracy": "top-1 accuracy",
    "accuracy_ft": "top-1 accuracy (fine-tuned classifier)",
    "miou": "mIoU",
    "pixel_accuracy": "pixel accuracy",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "lpips": "LPIPS",
    "bpp": "bits per pixel",
}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


# --------------------------------------------------------------------------- helpers


def _as_records(records: Iterable[PointRecord | Mapping[str, Any]]) -> list[PointRecord]:
    out: list[PointRecord] = []
    for i, rec in enumerate(records):
        if isinstance(rec, PointRecord):
            out.append(rec)
        elif isinstance(rec, Mapping):
            try:
                out.append(PointRecord.from_dict(rec))
            except InputError as exc:
                raise InputError(f"record {i}: {exc}") from None
        else:
            raise InputError(f"record {i} is a {type(rec).__name__}, not a PointRecord")
    return out


def _require(records: Iterable[PointRecord | Mapping[str, Any]]) -> list[PointRecord]:
    recs = _as_records(records)
    if not recs:
        raise InputError("no records to report")
    return recs


def _unique(values: Iterable[Any]) -> list[Any]:
    """Distinct values in first-seen order."""
    seen: dict[Any, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


def _multi_dataset(records: Sequence[PointRecord]) -> bool:
    return len({(r.dataset, r.split) for r in records}) > 1


def _condition(rec: PointRecord, multi: bool) -> str:
    return f"{rec.channel} · {rec.dataset}/{rec.split}" if multi else rec.channel


def _by_condition(records: Sequence[PointRecord]) -> dict[str, list[PointRecord]]:
    multi = _multi_dataset(records)
    groups: dict[str, list[PointRecord]] = {}
    for rec in records:
        groups.setdefault(_condition(rec, multi), []).append(rec)
    return groups


def _metrics(records: Sequence[PointRecord]) -> list[str]:
    return sorted({m for r in records for m in r.metrics}, key=metric_sort_key)


def _timing_keys(records: Sequence[PointRecord]) -> list[str]:
    keys = {k for r in records for k in r.timing}
    return [k for k in _TIMING_ORDER if k in keys] + sorted(keys - set(_TIMING_ORDER))


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _curve(records: Iterable[PointRecord], metric: str) -> tuple[list[float], list[float]]:
    """(bytes, metric) points with finite values and positive bytes, sorted by bytes."""
    pts = sorted(
        (r.mean_bytes, r.metrics[metric])
        for r in records
        if metric in r.metrics and _finite(r.metrics[metric]) and r.mean_bytes > 0
    )
    return [p[0] for p in pts], [p[1] for p in pts]


def pareto_front(
    xs: Sequence[float], ys: Sequence[float], higher: bool = True
) -> tuple[list[float], list[float]]:
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


def _front(
    group: Iterable[PointRecord], scheme: str, metric: str, higher: bool
) -> tuple[list[float], list[float]]:
    """The :func:`pareto_front` of ``scheme``'s (bytes, ``metric``) points in ``group``."""
    return pareto_front(*_curve((r for r in group if r.scheme == scheme), metric), higher)


def _try_bd(
    call: Any, ax: list[float], ay: list[float], bx: list[float], by: list[float]
) -> tuple[float | None, str]:
    """``(BD-rate of curve b vs anchor a, "")``, or ``(None, why not)``."""
    try:
        value = call(ax, ay, bx, by)
    except (ValueError, ArithmeticError) as exc:  # InputError is a ValueError
        return None, str(exc).strip() or type(exc).__name__
    return (value, "") if math.isfinite(value) else (None, "curves do not overlap")


def metric_label(metric: str, direction: bool = True) -> str:
    """Human label of a metric name with units (and "lower is better" when ``direction``)."""
    if metric.startswith("featdist"):
        inner = metric[len("featdist") :].strip("[]")
        label = f"feature distance [{inner}]" if inner else "feature distance"
    elif metric.startswith("lpips") and metric != "lpips":
        label = f"LPIPS {metric[len('lpips') :].strip('[]_')}"
    else:
        label = _METRIC_LABELS.get(metric, metric)
    if direction and not higher_is_better(metric):
        return f"{label} (lower is better)"
    return label


def _data_summary(records: Sequence[PointRecord]) -> str:
    """``synthetic/test, 256 images`` (several data sets joined by ``; ``)."""
    parts = []
    for ds, split in _unique((r.dataset, r.split) for r in records):
        ns = sorted({r.n_images for r in records if (r.dataset, r.split) == (ds, split)})
        n = "/".join(str(x) for x in ns)
        parts.append(f"{ds}/{split}, {n} images")
    return "; ".join(parts)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # a plain open() (not mkstemp) so the file gets the usual umask permissions
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- JSON / CSV


def _common(values: Iterable[Any]) -> Any:
    vals = _unique(values)
    return vals[0] if len(vals) == 1 else None


def write_results(
    records: Sequence[PointRecord | Mapping[str, Any]], out_dir: str | Path
) -> dict[str, Path]:
    """Write ``results.json`` and ``results.csv`` into ``out_dir``; returns their paths.

    The JSON holds ``semcom_version``, ``git_commit`` (the records' commit when they all
    agree, else the current checkout's), ``created`` and one record per sweep point.
    The CSV flattens ``settings``, ``metrics``, ``timing`` and ``channel_config`` into
    dotted columns over the union of keys, in a stable (sorted) order.
    """
    from semcom import __version__

    recs = _as_records(records)
    out = Path(out_dir)
    commit = _common(r.git_commit for r in recs) if recs else None
    doc = {
        "semcom_version": __version__,
        "git_commit": commit if commit is not None else current_git_commit(),
        "created": now_iso(),
        "records": [r.to_dict() for r in recs],
    }
    json_path = out / RESULTS_JSON
    _atomic_write_text(json_path, json.dumps(to_json_safe(doc), indent=2, allow_nan=False) + "\n")

    csv_path = out / RESULTS_CSV
    columns, rows = _flatten(recs)
    _atomic_write_text(csv_path, _csv_text(columns, rows))
    return {"json": json_path, "csv": csv_path}


def _csv_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool) or isinstance(value, (dict, list, tuple)):
        return json.dumps(to_json_safe(value), sort_keys=True)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _flatten(records: Sequence[PointRecord]) -> tuple[list[str], list[dict[str, str]]]:
    settings = sorted({k for r in records for k in r.settings})
    configs = sorted({k for r in records for k in r.channel_config})
    columns = list(_BASE_COLUMNS)
    columns += [f"settings.{k}" for k in settings]
    columns += [f"metrics.{k}" for k in _metrics(records)]
    columns += [f"timing.{k}" for k in _timing_keys(records)]
    columns += [f"channel_config.{k}" for k in configs]
    columns += list(_TAIL_COLUMNS)
    if any(r.extra for r in records):
        columns.append("extra")
    rows = []
    for rec in records:
        d = rec.to_dict()
        row = {c: _csv_cell(d.get(c)) for c in (*_BASE_COLUMNS, *_TAIL_COLUMNS)}
        for group in ("settings", "metrics", "timing", "channel_config"):
            for k, v in d[group].items():
                row[f"{group}.{k}"] = _csv_cell(v)
        if rec.extra:
            row["extra"] = _csv_cell(rec.extra)
        rows.append(row)
    return columns, rows


def _csv_text(columns: list[str], rows: list[dict[str, str]]) -> str:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def load_results(path: str | Path) -> list[PointRecord]:
    """Read and validate a ``results.json`` (or the directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_JSON
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read results file {p}: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise InputError(f"{p} is not a semcom results file (no 'records' list)")
    out = []
    for i, item in enumerate(doc["records"]):
        try:
            out.append(PointRecord.from_dict(item))
        except InputError as exc:
            raise InputError(f"{p}: record {i}: {exc}") from None
    return out


# --------------------------------------------------------------------------- plots


def _mpl_text(text: str) -> str:
    """Escape ``$`` so matplotlib does not read user text as mathtext."""
    return text.replace("$", r"\$")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_.") or "metric"


def _scheme_styles(schemes: Sequence[str]) -> dict[str, tuple[Any, str]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(schemes) <= 10 else "tab20"]
    return {s: (cmap(i % cmap.N), _MARKERS[i % len(_MARKERS)]) for i, s in enumerate(schemes)}


def _grid_figure(n_panels: int) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    ncols = min(n_panels, 3)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(4.8 * ncols + 0.4, 3.8 * nrows + 0.9), dpi=110, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _bytes_tick(x: float, _pos: Any = None) -> str:
    """Plain tick labels on the log bytes axis: 20, 500, 2k, 1.5M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:g}{suffix}"
    return f"{x:g}"


def _plot_figure(
    records: Sequence[PointRecord],
    value: str,
    ylabel: str,
    title: str,
    path: Path,
    styles: Mapping[str, tuple[Any, str]],
) -> None:
    """One PNG: ``value`` (a metric, or ``failure_rate``) against bytes, a panel per condition."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    groups = _by_condition(records)
    fig, axes = _grid_figure(len(groups))
    handles: dict[str, Any] = {}
    for ax, (cond, recs) in zip(axes, groups.items(), strict=True):
        drawn = False
        for scheme in _unique(r.scheme for r in recs):
            srecs = [r for r in recs if r.scheme == scheme]
            if value == "failure_rate":
                pts = sorted(
                    (r.mean_bytes, 100.0 * r.failure_rate) for r in srecs if r.mean_bytes > 0
                )
                xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            else:
                xs, ys = _curve(srecs, value)
            if not xs:
                continue
            color, marker = styles[scheme]
            (line,) = ax.plot(xs, ys, marker=marker, color=color, linewidth=1.6, markersize=5)
            handles.setdefault(scheme, line)
            drawn = True
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(_bytes_tick))
        ax.xaxis.set_minor_formatter(NullFormatter())
        if value == "failure_rate":
            top = max((100.0 * r.failure_rate for r in recs), default=0.0)
            ax.set_ylim(-1.0, max(5.0, 1.1 * top))
        ax.set_title(_mpl_text(f"channel: {cond}"), fontsize=10)
        ax.set_xlabel(BYTES_LABEL)
        ax.set_ylabel(_mpl_text(ylabel))
        ax.grid(True, which="major", alpha=0.45)
        ax.grid(True, which="minor", alpha=0.15)
        if not drawn:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(_mpl_text(title), fontsize=11)
    if handles:
        fig.legend(
            list(handles.values()),
            [_mpl_text(s) for s in handles],
            loc="outside lower center",
            ncols=min(len(handles), 6),
            frameon=False,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def make_plots(
    records: Sequence[PointRecord | Mapping[str, Any]], out_dir: str | Path
) -> list[Path]:
    """Write one PNG per metric (``plot_<metric>.png``): metric vs bytes, log x axis.

    Each PNG has a subplot per condition (channel) and a curve per scheme, points sorted
    by bytes. ``plot_failure_rate.png`` is added when any point had a decoding failure.
    Points with zero bytes or a non-finite metric are left out (a log axis cannot show them).
    """
    recs = _require(records)
    out = Path(out_dir)
    styles = _scheme_styles(_unique(r.scheme for r in recs))
    data = _data_summary(recs)
    paths: list[Path] = []
    used: set[str] = set()
    for metric in _metrics(recs):
        stem = f"plot_{_slug(metric)}"
        while stem in used or stem == "plot_failure_rate":
            stem += "_"
        used.add(stem)
        path = out / f"{stem}.png"
        ylabel = metric_label(metric, direction=False).replace(" [", "\n[")
        title = f"{metric_label(metric)} vs bytes — {data}"
        _plot_figure(recs, metric, ylabel, title, path, styles)
        paths.append(path)
    if any(r.failure_rate > 0 for r in recs):
        path = out / "plot_failure_rate.png"
        title = f"decoding failures vs bytes — {data}"
        _plot_figure(recs, "failure_rate", "messages not decoded (%)", title, path, styles)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- BD-rate


@dataclass(frozen=True)
class BDRateEntry:
    """BD-rate of ``scheme`` against ``anchor`` on one condition (percent; None = n/a)."""

    metric: str
    condition: str
    scheme: str
    anchor: str
    bd_rate: float | None
    reason: str = ""

    def display(self) -> str:
        """``-23.4 %`` or ``n/a (reason)``."""
        if self.bd_rate is None:
            return f"n/a ({self.reason})" if self.reason else "n/a"
        return f"{self.bd_rate:+.1f} %"


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


def default_anchor(records: Sequence[PointRecord]) -> str:
    """The anchor scheme used when none is given: ``jpeg`` if present, else the first scheme."""
    schemes = _unique(r.scheme for r in records)
    if not schemes:
        raise InputError("no records: cannot choose an anchor scheme")
    return "jpeg" if "jpeg" in schemes else schemes[0]


def bd_rate_table(
    records: Sequence[PointRecord | Mapping[str, Any]], metric: str, anchor_scheme: str
) -> list[BDRateEntry]:
    """Task BD-rate (on ``mean_bytes``) of every other scheme vs ``anchor_scheme``, per condition.

    Each curve is first reduced to its :func:`pareto_front` (a setting that costs more
    bytes without improving the metric is never the one to use).

    Uses :func:`semcom.metrics.bd_rate` (negative = fewer bytes than the anchor for the
    same task quality). Lower-is-better metrics are negated first. Pairs that cannot be
    compared (too few points, curves that do not overlap, ...) get ``bd_rate=None`` and a
    reason instead of an exception.
    """
    from semcom.metrics import bd_rate

    recs = _require(records)
    if anchor_scheme not in {r.scheme for r in recs}:
        raise InputError(f"anchor scheme {anchor_scheme!r} is not in the records")
    if metric not in _metrics(recs):
        raise InputError(f"metric {metric!r} is not in the records")
    higher = higher_is_better(metric)
    call = _bd_caller(bd_rate, higher)
    entries: list[BDRateEntry] = []
    for cond, group in _by_condition(recs).items():
        anchor_x, anchor_y = _front(group, anchor_scheme, metric, higher)
        for scheme in _unique(r.scheme for r in group):
            if scheme == anchor_scheme:
                continue
            xs, ys = _front(group, scheme, metric, higher)
            value: float | None = None
            if len(anchor_x) < 2:
                reason = f"anchor has {_points(len(anchor_x))} here"
            elif len(xs) < 2:
                reason = f"{_points(len(xs))} with this metric"
            else:
                value, reason = _try_bd(call, anchor_x, anchor_y, xs, ys)
            entries.append(BDRateEntry(metric, cond, scheme, anchor_scheme, value, reason))
    return entries


#: The classical codecs a learned scheme is compared with in :func:`best_vs_best`.
CLASSICAL_CODECS: tuple[str, ...] = ("jpeg", "webp", "avif")


@dataclass
class BestVsBest:
    """Headline BD-rate of one condition: the best candidate vs the best baseline.

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

    def display(self) -> str:
        """``-23.4 %``, ``dominates (...)`` or ``n/a (...)``."""
        if self.bd_rate is not None:
            return f"{self.bd_rate:+.1f} %"
        if self.dominates:
            return f"dominates ({self.reason})"
        return f"n/a ({self.reason})" if self.reason else "n/a"


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


def _best_baseline(group: Sequence[PointRecord], metric: str, baselines: Sequence[str]) -> str:
    """The baseline whose BD-rate against the other baselines is lowest on average."""
    present = [b for b in baselines if any(r.scheme == b for r in group)]
    if len(present) == 1:
        return present[0]
    from semcom.metrics import bd_rate

    higher = higher_is_better(metric)
    call = _bd_caller(bd_rate, higher)
    fronts = {b: _front(group, b, metric, higher) for b in present}
    scores: dict[str, float] = {}
    for b in present:
        vals = [_try_bd(call, *fronts[o], *fronts[b])[0] for o in present if o != b]
        found = [v for v in vals if v is not None]
        scores[b] = sum(found) / len(found) if found else math.inf
    return min(present, key=lambda b: (scores[b], present.index(b)))


def _rank_key(entry: tuple[str, float | None, str], cheapest: dict[str, float]) -> tuple:
    """Sort key of :func:`best_vs_best`'s ranking: dominating (cheapest first), then finite
    BD-rates ascending, then the rest."""
    c, v, n = entry
    if n == "dominates":
        return (0, cheapest[c])
    return (1, v) if v is not None else (2, 0.0)


def best_vs_best(
    records: Sequence[PointRecord | Mapping[str, Any]],
    metric: str = "accuracy",
    candidate_prefix: str = "patch",
    baselines: Sequence[str] = CLASSICAL_CODECS,
) -> list[BestVsBest]:
    """Per condition, the task BD-rate of the best ``candidate_prefix*`` scheme against the
    best of ``baselines`` (the baseline with the lowest mean BD-rate against the others).

    Negative = the candidate needs fewer bytes for the same ``metric``. Conditions missing
    either side are left out; candidates whose curves cannot be compared get ``None`` and
    a note (see :class:`BestVsBest`).
    """
    from semcom.metrics import bd_rate

    recs = _require(records)
    if metric not in _metrics(recs):
        raise InputError(f"metric {metric!r} is not in the records")
    higher = higher_is_better(metric)
    call = _bd_caller(bd_rate, higher)
    out: list[BestVsBest] = []
    for cond, group in _by_condition(recs).items():
        cands = [s for s in _unique(r.scheme for r in group) if s.startswith(candidate_prefix)]
        if not cands or not any(r.scheme in baselines for r in group):
            continue
        base = _best_baseline(group, metric, baselines)
        bx, by = _front(group, base, metric, higher)
        fronts = {c: _front(group, c, metric, higher) for c in cands}
        cheapest = {c: (f[0][0] if f[0] else math.inf) for c, f in fronts.items()}
        ranking: list[tuple[str, float | None, str]] = []
        for c in cands:
            cx, cy = fronts[c]
            value: float | None = None
            if len(bx) >= 2 and len(cx) >= 2:
                value, note = _try_bd(call, bx, by, cx, cy)
            else:
                note = f"{_points(min(len(bx), len(cx)))} on a Pareto front"
            if value is None:
                if _covers(cx, cy, bx, by, higher) and not _covers(bx, by, cx, cy, higher):
                    note = "dominates"
                elif _covers(bx, by, cx, cy, higher):
                    note = "dominated"
            ranking.append((c, value, note))

        ranking.sort(key=lambda e, ch=cheapest: _rank_key(e, ch))
        best, value, note = ranking[0]
        dominates = value is None and note == "dominates"
        if dominates:
            bi = max(range(len(by)), key=lambda i: by[i] if higher else -by[i])
            cx, cy = fronts[best]
            reason = (
                f"{best} reaches {cy[0]:.3g} at {cx[0]:.0f} B; {base}'s best is "
                f"{by[bi]:.3g} at {bx[bi]:.0f} B"
            )
        elif value is None:
            reason = "no candidate curve overlaps the baseline's"
        else:
            reason = ""
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
            )
        )
    return out


def _best_section(recs: Sequence[PointRecord]) -> str:
    metrics = [m for m in ("accuracy", "accuracy_ft", "miou") if m in _metrics(recs)]
    rows = []
    for metric in metrics:
        try:
            entries = best_vs_best(recs, metric)
        except (InputError, ImportError):
            continue
        for e in entries:
            shown = ", ".join(
                f"{s} {f'{v:+.1f} %' if v is not None else (n or 'n/a')}" for s, v, n in e.ranking
            )
            value = e.display()
            good = e.dominates or (e.bd_rate is not None and e.bd_rate < 0)
            cls = "num good" if good else "na" if e.bd_rate is None else "num bad"
            rows.append(
                f"<tr><td>{_e(metric_label(metric))}</td><td>{_e(e.condition)}</td>"
                f"<td>{_e(e.candidate or '-')}</td><td>{_e(e.baseline)}</td>"
                f'<td class="{cls}">{_e(value)}</td><td class="cfg">{_e(shown)}</td></tr>'
            )
    if not rows:
        return ""
    return (
        '<p class="note">Task BD-rate of the best learned patch configuration against the '
        "best classical codec (" + ", ".join(CLASSICAL_CODECS) + ") per channel, over the "
        "quality range both curves cover. Negative = fewer bytes for the same task quality; "
        "'dominates' = the quality ranges do not overlap because the patch scheme is better "
        "at every byte count both were run at."
        '</p><div class="scroll"><table><thead><tr><th>metric</th><th>channel</th>'
        '<th>best patch scheme</th><th>best codec</th><th class="num">BD-rate</th>'
        "<th>every patch scheme vs that codec</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )


# --------------------------------------------------------------------------- HTML

_CSS = """
:root { --fg:#1d2228; --muted:#5f6b77; --line:#dde2e7; --stripe:#f6f8fa; --accent:#2b6cb0; }
* { box-sizing: border-box; }
body { margin:0; color:var(--fg); background:#fff;
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; }
main { max-width:1240px; margin:0 auto; padding:24px 28px 48px; }
h1 { font-size:24px; margin:0 0 4px; }
h2 { font-size:18px; margin:32px 0 10px; padding-bottom:4px; border-bottom:2px solid var(--line); }
h3 { font-size:15px; margin:20px 0 6px; }
.sub, .note, footer, .cfg { color:var(--muted); }
.note { font-size:13px; max-width:900px; }
nav a { color:var(--accent); margin-right:14px; text-decoration:none; }
dl.meta { display:grid; grid-template-columns:max-content 1fr; gap:3px 18px; margin:0; }
dl.meta dt { color:var(--muted); }
dl.meta dd { margin:0; }
code, .cfg { font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:12px; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; font-size:13px; margin:4px 0 8px; }
th, td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:left;
  white-space:nowrap; }
th { background:#eef1f4; font-weight:600; white-space:normal; vertical-align:bottom; }
tbody tr:nth-child(even) { background:var(--stripe); }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.na { color:var(--muted); font-size:12px; white-space:normal; max-width:260px; }
td.good { color:#1a7f37; } td.bad { color:#b42318; }
figure { margin:14px 0 22px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); }
figcaption { color:var(--muted); font-size:12px; }
footer { margin-top:40px; font-size:12px; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt_metric(metric: str, value: float | None) -> str:
    if not _finite(value):
        return "–"
    assert value is not None
    if metric == "psnr" or abs(value) >= 10:
        return f"{value:,.2f}"
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3g}"


def _fmt_bytes(value: float) -> str:
    return f"{value:,.1f}"


def _rel_url(path: Path, base: Path) -> str:
    rel = os.path.relpath(Path(path).resolve(), base.resolve())
    return urllib.parse.quote(Path(rel).as_posix())


def _summary_table(recs: Sequence[PointRecord], metrics: Sequence[str]) -> str:
    metrics = [m for m in metrics if any(m in r.metrics for r in recs)]
    timings = _timing_keys(recs)
    order = {s: i for i, s in enumerate(_unique(r.scheme for r in recs))}
    rows = sorted(recs, key=lambda r: (order[r.scheme], r.mean_bytes))
    head = ["<th>scheme</th>", "<th>rate</th>"]
    head += [f'<th class="num">{_e(h)}</th>' for h in ("bytes", "channel bytes", "bpp")]
    for m in metrics:
        arrow = "↑" if higher_is_better(m) else "↓"
        name = _e(m).replace("[", "<wbr>[")
        head.append(f'<th class="num" title="{_e(metric_label(m))}">{name}&nbsp;{arrow}</th>')
    head.append('<th class="num">failed</th>')
    head += [f'<th class="num">{_e(t.replace("_ms", " ms"))}</th>' for t in timings]
    body = []
    for r in rows:
        cells = [f"<td>{_e(r.scheme)}</td>", f"<td>{_e(r.rate_label)}</td>"]
        cells.append(f'<td class="num">{_fmt_bytes(r.mean_bytes)}</td>')
        cells.append(f'<td class="num">{_fmt_bytes(r.mean_channel_bytes)}</td>')
        cells.append(f'<td class="num">{r.bpp:.4g}</td>')
        for m in metrics:
            cells.append(f'<td class="num">{_e(_fmt_metric(m, r.metrics.get(m)))}</td>')
        cls = "num bad" if r.failure_rate > 0 else "num"
        cells.append(f'<td class="{cls}">{100 * r.failure_rate:.1f} %</td>')
        for t in timings:
            v = r.timing.get(t)
            text = f"{v:.2f}" if v is not None and _finite(v) else "–"
            cells.append(f'<td class="num">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<div class="scroll"><table><thead><tr>'
        + "".join(head)
        + "</tr></thead><tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table></div>"
    )


def _bd_section(recs: Sequence[PointRecord], anchor: str) -> str:
    parts = [
        f'<p class="note">Bjøntegaard delta rate on bytes per image against the anchor '
        f"<b>{_e(anchor)}</b>, per channel: the average change in bytes needed for the same "
        "task quality over the quality range both curves cover. Negative = fewer bytes than "
        "the anchor.</p>"
    ]
    try:
        from semcom.metrics import bd_rate  # noqa: F401
    except ImportError as exc:  # keep the rest of the report when the metrics are broken
        parts.append(f'<p class="note">BD-rate unavailable: {_e(exc)}</p>')
        return "\n".join(parts)
    conds = list(_by_condition(recs))
    for metric in _metrics(recs):
        try:
            entries = bd_rate_table(recs, metric, anchor)
        except InputError as exc:
            parts.append(f'<h3>{_e(metric_label(metric))}</h3><p class="note">{_e(exc)}</p>')
            continue
        if not entries:
            continue
        schemes = _unique(e.scheme for e in entries)
        cell = {(e.scheme, e.condition): e for e in entries}
        head = "<th>scheme</th>" + "".join(f'<th class="num">{_e(c)}</th>' for c in conds)
        body = []
        for s in schemes:
            row = [f"<td>{_e(s)}</td>"]
            for c in conds:
                e = cell.get((s, c))
                if e is None:
                    row.append('<td class="na">not run</td>')
                elif e.bd_rate is None:
                    row.append(f'<td class="na">{_e(e.display())}</td>')
                else:
                    cls = "num good" if e.bd_rate < 0 else "num bad" if e.bd_rate > 0 else "num"
                    row.append(f'<td class="{cls}">{_e(e.display())}</td>')
            body.append("<tr>" + "".join(row) + "</tr>")
        parts.append(
            f"<h3>{_e(metric_label(metric))}</h3>"
            f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body)
            + "</tbody></table></div>"
        )
    return "\n".join(parts)


def _extra_image(path: Path, out: Path) -> Path:
    """``path`` itself when it lies under ``out``, else a copy in ``out/extra/``."""
    if not path.is_file():
        raise InputError(f"extra section image not found: {path}")
    resolved = path.resolve()
    if resolved.is_relative_to(out.resolve()):
        return resolved
    dest_dir = out / "extra"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / path.name
    i = 1
    while dest.exists() and not dest.samefile(resolved):
        dest = dest_dir / f"{path.stem}_{i}{path.suffix}"
        i += 1
    shutil.copyfile(resolved, dest)
    return dest


def write_html(
    records: Sequence[PointRecord | Mapping[str, Any]],
    out_dir: str | Path,
    plots: Sequence[str | Path],
    extra_sections: Sequence[ExtraSection] | None = None,
    *,
    anchor_scheme: str | None = None,
) -> Path:
    """Write a self-contained static ``index.html`` into ``out_dir``; returns its path.

    Holds run metadata, a summary table per channel, the ``plots`` (linked by relative
    path), BD-rate tables against ``anchor_scheme`` (default: :func:`default_anchor`) and
    ``extra_sections``: ``(title, html)`` where a ``str`` is a trusted HTML fragment
    inserted as is, and a ``Path`` is an image (copied under ``out_dir/extra`` if it lies
    outside ``out_dir``). All other text is HTML-escaped.
    """
    from semcom import __version__

    recs = _require(records)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    anchor = anchor_scheme if anchor_scheme is not None else default_anchor(recs)
    if anchor not in {r.scheme for r in recs}:
        raise InputError(f"anchor scheme {anchor!r} is not in the records")
    data = _data_summary(recs)
    metrics = _metrics(recs)
    groups = _by_condition(recs)
    extra = list(extra_sections or [])

    versions = ", ".join(_unique(r.version for r in recs))
    commits = ", ".join(c or "unknown" for c in _unique(r.git_commit for r in recs))
    created = sorted(r.created for r in recs)
    created_txt = created[0] if created[0] == created[-1] else f"{created[0]} … {created[-1]}"
    seeds = ", ".join(str(s) for s in _unique(r.seed for r in recs))
    meta = [
        ("semcom version", versions),
        ("git commit", commits),
        ("results created", created_txt),
        ("data", data),
        ("seed", seeds),
        ("schemes", ", ".join(_unique(r.scheme for r in recs))),
        ("channels", ", ".join(groups)),
        ("points", str(len(recs))),
    ]
    nav = [("run", "Run"), ("summary", "Summary"), ("plots", "Plots"), ("bd-rate", "BD-rate")]
    nav += [(f"extra-{i}", title) for i, (title, _) in enumerate(extra)]

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>semcom report — {_e(data)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        "<h1>semcom report</h1>",
        f'<p class="sub">Task quality against the bytes actually sent — {_e(data)}</p>',
        "<nav>" + "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in nav) + "</nav>",
        '<section id="run"><h2>Run</h2><dl class="meta">',
        *(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in meta),
        "</dl>",
        '<p class="note"><b>bytes</b>: mean size per image of the whole message (container '
        "header included). <b>channel bytes</b>: what the channel carried (packet headers / "
        "FEC included). <b>bpp</b>: bytes × 8 / pixels. <b>failed</b>: messages the receiver "
        "could not decode (its fallback output was scored). ↑/↓: higher/lower is better.</p>",
        "</section>",
        '<section id="summary"><h2>Summary</h2>',
    ]
    for cond, group in groups.items():
        configs = _unique(json.dumps(to_json_safe(r.channel_config), sort_keys=True) for r in group)
        parts.append(f"<h3>channel: {_e(cond)}</h3>")
        parts.append(f'<div class="cfg">{_e(" | ".join(configs))}</div>')
        parts.append(_summary_table(group, metrics))
    parts.append("</section>")

    parts.append('<section id="plots"><h2>Plots</h2>')
    if not plots:
        parts.append('<p class="note">No plots.</p>')
    for p in plots:
        name = Path(p).stem.removeprefix("plot_")
        parts.append(
            f'<figure><img src="{_e(_rel_url(Path(p), out))}" alt="plot: {_e(name)}" '
            f'loading="lazy"><figcaption>{_e(Path(p).name)}</figcaption></figure>'
        )
    parts.append("</section>")

    parts.append('<section id="bd-rate"><h2>BD-rate</h2>')
    best = _best_section(recs)
    if best:
        parts.append("<h3>Best patch configuration vs best classical codec</h3>" + best)
    parts.append(_bd_section(recs, anchor))
    parts.append("</section>")

    for i, (title, content) in enumerate(extra):
        parts.append(f'<section id="extra-{i}"><h2>{_e(title)}</h2>')
        if isinstance(content, os.PathLike):
            img = _extra_image(Path(content), out)
            parts.append(
                f'<figure><img src="{_e(_rel_url(img, out))}" alt="{_e(title)}">'
                f"<figcaption>{_e(Path(content).name)}</figcaption></figure>"
            )
        elif isinstance(content, str):
            parts.append(content)
        else:
            raise InputError(f"extra section {title!r}: expected an HTML str or a Path")
        parts.append("</section>")

    parts.append(f"<footer>Generated by semcom {_e(__version__)} on {_e(now_iso())}.</footer>")
    parts.append("</main></body></html>\n")
    path = out / INDEX_HTML
    _atomic_write_text(path, "\n".join(parts))
    return path


# --------------------------------------------------------------------------- terminal


def _short_metric(metric: str, value: float | None) -> str:
    if value is None or not _finite(value):
        return "–"
    if metric == "psnr" or abs(value) >= 10:
        return f"{value:.2f}"
    return f"{value:.3f}"


def print_summary(
    records: Sequence[PointRecord | Mapping[str, Any]], console: Any = None, max_metrics: int = 5
) -> None:
    """Print compact rich tables, one per channel: scheme, rate, bytes, main metrics, failures;
    then the headline task BD-rate (:func:`best_vs_best`) when patch schemes and classical
    codecs were both run.

    At most ``max_metrics`` metrics are shown (the well-known ones first).
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    recs = _require(records)
    if console is None:
        console = Console()
        if not console.is_terminal:  # a pipe or a log file: do not squeeze to 80 columns
            console = Console(width=150)
    metrics = _metrics(recs)[:max_metrics]
    console.print(Text(f"semcom results — {_data_summary(recs)}", style="bold"))
    for cond, group in _by_condition(recs).items():
        table = Table(
            title=Text(f"channel: {cond}"),
            title_justify="left",
            header_style="bold",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        table.add_column("scheme", no_wrap=True, max_width=24)
        table.add_column("rate", no_wrap=True, max_width=16)
        table.add_column("bytes", justify="right", no_wrap=True)
        for m in metrics:
            name = m.split("[", 1)[0] if len(m) > 12 else m
            table.add_column(Text(name), justify="right", no_wrap=True)
        table.add_column("failed", justify="right", no_wrap=True)
        order = {s: i for i, s in enumerate(_unique(r.scheme for r in group))}
        for r in sorted(group, key=lambda r: (order[r.scheme], r.mean_bytes)):
            table.add_row(
                Text(r.scheme),
                Text(r.rate_label),
                f"{r.mean_bytes:.1f}" if r.mean_bytes < 1e4 else f"{r.mean_bytes:.0f}",
                *(Text(_short_metric(m, r.metrics.get(m))) for m in metrics),
                f"{100 * r.failure_rate:.1f}%",
            )
        console.print(table)
    for metric in [m for m in ("accuracy", "accuracy_ft") if m in _metrics(recs)]:
        try:
            entries = best_vs_best(recs, metric)
        except (InputError, ImportError):
            continue
        for e in entries:
            value = e.display()
            console.print(
                Text(
                    f"task BD-rate ({metric}, {e.condition}): best patch scheme "
                    f"{e.candidate or '-'} vs best codec {e.baseline}: {value}"
                )
            )


# --------------------------------------------------------------------------- all of it


def write_report(
    records: Sequence[PointRecord | Mapping[str, Any]],
    out_dir: str | Path,
    extra_sections: Sequence[ExtraSection] | None = None,
    *,
    anchor_scheme: str | None = None,
) -> Path:
    """Write results.json/.csv, PNG plots and index.html into ``out_dir``; returns index.html."""
    recs = _require(records)
    out = Path(out_dir)
    write_results(recs, out)
    plots = make_plots(recs, out)
    return write_html(recs, out, plots, extra_sections, anchor_scheme=anchor_scheme)
