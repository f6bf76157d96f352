"""All of the report at once: :func:`write_report`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from semcom.experiments.records import PointRecord
from semcom.experiments.report.browser import render_screenshot
from semcom.experiments.report.groups import _require
from semcom.experiments.report.html import ExtraSection, write_html
from semcom.experiments.report.plots import make_plots
from semcom.experiments.report.results import _emit, dedupe_records, write_results


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
