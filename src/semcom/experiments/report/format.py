"""How numbers and names are shown: metric values, bytes, percentages, metric labels.

Numbers are shown rounded; results.json and results.csv keep full precision.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from semcom.experiments.records import PointRecord, higher_is_better
from semcom.experiments.report.groups import _in_budget

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

#: Metrics shown with 3 decimals (fractions / unit-range scores).
_UNIT_METRICS = ("accuracy", "accuracy_ft", "miou", "pixel_accuracy", "ssim")

#: The mark of a point whose messages went over their byte budget.
OVER_BUDGET_FLAG = "⚑"


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


def _budget_text(rec: PointRecord) -> str:
    """``240`` / ``240 ⚑ 31.2 %`` (over budget) / ``–`` (no byte budget)."""
    target = format_bytes(rec.target_bytes) if rec.target_bytes is not None else "–"
    if _in_budget(rec):
        return target
    return f"{target} {OVER_BUDGET_FLAG} {_fmt_pct(rec.over_budget)}"


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


def _fmt_count(value: float | None) -> str:
    """A mean count (messages per image): ``1``, ``1.5``, ``2.333``; ``–`` when missing."""
    if value is None or not math.isfinite(value):
        return "–"
    return format_metric("", value, compact=True)


def metric_label(metric: str, direction: bool = True, lower: Iterable[str] = ()) -> str:
    """Human label of a metric name with units (and "lower is better" when ``direction``;
    ``lower``: metrics the records declare lower-is-better besides the named ones)."""
    if metric.startswith("featdist"):
        inner = metric[len("featdist") :].strip("[]")
        label = f"feature distance [{inner}]" if inner else "feature distance"
    elif metric.startswith("lpips") and metric != "lpips":
        label = f"LPIPS {metric[len('lpips') :].strip('[]_-')}"
    else:
        label = _METRIC_LABELS.get(metric, metric)
    if direction and not higher_is_better(metric, lower):
        return f"{label} (lower is better)"
    return label
