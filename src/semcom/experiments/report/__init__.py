"""The sweep report: ``results.json``, ``results.csv``, PNG plots and a static ``index.html``.

Every plot and table puts task quality against ``mean_bytes`` -- the mean size of the
*whole* message (container header included) per image -- so schemes are compared on the
bytes they actually send. ``write_report`` does everything and returns the HTML path::

    index = write_report(records, "runs/sweep1")
    print_summary(records)

Records are grouped into *conditions*: the channel name, plus ``dataset/split`` when the
records mix several data sets. Each condition gets its own table and subplot.

Schemes are compared by the role their records declare (``PointRecord.role``), never by
name: the headline (:func:`best_vs_best`) is the best ``proposed`` scheme against the
best ``baseline``; the BD-rate tables compare every scheme with an anchor (default: the
first baseline, :func:`default_anchor`); ``reference`` schemes (raw pixels, ...) are
plotted, never compared, and do not set the plots' ranges. Schemes of one family
(``PointRecord.family``) share a plot marker. A new scheme that declares its role shows
up correctly without any change here.

Points whose messages went over their byte budget (``PointRecord.over_budget > 0``) are
flagged (⚑ in the tables, hollow markers in the plots) and left out of every BD-rate.
Numbers are shown rounded (:func:`format_metric`, :func:`format_bytes`); results.json and
results.csv keep full precision. Several results files are put together with
:func:`merge_results` (repeats dropped, conflicting runs refused). With Chromium installed,
:func:`check_in_browser` measures the rendered page and :func:`render_screenshot` saves it
as ``screenshot.png``.

The modules: :mod:`.results` (results.json / CSV, merging), :mod:`.bdrate` (Pareto
fronts, BD-rate tables, best vs best), :mod:`.plots`, :mod:`.html`, :mod:`.summary` (the
terminal), :mod:`.browser` (Chromium), :mod:`.format` (numbers as shown), :mod:`.groups`
(conditions, metrics, roles) and :mod:`.build` (:func:`write_report`).
"""

from __future__ import annotations

from semcom.experiments.report.bdrate import (
    DOMINATED,
    DOMINATES,
    BDRateEntry,
    BestVsBest,
    bd_rate_table,
    best_vs_best,
    default_anchor,
    pareto_front,
)
from semcom.experiments.report.browser import (
    CHROMIUM_NAMES,
    SCREENSHOT_PNG,
    BrowserCheck,
    browser_unavailable_reason,
    check_in_browser,
    find_chromium,
    render_screenshot,
)
from semcom.experiments.report.build import write_report
from semcom.experiments.report.format import (
    OVER_BUDGET_FLAG,
    format_bytes,
    format_metric,
    metric_label,
)
from semcom.experiments.report.html import INDEX_HTML, ExtraSection, write_html
from semcom.experiments.report.plots import BYTES_LABEL, make_plots
from semcom.experiments.report.plots import _plot_figure as _plot_figure
from semcom.experiments.report.plots import _scheme_styles as _scheme_styles
from semcom.experiments.report.results import (
    RESULTS_CSV,
    RESULTS_JSON,
    dedupe_records,
    load_results,
    merge_results,
    write_results,
)
from semcom.experiments.report.summary import print_summary

__all__ = [
    "BYTES_LABEL",
    "CHROMIUM_NAMES",
    "DOMINATED",
    "DOMINATES",
    "INDEX_HTML",
    "OVER_BUDGET_FLAG",
    "RESULTS_CSV",
    "RESULTS_JSON",
    "SCREENSHOT_PNG",
    "BDRateEntry",
    "BestVsBest",
    "BrowserCheck",
    "ExtraSection",
    "bd_rate_table",
    "best_vs_best",
    "browser_unavailable_reason",
    "check_in_browser",
    "dedupe_records",
    "default_anchor",
    "find_chromium",
    "format_bytes",
    "format_metric",
    "load_results",
    "make_plots",
    "merge_results",
    "metric_label",
    "pareto_front",
    "print_summary",
    "render_screenshot",
    "write_html",
    "write_report",
    "write_results",
]
