"""The sweep report: ``results.json``, ``results.csv``, PNG plots and a static ``index.html``.

Every plot and table puts task quality against ``mean_bytes`` -- the mean size of the
*whole* message (container header included) per image -- so schemes are compared on the
bytes they actually send. ``write_report`` does everything and returns the HTML path::

    index = write_report(records, "runs/sweep1")
    print_summary(records)

Records are grouped into *conditions*: the channel name, plus ``dataset/split`` when the
records mix several data sets. Each condition gets its own table and subplot.

Points whose messages went over their byte budget (``PointRecord.over_budget > 0``) are
flagged (⚑ in the tables, hollow markers in the plots) and left out of every BD-rate.
Numbers are shown rounded (:func:`format_metric`, :func:`format_bytes`); results.json and
results.csv keep full precision. Several results files are put together with
:func:`merge_results` (repeats dropped, conflicting runs refused). With Chromium installed,
:func:`check_in_browser` measures the rendered page and :func:`render_screenshot` saves it
as ``screenshot.png``.
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
    "BrowserCheck",
    "ExtraSection",
    "bd_rate_table",
    "browser_unavailable_reason",
    "check_in_browser",
    "dedupe_records",
    "default_anchor",
    "format_bytes",
    "format_metric",
    "load_results",
    "make_plots",
    "merge_results",
    "metric_label",
    "print_summary",
    "render_screenshot",
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
    "mean_bytes", "mean_channel_bytes", "bpp", "failure_rate", "target_bytes", "over_budget",
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

#: Reference schemes (lossless, no rate control): drawn on the plots, but they do not set
#: the axes' ranges (their 12 kB / 100 dB point would squash every other curve).
REFERENCE_SCHEMES: tuple[str, ...] = ("raw",)

#: Metrics shown with 3 decimals (fractions / unit-range scores).
_UNIT_METRICS = ("accuracy", "accuracy_ft", "miou", "pixel_accuracy", "ssim")

#: The one wording of "the BD-rate is undefined, but one curve is better everywhere".
DOMINATES, DOMINATED = "dominates", "dominated"
OVER_BUDGET_FLAG = "⚑"


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


# --------------------------------------------------------------------------- numbers shown


def _decimals(metric: str, value: float) -> int:
    if metric.startswith("psnr"):
        return 1
    if metric in _UNIT_METRICS or metric.startswith(("featdist", "lpips")):
        return 3
    size = abs(value)
    return 0 if size >= 100 else 1 if size >= 10 else 3


def format_metric(metric: str, value: float | None, *, compact: bool = False) -> str:
    """A metric value as shown in the report: accuracy-like scores with 3 decimals, PSNR
    with 1, other metrics by magnitude; ``–`` when missing / NaN, ``∞`` when infinite.
    ``compact`` drops trailing zeros (for prose: ``0.8`` rather than ``0.800``)."""
    if value is None or math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    text = f"{value:.{_decimals(metric, value)}f}"
    if compact and "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "-0.0", "-0.000") else text


def format_bytes(value: float) -> str:
    """Bytes as a whole number with thousands separators: ``12,319``."""
    return f"{value:,.0f}" if math.isfinite(value) else "–"


def _fmt_pct(fraction: float) -> str:
    return f"{100 * fraction:.1f} %"


def _fmt_bpp(value: float) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _fmt_ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2f}"


_LONG_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d{4,}(?:e[+-]?\d+)?")


def _round_text(text: str) -> str:
    """Free text (e.g. an error message) with long floats cut to 3 significant digits."""
    return _LONG_FLOAT.sub(lambda m: f"{float(m.group(0)):.3g}", text)


# --------------------------------------------------------------------------- curves


def _in_budget(rec: PointRecord) -> bool:
    """False when some of the point's messages exceeded its byte budget."""
    return not rec.over_budget > 0


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


# --------------------------------------------------------------------------- merging runs


def _canon(value: Any) -> str:
    return json.dumps(to_json_safe(value), sort_keys=True, allow_nan=False)


def _point_key(rec: PointRecord) -> tuple:
    """What identifies a sweep point: scheme and rate setting, channel, data and run."""
    return (
        rec.scheme,
        rec.rate_label,
        _canon(rec.settings),
        rec.channel,
        _canon(rec.channel_config),
        rec.dataset,
        rec.split,
        rec.n_images,
        rec.seed,
    )


_MEASURED = (
    "mean_bytes", "mean_channel_bytes", "bpp", "failure_rate", "target_bytes", "over_budget",
)  # fmt: skip


def _measured(rec: PointRecord) -> dict[str, Any]:
    """What was measured at a point (timing, version and creation time left out)."""
    out = {name: getattr(rec, name) for name in _MEASURED}
    out.update({f"metrics.{k}": v for k, v in rec.metrics.items()})
    return to_json_safe(out)


def _point_name(rec: PointRecord) -> str:
    return (
        f"{rec.scheme} @ {rec.rate_label or '-'}, channel {rec.channel}, "
        f"{rec.dataset}/{rec.split}, {rec.n_images} images, seed {rec.seed}"
    )


def _differences(a: PointRecord, b: PointRecord) -> str:
    da, db = _measured(a), _measured(b)
    diffs = []
    for k in sorted(set(da) | set(db)):
        if da.get(k) != db.get(k):
            diffs.append(f"{k} {da.get(k, 'missing')} vs {db.get(k, 'missing')}")
    return _round_text("; ".join(diffs[:4]) + ("; ..." if len(diffs) > 4 else ""))


def dedupe_records(
    records: Iterable[PointRecord | Mapping[str, Any]],
    sources: Sequence[str] | None = None,
    *,
    notes: list[str] | None = None,
    on_conflict: str = "error",
) -> list[PointRecord]:
    """``records`` without repeats: a record of a point already seen (same scheme, rate
    label and settings, channel and its config, dataset, split, ``n_images``, seed) with
    the same measurements (bytes, failures, budget, metrics; timing and creation time
    may differ) is dropped, and a line saying so is appended to ``notes``.

    Two records of the same point whose measurements differ cannot be told apart: when
    they come from different ``sources`` (one label per record, e.g. the results file)
    and ``on_conflict="error"`` this raises :class:`~semcom.errors.InputError`; otherwise
    both are kept, with a note.
    """
    if on_conflict not in ("error", "keep"):
        raise InputError(f"on_conflict must be 'error' or 'keep', got {on_conflict!r}")
    recs = _as_records(records)
    srcs = list(sources) if sources is not None else [""] * len(recs)
    if len(srcs) != len(recs):
        raise InputError(f"{len(srcs)} sources for {len(recs)} records")
    seen: dict[tuple, list[tuple[PointRecord, str]]] = {}
    out: list[PointRecord] = []
    dropped: dict[tuple[str, str], int] = {}
    for rec, src in zip(recs, srcs, strict=True):
        key = _point_key(rec)
        same = seen.setdefault(key, [])
        twin = next((s for s in same if _measured(s[0]) == _measured(rec)), None)
        if twin is not None:
            pair = (src, twin[1])
            dropped[pair] = dropped.get(pair, 0) + 1
            continue
        if same:
            other, other_src = same[0]
            where = f" ({other_src} and {src})" if other_src != src else ""
            msg = (
                f"conflicting results for the same point{where}: {_point_name(rec)}: "
                f"{_differences(other, rec)}"
            )
            if on_conflict == "error" and other_src != src:
                raise InputError(
                    msg + ". They cannot be told apart (same scheme, rate, channel, data, "
                    "image count and seed); report them separately or rerun one with "
                    "another seed."
                )
            if notes is not None:
                notes.append(msg + "; both kept")
        same.append((rec, src))
        out.append(rec)
    if notes is not None:
        for (src, first), n in dropped.items():
            what = "1 duplicate record" if n == 1 else f"{n} duplicate records"
            if src and first and src != first:
                notes.append(f"{src}: {what} already read from {first}: dropped")
            elif src:
                notes.append(f"{src}: {what} (same point, same measurements): dropped")
            else:
                notes.append(f"{what} (same point, same measurements): dropped")
    return out


def _emit(notes: Sequence[str]) -> None:
    import sys

    for note in notes:
        print(f"semcom: {note}", file=sys.stderr)


def merge_results(
    paths: Iterable[str | Path], *, notes: list[str] | None = None
) -> list[PointRecord]:
    """Read several ``results.json`` files (or folders holding one) into one list.

    A file named twice (also through another path: a folder and its ``results.json``, a
    symlink) is read once; records repeated across files are kept once
    (:func:`dedupe_records`); conflicting records of the same point from different files
    raise :class:`~semcom.errors.InputError`. What was dropped is appended to ``notes``,
    or printed on stderr when ``notes`` is None. Raises InputError when no path is given.
    """
    collected: list[str] = [] if notes is None else notes
    files: dict[Path, str] = {}
    recs: list[PointRecord] = []
    sources: list[str] = []
    for path in paths:
        p = Path(path)
        f = p / RESULTS_JSON if p.is_dir() else p
        try:
            real = f.resolve(strict=True)
        except OSError:
            real = f.absolute()
        if real in files:
            collected.append(f"{path}: same file as {files[real]}: read once")
            continue
        files[real] = str(path)
        loaded = load_results(f)
        recs += loaded
        sources += [str(path)] * len(loaded)
    if not files:
        raise InputError("no results files given")
    out = dedupe_records(recs, sources, notes=collected, on_conflict="error")
    if notes is None:
        _emit(collected)
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


def _is_reference(scheme: str) -> bool:
    return scheme.split("[", 1)[0] in REFERENCE_SCHEMES


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
    points: Mapping[str, list[tuple[float, float, bool]]], value: str
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """``(xlim, ylim)`` from the finite points of the non-reference schemes (all schemes
    when there are only references), so a lossless reference point (12 kB, 100 dB) does
    not squash the other curves; None when nothing is drawn."""
    core = [(x, y) for s, pts in points.items() if not _is_reference(s) for x, y, _ in pts]
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
) -> list[str]:
    """Draw one condition's curves on ``ax``; returns the off-scale notes ([] when
    nothing was drawn, ``[""]`` when nothing is off scale).

    Points inside the axes' range are joined per scheme; over-budget points get hollow
    markers (``gid="over-budget:<scheme>"``); points outside the range (a reference
    scheme's, an infinite PSNR) sit on the edge as an arrow-head marker pointing where
    they are (``gid="off-scale:<scheme>"``); their true values are returned as notes."""
    limits = _panel_limits(points, value)
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
    fig, axes = _grid_figure(len(groups))
    handles: dict[str, Any] = {}
    any_over = False
    for ax, (cond, recs) in zip(axes, groups.items(), strict=True):
        points = _panel_points(recs, value)
        any_over = any_over or any(o for pts in points.values() for _, _, o in pts)
        ax.set_xscale("log")
        drawn = _draw_panel(ax, points, value, styles, handles)
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
    The axes' ranges come from the non-reference schemes (:data:`REFERENCE_SCHEMES`, e.g.
    ``raw``): points outside them (``raw``'s 12 kB / 100 dB, an infinite PSNR) sit on the
    edge with their value written next to them. Points over their byte budget get hollow
    markers.
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
        ref = _front(group, anchor_scheme, metric, higher)
        for scheme in _unique(r.scheme for r in group):
            if scheme == anchor_scheme:
                continue
            front = _front(group, scheme, metric, higher)
            if len(ref[0]) < 2:
                n_over = _n_over(group, anchor_scheme, metric)
                few = _with_over_note(f"anchor has {_points(len(ref[0]))} here", n_over)
            else:
                n_over = _n_over(group, scheme, metric)
                few = f"{scheme} has {_points(len(front[0]))} with this metric"
                few = _with_over_note(few, n_over)
            value, verdict, reason = _compare(
                call, anchor_scheme, ref, scheme, front, metric, higher, few
            )
            entries.append(BDRateEntry(metric, cond, scheme, anchor_scheme, value, reason, verdict))
    return entries


def _explain(
    reason: str,
    ref: str,
    ref_front: tuple[list[float], list[float]],
    name: str,
    front: tuple[list[float], list[float]],
    metric: str,
) -> str:
    """Why there is no BD-rate, in the report's own words, numbers rounded."""
    (rx, ry), (cx, cy) = ref_front, front
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


def _dominance(
    ref: str,
    ref_front: tuple[list[float], list[float]],
    name: str,
    front: tuple[list[float], list[float]],
    metric: str,
    higher: bool,
) -> tuple[str, str]:
    """``("dominates" | "dominated" | "", detail)`` of curve ``name`` against ``ref``."""
    (rx, ry), (cx, cy) = ref_front, front

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


def _compare(
    call: Any,
    ref: str,
    ref_front: tuple[list[float], list[float]],
    name: str,
    front: tuple[list[float], list[float]],
    metric: str,
    higher: bool,
    few_points: str,
) -> tuple[float | None, str, str]:
    """``(BD-rate or None, verdict, reason)`` of curve ``name`` against ``ref``: the one
    comparison behind the BD-rate tables and :func:`best_vs_best`. ``few_points`` is the
    reason used when either curve has fewer than 2 points."""
    value: float | None = None
    if len(ref_front[0]) >= 2 and len(front[0]) >= 2:
        value, reason = _try_bd(call, *ref_front, *front)
        if value is None:
            reason = _explain(reason, ref, ref_front, name, front, metric)
    else:
        reason = few_points
    if value is not None:
        return value, "", ""
    verdict, detail = _dominance(ref, ref_front, name, front, metric, higher)
    if not verdict:
        return None, "", reason
    if not reason.startswith("quality ranges do not overlap"):
        detail = f"{detail}; no BD-rate: {reason}"
    return None, verdict, detail


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
    if n == DOMINATES:
        return (0, cheapest[c])
    if v is not None:
        return (1, v)
    return (3, 0.0) if n == DOMINATED else (2, 0.0)


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
            value, verdict, reason = _compare(call, base, ref, c, front, metric, higher, few)
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


def _ranking_text(value: float | None, note: str) -> str:
    if value is not None:
        return _verdict_text(value, "", "")
    return note if note in (DOMINATES, DOMINATED) else _verdict_text(None, "", note)


def _verdict_cell(value: float | None, verdict: str, reason: str) -> str:
    """A BD-rate table cell: the number, or the verdict with its reason under it."""
    if value is not None:
        cls = "good" if value < 0 else "bad" if value > 0 else ""
        return f'<td class="num bd {cls}">{_e(_verdict_text(value, "", ""))}</td>'
    cls = {DOMINATES: "good", DOMINATED: "bad"}.get(verdict, "na")
    why = f'<div class="why">{_e(reason)}</div>' if reason else ""
    return f'<td class="bd verdict {cls}">{_e(verdict or "n/a")}{why}</td>'


def _best_section(recs: Sequence[PointRecord]) -> str:
    metrics = [m for m in ("accuracy", "accuracy_ft", "miou") if m in _metrics(recs)]
    rows = []
    for metric in metrics:
        try:
            entries = best_vs_best(recs, metric)
        except (InputError, ImportError):
            continue
        for e in entries:
            shown = "<br>".join(f"{_e(s)}: {_e(_ranking_text(v, n))}" for s, v, n in e.ranking)
            verdict = e.verdict or (DOMINATES if e.dominates else "")
            rows.append(
                f'<tr><td class="wrap">{_e(metric_label(metric))}</td>'
                f'<td class="wrap">{_e(e.condition)}</td>'
                f"<td>{_e(e.candidate or '-')}</td><td>{_e(e.baseline)}</td>"
                + _verdict_cell(e.bd_rate, verdict, e.reason)
                + f'<td class="cfg list">{shown}</td></tr>'
            )
    if not rows:
        return ""
    return (
        '<p class="note">Task BD-rate of the best learned patch configuration against the '
        "best classical codec (" + ", ".join(CLASSICAL_CODECS) + ") per channel, over the "
        "quality range both curves cover. Negative = fewer bytes for the same task quality. "
        f"Where the BD-rate is undefined, <b>{DOMINATES}</b> = over the byte counts both "
        "were run at, the patch scheme matches or beats every codec point with no more "
        f"bytes (<b>{DOMINATED}</b>: the reverse); otherwise n/a and why."
        '</p><div class="scroll"><table class="best"><thead><tr><th>metric</th>'
        "<th>channel</th><th>best patch scheme</th><th>best codec</th>"
        '<th class="num">BD-rate</th><th>every patch scheme vs that codec</th></tr></thead>'
        "<tbody>" + "".join(rows) + "</tbody></table></div>"
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
dl.meta dd { margin:0; overflow-wrap:anywhere; }
code, .cfg { font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:12px; }
div.cfg { overflow-wrap:anywhere; }
.scroll { overflow-x:auto; max-width:100%; }
table { border-collapse:collapse; font-size:12.5px; margin:4px 0 8px; }
th, td { padding:3px 5px; border-bottom:1px solid var(--line); text-align:left;
  white-space:nowrap; }
th { background:#eef1f4; font-weight:600; white-space:normal; vertical-align:bottom; }
td { vertical-align:top; }
tbody tr:nth-child(even) { background:var(--stripe); }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.wrap, td.list { white-space:normal; overflow-wrap:anywhere; }
td.wrap { max-width:190px; }
td.list { min-width:220px; font-size:11.5px; }
td.verdict { white-space:normal; min-width:90px; max-width:240px; }
td.na { color:var(--muted); }
.why { color:var(--muted); font-size:11px; font-weight:normal; }
td.good { color:#1a7f37; } td.bad { color:#b42318; }
tr.over td { background:#fff6e5; }
.flag { color:#b54708; font-weight:600; }
figure { margin:14px 0 22px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); }
figcaption { color:var(--muted); font-size:12px; }
footer { margin-top:40px; font-size:12px; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _rel_url(path: Path, base: Path) -> str:
    rel = os.path.relpath(Path(path).resolve(), base.resolve())
    return urllib.parse.quote(Path(rel).as_posix())


def _budget_text(rec: PointRecord) -> str:
    """``240`` / ``240 ⚑ 31.2 %`` (over budget) / ``–`` (no byte budget)."""
    target = format_bytes(rec.target_bytes) if rec.target_bytes is not None else "–"
    if _in_budget(rec):
        return target
    return f"{target} {OVER_BUDGET_FLAG} {_fmt_pct(rec.over_budget)}"


def _summary_table(recs: Sequence[PointRecord], metrics: Sequence[str]) -> str:
    metrics = [m for m in metrics if any(m in r.metrics for r in recs)]
    timings = _timing_keys(recs)
    order = {s: i for i, s in enumerate(_unique(r.scheme for r in recs))}
    rows = sorted(recs, key=lambda r: (order[r.scheme], r.mean_bytes))
    budget = any(r.target_bytes is not None or not _in_budget(r) for r in recs)
    runs = len({(r.n_images, r.seed) for r in recs}) > 1
    head = ["<th>scheme</th>", "<th>rate</th>"]
    if runs:
        head.append('<th class="num">images / seed</th>')
    if budget:
        head.append('<th class="num" title="byte budget of the rate setting">budget</th>')
    head += [f'<th class="num">{_e(h)}</th>' for h in ("bytes", "channel bytes", "bpp")]
    for m in metrics:
        arrow = "↑" if higher_is_better(m) else "↓"
        name = _e(m).replace("[", "<wbr>[").replace("_", "_<wbr>")
        head.append(f'<th class="num" title="{_e(metric_label(m))}">{name}&nbsp;{arrow}</th>')
    head.append('<th class="num">failed</th>')
    head += [f'<th class="num">{_e(t.replace("_ms", " ms"))}</th>' for t in timings]
    body = []
    for r in rows:
        cells = [f"<td>{_e(r.scheme)}</td>", f"<td>{_e(r.rate_label)}</td>"]
        if runs:
            cells.append(f'<td class="num">{r.n_images} / {r.seed}</td>')
        if budget:
            if _in_budget(r):
                cells.append(f'<td class="num">{_e(_budget_text(r))}</td>')
            else:
                tip = (
                    f"{_fmt_pct(r.over_budget)} of the messages exceeded the byte budget; "
                    "this point is left out of BD-rate"
                )
                target = format_bytes(r.target_bytes) if r.target_bytes is not None else "–"
                cells.append(
                    f'<td class="num over-budget" title="{_e(tip)}">{_e(target)} '
                    f'<span class="flag">{OVER_BUDGET_FLAG}&nbsp;{_e(_fmt_pct(r.over_budget))}'
                    "</span></td>"
                )
        cells.append(f'<td class="num">{format_bytes(r.mean_bytes)}</td>')
        cells.append(f'<td class="num">{format_bytes(r.mean_channel_bytes)}</td>')
        cells.append(f'<td class="num">{_fmt_bpp(r.bpp)}</td>')
        for m in metrics:
            cells.append(f'<td class="num">{_e(format_metric(m, r.metrics.get(m)))}</td>')
        cls = "num bad" if r.failure_rate > 0 else "num"
        cells.append(f'<td class="{cls}">{_fmt_pct(r.failure_rate)}</td>')
        for t in timings:
            cells.append(f'<td class="num">{_fmt_ms(r.timing.get(t))}</td>')
        tr = "<tr>" if _in_budget(r) else '<tr class="over">'
        body.append(tr + "".join(cells) + "</tr>")
    return (
        '<div class="scroll"><table class="summary"><thead><tr>'
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
        f"the anchor. Where it is undefined, <b>{DOMINATES}</b> / <b>{DOMINATED}</b> say "
        "that one curve is better at every byte count both reach.</p>"
    ]
    if any(not _in_budget(r) for r in recs):
        parts.append(
            f'<p class="note"><span class="flag">{OVER_BUDGET_FLAG}</span> Points where some '
            "messages exceeded their byte budget (flagged in the summary, hollow markers in "
            "the plots) are left out of every BD-rate and best-vs-best comparison.</p>"
        )
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
                else:
                    row.append(_verdict_cell(e.bd_rate, e.verdict, e.reason))
            body.append("<tr>" + "".join(row) + "</tr>")
        parts.append(
            f"<h3>{_e(metric_label(metric))}</h3>"
            f'<div class="scroll"><table class="bd"><thead><tr>{head}</tr></thead><tbody>'
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

    recs = dedupe_records(_require(records), on_conflict="keep")
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

    recs = dedupe_records(_require(records), on_conflict="keep")
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
        budget = any(r.target_bytes is not None or not _in_budget(r) for r in group)
        if budget:
            table.add_column("budget", justify="right", no_wrap=True)
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
                *([Text(_budget_text(r))] if budget else []),
                format_bytes(r.mean_bytes),
                *(Text(format_metric(m, r.metrics.get(m))) for m in metrics),
                f"{100 * r.failure_rate:.1f}%",
            )
        console.print(table)
    if any(not _in_budget(r) for r in recs):
        console.print(
            Text(
                f"{OVER_BUDGET_FLAG} = share of messages over the byte budget; "
                "those points are left out of BD-rate."
            )
        )
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


# --------------------------------------------------------------------------- browser check

#: Where :func:`find_chromium` looks (after ``$SEMCOM_CHROMIUM``).
CHROMIUM_NAMES: tuple[str, ...] = (
    "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable",
)  # fmt: skip
SCREENSHOT_PNG = "screenshot.png"
_CHECK_ID = "semcom-browser-check"

# Runs in a throw-away copy of index.html (its images made eager, so the load event waits
# for all of them): on load, measures every table against the box that holds it and every
# image, and writes the result as JSON into the DOM, which --dump-dom prints.
_CHECK_JS = """
window.addEventListener("load", () => {
  const px = (v) => Math.round(v * 10) / 10;
  const tables = [...document.querySelectorAll("table")].map((t, index) => {
    let box = t.parentElement;
    for (let e = t.parentElement; e && e !== document.body; e = e.parentElement) {
      const ox = getComputedStyle(e).overflowX;
      if (ox === "auto" || ox === "scroll") { box = e; break; }
    }
    const b = box.getBoundingClientRect();
    // BD-rate cells: class "bd", or under a header that says BD-rate
    const bd = new Set(t.querySelectorAll("td.bd"));
    const heads = [...t.querySelectorAll("thead th")];
    const cols = heads.map((h, i) => /BD-rate/.test(h.textContent) ? i : -1).filter((i) => i >= 0);
    t.querySelectorAll("tbody tr").forEach((tr) => cols.forEach((i) => {
      if (tr.cells[i]) bd.add(tr.cells[i]);
    }));
    const hidden = [...bd].filter((c) => {
      const r = c.getBoundingClientRect();
      return r.right > b.right + 1 || r.left < b.left - 1;
    }).length;
    const head = t.closest("section");
    return {
      index, section: head ? head.id : "", classes: t.className,
      table_width: px(t.getBoundingClientRect().width),
      scroll_width: box.scrollWidth, client_width: box.clientWidth,
      overflow_x: getComputedStyle(box).overflowX, box_right: px(b.right),
      bd_cells: bd.size, bd_cells_hidden: hidden,
    };
  });
  const images = [...document.images].map((i) => ({
    src: i.getAttribute("src"), complete: i.complete, natural_width: i.naturalWidth,
    shown_width: px(i.getBoundingClientRect().width),
  }));
  const root = document.documentElement;
  const out = document.createElement("pre");
  out.id = "__CHECK_ID__";
  out.style.display = "none";
  out.textContent = JSON.stringify({
    tables, images, viewport_width: window.innerWidth,
    page_width: root.scrollWidth, page_height: root.scrollHeight,
  });
  document.body.appendChild(out);
});
""".replace("__CHECK_ID__", _CHECK_ID)


def find_chromium() -> str | None:
    """The Chromium / Chrome binary to use: ``$SEMCOM_CHROMIUM``, else the first of
    :data:`CHROMIUM_NAMES` found; None when there is none."""
    env = os.environ.get("SEMCOM_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


_UNAVAILABLE: dict[str, str | None] = {}


def browser_unavailable_reason() -> str | None:
    """Why :func:`check_in_browser` / :func:`render_screenshot` cannot run here, or None."""
    exe = find_chromium()
    if exe is None:
        return (
            "no headless Chromium found (install Debian's `chromium` package, or point "
            "$SEMCOM_CHROMIUM at a Chromium/Chrome binary)"
        )
    if exe not in _UNAVAILABLE:
        import subprocess

        try:
            done = subprocess.run(
                [exe, "--version"], capture_output=True, text=True, timeout=30, check=False
            )
            ok = done.returncode == 0
            why = f"{exe} --version failed: {(done.stderr or done.stdout).strip()[-200:]}"
        except (OSError, subprocess.SubprocessError) as exc:
            ok, why = False, f"{exe} does not run: {exc}"
        _UNAVAILABLE[exe] = None if ok else why
    return _UNAVAILABLE[exe]


def _chromium(args: Sequence[str], timeout: float) -> str:
    """Run headless Chromium with a fresh profile; its stdout. RuntimeError on failure."""
    import signal
    import subprocess
    import tempfile

    exe = find_chromium()
    if exe is None:
        raise RuntimeError(browser_unavailable_reason() or "no Chromium")
    with tempfile.TemporaryDirectory(prefix="semcom-chromium-") as profile:
        cmd = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--disable-dev-shm-usage", "--mute-audio", f"--user-data-dir={profile}", *args,
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # its helper processes go with it on a timeout
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"Chromium did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        tail = " | ".join(err.strip().splitlines()[-3:])
        raise RuntimeError(f"Chromium exited with status {proc.returncode}: {tail}")
    return out


@dataclass
class BrowserCheck:
    """What headless Chromium rendered of a report's ``index.html``.

    ``tables``: per table, its width and that of the box holding it (``scroll_width`` /
    ``client_width`` / ``overflow_x``) and how many BD-rate cells lie outside that box
    without scrolling; ``images``: per ``<img>``, ``complete`` and ``natural_width``.
    """

    index: Path
    width: int
    tables: list[dict[str, Any]]
    images: list[dict[str, Any]]
    viewport_width: int
    page_width: int
    page_height: int

    def overflowing(self) -> list[dict[str, Any]]:
        """Tables wider than their box (fine when the box scrolls)."""
        return [t for t in self.tables if t["scroll_width"] > t["client_width"]]

    def problems(self) -> list[str]:
        """Everything wrong with the rendered page, one line each (empty: all good)."""
        out = []
        for t in self.tables:
            where = f"table {t['index']} ({t['section'] or 'no section'})"
            if t["scroll_width"] > t["client_width"] and t["overflow_x"] not in (
                "auto",
                "scroll",
            ):
                out.append(
                    f"{where} is {t['scroll_width']} px wide in a {t['client_width']} px box "
                    "that does not scroll"
                )
            if t["bd_cells_hidden"]:
                out.append(f"{where}: {t['bd_cells_hidden']} BD-rate cell(s) out of view")
        for img in self.images:
            if not (img["complete"] and img["natural_width"] > 0):
                out.append(f"image {img['src']!r} did not load")
        if self.page_width > self.viewport_width:
            out.append(
                f"the page is {self.page_width} px wide at a {self.viewport_width} px window"
            )
        return out


def check_in_browser(
    report_dir: str | Path, *, width: int = 1280, height: int = 2000, timeout: float = 90.0
) -> BrowserCheck:
    """Render ``report_dir/index.html`` in headless Chromium at ``width`` px and measure
    it (see :class:`BrowserCheck`). The page is measured from a temporary copy holding a
    small script (the report itself has none). RuntimeError when Chromium is missing or
    fails (:func:`browser_unavailable_reason` says why beforehand)."""
    out = Path(report_dir)
    index = out / INDEX_HTML
    if not index.is_file():
        raise InputError(f"no {INDEX_HTML} in {out}")
    reason = browser_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    text = index.read_text(encoding="utf-8").replace(' loading="lazy"', "")
    script = f"<script>{_CHECK_JS}</script>"
    text = text.replace("</body>", script + "</body>", 1) if "</body>" in text else text + script
    probe = out / f".{_CHECK_ID}-{uuid.uuid4().hex[:8]}.html"
    probe.write_text(text, encoding="utf-8")
    found = None
    try:
        for _ in range(2):  # a second try if the first dump came before the load event
            dom = _chromium(
                [
                    f"--window-size={width},{height}",
                    "--virtual-time-budget=5000",
                    "--dump-dom",
                    probe.resolve().as_uri(),
                ],
                timeout,
            )
            found = re.search(rf'<pre id="{_CHECK_ID}"[^>]*>(.*?)</pre>', dom, re.S)
            if found:
                break
    finally:
        probe.unlink(missing_ok=True)
    if not found:
        raise RuntimeError("the page check did not finish in Chromium (no result in the DOM)")
    data = json.loads(html.unescape(found.group(1)))
    return BrowserCheck(
        index=index,
        width=width,
        tables=data["tables"],
        images=data["images"],
        viewport_width=int(data["viewport_width"]),
        page_width=int(data["page_width"]),
        page_height=int(data["page_height"]),
    )


def render_screenshot(
    report_dir: str | Path,
    path: str | Path | None = None,
    *,
    width: int = 1280,
    height: int | None = None,
    timeout: float = 90.0,
) -> Path | None:
    """Screenshot ``report_dir/index.html`` as headless Chromium renders it at ``width``
    px into ``path`` (default ``report_dir/screenshot.png``); returns the PNG's path.

    ``height`` None: the whole page (measured first; at most 16,000 px). Returns None,
    with the reason on stderr, when Chromium is missing or fails: a report never fails
    for want of a browser."""
    out = Path(report_dir)
    dest = Path(path) if path is not None else out / SCREENSHOT_PNG
    reason = browser_unavailable_reason()
    if reason is None:
        try:
            if height is None:
                height = check_in_browser(out, width=width, timeout=timeout).page_height
            height = min(max(int(height), 600), 16000)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.stem}.{uuid.uuid4().hex[:8]}.png")
            try:
                _chromium(
                    [
                        f"--window-size={width},{height}",
                        "--virtual-time-budget=5000",
                        f"--screenshot={tmp}",
                        (out / INDEX_HTML).resolve().as_uri(),
                    ],
                    timeout,
                )
                if not (tmp.is_file() and tmp.stat().st_size > 0):
                    raise RuntimeError("Chromium wrote no screenshot")
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            return dest
        except (RuntimeError, OSError, InputError, ValueError, KeyError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
    _emit([f"no screenshot of the report: {reason}"])
    return None


# --------------------------------------------------------------------------- all of it


def write_report(
    records: Sequence[PointRecord | Mapping[str, Any]],
    out_dir: str | Path,
    extra_sections: Sequence[ExtraSection] | None = None,
    *,
    anchor_scheme: str | None = None,
    screenshot: bool = False,
) -> Path:
    """Write results.json/.csv, PNG plots and index.html into ``out_dir``; returns index.html.

    Repeated records of the same point (same measurements) are written once, with a note
    on stderr (:func:`dedupe_records`). ``screenshot``: also save ``screenshot.png``, the
    page as headless Chromium renders it (:func:`render_screenshot`; skipped with a note
    when there is no Chromium).
    """
    notes: list[str] = []
    recs = dedupe_records(_require(records), notes=notes, on_conflict="keep")
    _emit(notes)
    out = Path(out_dir)
    write_results(recs, out)
    plots = make_plots(recs, out)
    index = write_html(recs, out, plots, extra_sections, anchor_scheme=anchor_scheme)
    if screenshot:
        render_screenshot(out)
    return index
