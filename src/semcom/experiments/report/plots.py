"""The PNG plots: task quality (or decoding failures) against bytes, a panel per condition.

One curve per scheme, coloured per scheme; schemes of one family share a marker. The
axes' ranges come from the schemes that are not of role ``reference``: a reference point
outside them (raw pixels' 12 kB / 100 dB, an infinite PSNR) sits on the edge with its
value written next to it. Points over their byte budget get hollow markers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from semcom.experiments.records import PointRecord
from semcom.experiments.report.format import format_bytes, format_metric, metric_label
from semcom.experiments.report.groups import (
    _by_condition,
    _data_summary,
    _families,
    _in_budget,
    _lower,
    _metrics,
    _references,
    _require,
    _unique,
)

BYTES_LABEL = "bytes per image (whole message)"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


def _mpl_text(text: str) -> str:
    """Escape ``$`` so matplotlib does not read user text as mathtext."""
    return text.replace("$", r"\$")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_.") or "metric"


def _scheme_styles(
    schemes: Sequence[str], families: Mapping[str, str] | None = None
) -> dict[str, tuple[Any, str]]:
    """``(colour, marker)`` per scheme: a colour each; a marker each, or with ``families``
    (scheme -> family) one marker per family, so a family's curves look alike."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(schemes) <= 10 else "tab20"]
    kinds = list(schemes) if families is None else [families.get(s, s) for s in schemes]
    marker = {k: _MARKERS[i % len(_MARKERS)] for i, k in enumerate(_unique(kinds))}
    pairs = enumerate(zip(schemes, kinds, strict=True))
    return {s: (cmap(i % cmap.N), marker[k]) for i, (s, k) in pairs}


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


def _panel_points(
    recs: Sequence[PointRecord], value: str
) -> dict[str, list[tuple[float, float, bool]]]:
    """Per scheme, its ``(bytes, y, over budget)`` points sorted by bytes: positive bytes,
    y not NaN (``±inf`` kept: drawn off scale)."""
    out: dict[str, list[tuple[float, float, bool]]] = {}
    for scheme in _unique(r.scheme for r in recs):
        pts = []
        for r in recs:
            if r.scheme != scheme or not r.mean_bytes > 0:
                continue
            y = 100.0 * r.failure_rate if value == "failure_rate" else r.metrics.get(value)
            if y is None or math.isnan(y):
                continue
            pts.append((r.mean_bytes, y, not _in_budget(r)))
        if pts:
            out[scheme] = sorted(pts)
    return out


def _panel_limits(
    points: Mapping[str, list[tuple[float, float, bool]]],
    value: str,
    references: frozenset[str] = frozenset(),
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """``(xlim, ylim)`` from the finite points of the schemes not in ``references`` (all
    schemes when there are only references), so a lossless reference point (12 kB,
    100 dB) does not squash the other curves; None when nothing is drawn."""
    core = [(x, y) for s, pts in points.items() if s not in references for x, y, _ in pts]
    core = [(x, y) for x, y in core if math.isfinite(y)]
    if not core:
        core = [(x, y) for pts in points.values() for x, y, _ in pts if math.isfinite(y)]
    if not core:
        return None
    xs, ys = [p[0] for p in core], [p[1] for p in core]
    xlo, xhi = min(xs), max(xs)
    xlim = (xlo / 1.3, xhi * 1.3) if xhi > xlo else (xlo / 2.0, xhi * 2.0)
    if value == "failure_rate":
        return xlim, (-1.0, max(5.0, 1.1 * max(ys)))
    ylo, yhi = min(ys), max(ys)
    pad = 0.06 * (yhi - ylo) if yhi > ylo else max(0.05 * abs(yhi), 0.05)
    return xlim, (ylo - pad, yhi + pad)


def _off_scale_note(scheme: str, x: float, y: float, value: str) -> str:
    if value == "failure_rate":
        shown = f"{format_metric('', y, compact=True)} % failed"
    else:
        shown = format_metric(value, y)
        if value.startswith("psnr") and math.isfinite(y):
            shown += " dB"
    return f"{scheme} {format_bytes(x)} B, {shown}"


def _draw_panel(
    ax: Any,
    points: Mapping[str, list[tuple[float, float, bool]]],
    value: str,
    styles: Mapping[str, tuple[Any, str]],
    handles: dict[str, Any],
    references: frozenset[str] = frozenset(),
) -> list[str]:
    """Draw one condition's curves on ``ax``; returns the off-scale notes ([] when
    nothing was drawn, ``[""]`` when nothing is off scale).

    Points inside the axes' range are joined per scheme; over-budget points get hollow
    markers (``gid="over-budget:<scheme>"``); points outside the range (a reference
    scheme's, an infinite PSNR) sit on the edge as an arrow-head marker pointing where
    they are (``gid="off-scale:<scheme>"``); their true values are returned as notes."""
    limits = _panel_limits(points, value, references)
    if limits is None:
        return []
    notes: list[str] = []
    (xlo, xhi), (ylo, yhi) = limits
    for scheme, pts in points.items():
        color, marker = styles[scheme]
        inside = [(x, y, o) for x, y, o in pts if xlo <= x <= xhi and ylo <= y <= yhi]
        outside = [(x, y, o) for x, y, o in pts if (x, y, o) not in inside]
        if inside:
            (line,) = ax.plot(
                [p[0] for p in inside],
                [p[1] for p in inside],
                marker=marker,
                color=color,
                linewidth=1.6,
                markersize=5,
            )
            handles.setdefault(scheme, line)
            over = [p for p in inside if p[2]]
            if over:
                ax.plot(
                    [p[0] for p in over],
                    [p[1] for p in over],
                    linestyle="none",
                    marker=marker,
                    markersize=7,
                    markerfacecolor="white",
                    markeredgecolor=color,
                    markeredgewidth=1.6,
                    zorder=3,
                    gid=f"over-budget:{scheme}",
                )
        for x, y, over in outside:
            xc, yc = min(max(x, xlo), xhi), min(max(y, ylo), yhi)
            arrow = ">" if x > xhi else "<" if x < xlo else "^" if y > yhi else "v"
            (mark,) = ax.plot(
                [xc],
                [yc],
                linestyle="none",
                marker=arrow,
                markersize=8,
                color=color,
                markerfacecolor="white" if over else color,
                clip_on=False,
                zorder=4,
                gid=f"off-scale:{scheme}",
            )
            handles.setdefault(scheme, mark)
            notes.append(_off_scale_note(scheme, x, y, value))
    ax.set_xlim(xlo, xhi)
    ax.set_ylim(ylo, yhi)
    return notes or [""]


def _plot_figure(
    records: Sequence[PointRecord],
    value: str,
    ylabel: str,
    title: str,
    path: Path | None,
    styles: Mapping[str, tuple[Any, str]],
) -> Any:
    """One PNG: ``value`` (a metric, or ``failure_rate``) against bytes, a panel per condition.

    Returns the matplotlib Figure (saved to ``path`` unless None)."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    groups = _by_condition(records)
    references = _references(records)
    fig, axes = _grid_figure(len(groups))
    handles: dict[str, Any] = {}
    any_over = False
    for ax, (cond, recs) in zip(axes, groups.items(), strict=True):
        points = _panel_points(recs, value)
        any_over = any_over or any(o for pts in points.values() for _, _, o in pts)
        ax.set_xscale("log")
        drawn = _draw_panel(ax, points, value, styles, handles, references)
        notes = [n for n in drawn if n]
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(_bytes_tick))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(_mpl_text(f"channel: {cond}"), fontsize=10, pad=14 if notes else 6)
        if notes:
            shown = "; ".join(notes[:2]) + (f"; {len(notes) - 2} more" if len(notes) > 2 else "")
            ax.text(
                0.5,
                1.01,
                _mpl_text(f"off scale, at the edge: {shown}"),
                transform=ax.transAxes,
                ha="center",
                va="bottom",
                fontsize=7,
                color="0.35",
                gid="off-scale-note",
            )
        ax.set_xlabel(BYTES_LABEL)
        ax.set_ylabel(_mpl_text(ylabel))
        ax.grid(True, which="major", alpha=0.45)
        ax.grid(True, which="minor", alpha=0.15)
        if not drawn:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(_mpl_text(title), fontsize=11)
    labels = [_mpl_text(s) for s in handles]
    entries = list(handles.values())
    if any_over:
        entries.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                markerfacecolor="white",
                markeredgecolor="0.3",
                markersize=7,
            )  # fmt: skip
        )
        labels.append("hollow: over byte budget (not in BD-rate)")
    if entries:
        fig.legend(
            entries,
            labels,
            loc="outside lower center",
            ncols=min(len(entries), 6),
            frameon=False,
        )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    return fig


def make_plots(
    records: Sequence[PointRecord | Mapping[str, Any]], out_dir: str | Path
) -> list[Path]:
    """Write one PNG per metric (``plot_<metric>.png``): metric vs bytes, log x axis.

    Each PNG has a subplot per condition (channel) and a curve per scheme, points sorted
    by bytes. ``plot_failure_rate.png`` is added when any point had a decoding failure.
    Points with zero bytes or a NaN metric are left out (a log axis cannot show them).
    The axes' ranges come from the schemes not of role ``reference`` (e.g. ``raw``):
    points outside them (``raw``'s 12 kB / 100 dB, an infinite PSNR) sit on the edge with
    their value written next to them. Points over their byte budget get hollow markers.
    Schemes of one family share a marker.
    """
    recs = _require(records)
    out = Path(out_dir)
    styles = _scheme_styles(_unique(r.scheme for r in recs), _families(recs))
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
        title = f"{metric_label(metric, lower=_lower(recs))} vs bytes — {data}"
        _plot_figure(recs, metric, ylabel, title, path, styles)
        paths.append(path)
    if any(r.failure_rate > 0 for r in recs):
        path = out / "plot_failure_rate.png"
        title = f"decoding failures vs bytes — {data}"
        ylabel = "sessions without a usable answer (%)"
        _plot_figure(recs, "failure_rate", ylabel, title, path, styles)
        paths.append(path)
    return paths
