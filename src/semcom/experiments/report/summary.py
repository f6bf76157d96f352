"""The terminal summary: compact rich tables, one per condition, and the headline BD-rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from semcom.errors import InputError
from semcom.experiments.records import PointRecord
from semcom.experiments.report.bdrate import best_vs_best
from semcom.experiments.report.format import (
    OVER_BUDGET_FLAG,
    _budget_text,
    format_bytes,
    format_metric,
)
from semcom.experiments.report.groups import (
    _by_condition,
    _data_summary,
    _in_budget,
    _metrics,
    _require,
    _unique,
)
from semcom.experiments.report.results import dedupe_records


def short_metric(name: str, width: int = 18) -> str:
    """A metric name for a narrow column: ``accuracy[classifier[/runs/mnv2.safetensors]]``
    -> ``accuracy[mnv2]`` (the judge's file stem), names without a judge unchanged."""
    base, bracket, judge = name.partition("[")
    if not bracket or len(name) <= 12:
        return name
    inner = judge.rstrip("]").rsplit("[", 1)[-1]
    stem = inner.replace("\\", "/").rsplit("/", 1)[-1].split(".", 1)[0] or inner
    return f"{base}[{stem[:width]}]"


def print_summary(
    records: Sequence[PointRecord | Mapping[str, Any]],
    console: Any = None,
    max_metrics: int = 5,
    *,
    anchor_scheme: str | None = None,
) -> None:
    """Print compact rich tables, one per channel: scheme, rate, bytes, main metrics, failures;
    then the headline task BD-rate (:func:`best_vs_best`: the best scheme of role
    ``proposed`` against the best ``baseline``; baselines that cannot be ranked:
    ``anchor_scheme`` first) when both roles were run.

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
            name = short_metric(m)
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
            entries = best_vs_best(recs, metric, anchor_scheme=anchor_scheme)
        except (InputError, ImportError):
            continue
        for e in entries:
            value = e.display()
            console.print(
                Text(
                    f"task BD-rate ({metric}, {e.condition}): best proposed scheme "
                    f"{e.candidate or '-'} vs best baseline {e.baseline}: {value}"
                )
            )
