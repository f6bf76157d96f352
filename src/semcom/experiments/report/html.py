"""``index.html``: a static, self-contained page (no script) of the run.

Run metadata, a summary table per condition, the plots, the best-vs-best headline (the
best ``proposed`` scheme against the best ``baseline``), the BD-rate tables against the
anchor and any extra sections. Every text from the records is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from semcom.errors import InputError
from semcom.experiments.records import PointRecord, higher_is_better, now_iso, to_json_safe
from semcom.experiments.report.bdrate import (
    DOMINATED,
    DOMINATES,
    _verdict_text,
    bd_rate_table,
    best_vs_best,
    default_anchor,
)
from semcom.experiments.report.format import (
    OVER_BUDGET_FLAG,
    _budget_text,
    _fmt_bpp,
    _fmt_count,
    _fmt_ms,
    _fmt_pct,
    format_bytes,
    format_metric,
    metric_label,
)
from semcom.experiments.report.groups import (
    _by_condition,
    _cost_keys,
    _data_summary,
    _in_budget,
    _lower,
    _mean_messages,
    _metrics,
    _require,
    _role_listing,
    _timing_keys,
    _unique,
    _with_role,
)
from semcom.experiments.report.results import _atomic_write_text, dedupe_records

#: An extra HTML section: (title, trusted HTML fragment) or (title, path of an image).
ExtraSection = tuple[str, "str | Path"]

INDEX_HTML = "index.html"


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


def _best_section(recs: Sequence[PointRecord], anchor: str | None) -> str:
    """The best-vs-best table (:func:`best_vs_best`), or "" when it has no row."""
    metrics = [m for m in ("accuracy", "accuracy_ft", "miou") if m in _metrics(recs)]
    rows = []
    for metric in metrics:
        try:
            entries = best_vs_best(recs, metric, anchor_scheme=anchor)
        except (InputError, ImportError):
            continue
        for e in entries:
            shown = "<br>".join(f"{_e(s)}: {_e(_ranking_text(v, n))}" for s, v, n in e.ranking)
            verdict = e.verdict or (DOMINATES if e.dominates else "")
            rows.append(
                f'<tr><td class="wrap">{_e(metric_label(metric, lower=_lower(recs)))}</td>'
                f'<td class="wrap">{_e(e.condition)}</td>'
                f"<td>{_e(e.candidate or '-')}</td><td>{_e(e.baseline)}</td>"
                + _verdict_cell(e.bd_rate, verdict, e.reason)
                + f'<td class="cfg list">{shown}</td></tr>'
            )
    if not rows:
        return ""
    proposed, baselines = _role_listing(recs, "proposed"), _role_listing(recs, "baseline")
    return (
        f'<p class="note">Task BD-rate of the best proposed scheme ({_e(proposed)}) against '
        f"the best baseline ({_e(baselines)}) per channel, over the quality range both curves "
        "cover. Negative = fewer bytes for the same task quality. Where the BD-rate is "
        f"undefined, <b>{DOMINATES}</b> = over the byte counts both were run at, the proposed "
        "scheme matches or beats every baseline point with no more bytes "
        f"(<b>{DOMINATED}</b>: the reverse); otherwise n/a and why."
        '</p><div class="scroll"><table class="best"><thead><tr><th>metric</th>'
        "<th>channel</th><th>best proposed scheme</th><th>best baseline</th>"
        '<th class="num">BD-rate</th><th>every proposed scheme vs that baseline</th></tr>'
        "</thead><tbody>" + "".join(rows) + "</tbody></table></div>"
    )


def _columns_note(recs: Sequence[PointRecord]) -> str:
    """What the session and cost columns mean, when the summary has them ("" otherwise)."""
    out = ""
    if any(_mean_messages(r) is not None for r in recs):
        out += " <b>messages</b>: mean messages per image (a session's; bytes are their sum)."
    if _cost_keys(recs):
        out += " " + ", ".join(f"<b>{_e(k)}</b>" for k in _cost_keys(recs))
        out += ": other costs than bytes, as the scheme measures them."
    who: dict[str, list[str]] = {}
    for r in recs:
        for metric, judge in r.judges.items():
            if judge not in who.setdefault(metric, []):
                who[metric].append(judge)
    if who:
        shown = "; ".join(f"<b>{_e(m)}</b>: {_e(', '.join(j))}" for m, j in who.items())
        out += f" Measured by (receiver = the receiver's own answer): {shown}."
    return out


def _summary_table(recs: Sequence[PointRecord], metrics: Sequence[str]) -> str:
    metrics = [m for m in metrics if any(m in r.metrics for r in recs)]
    timings = _timing_keys(recs)
    order = {s: i for i, s in enumerate(_unique(r.scheme for r in recs))}
    rows = sorted(recs, key=lambda r: (order[r.scheme], r.mean_bytes))
    budget = any(r.target_bytes is not None or not _in_budget(r) for r in recs)
    runs = len({(r.n_images, r.seed) for r in recs}) > 1
    sessions = any(_mean_messages(r) is not None for r in recs)
    costs = _cost_keys(recs)
    head = ["<th>scheme</th>", "<th>rate</th>"]
    if runs:
        head.append('<th class="num">images / seed</th>')
    if budget:
        head.append('<th class="num" title="byte budget of the rate setting">budget</th>')
    head += [f'<th class="num">{_e(h)}</th>' for h in ("bytes", "channel bytes", "bpp")]
    if sessions:
        head.append('<th class="num" title="mean messages per image">messages</th>')
    for k in costs:
        name = _e(k).replace("_", "_<wbr>")
        head.append(f'<th class="num" title="{_e(f"cost: {k}")}">{name}</th>')
    for m in metrics:
        arrow = "↑" if higher_is_better(m, _lower(recs)) else "↓"
        name = _e(m).replace("[", "<wbr>[").replace("_", "_<wbr>")
        label = _e(metric_label(m, lower=_lower(recs)))
        head.append(f'<th class="num" title="{label}">{name}&nbsp;{arrow}</th>')
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
        if sessions:
            cells.append(f'<td class="num">{_fmt_count(_mean_messages(r))}</td>')
        for k in costs:
            cells.append(f'<td class="num">{_e(format_metric(k, r.cost.get(k)))}</td>')
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
        "that one curve is better at every byte count both reach." + _references_note(recs) + "</p>"
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
            label = _e(metric_label(metric, lower=_lower(recs)))
            parts.append(f'<h3>{label}</h3><p class="note">{_e(exc)}</p>')
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
            f"<h3>{_e(metric_label(metric, lower=_lower(recs)))}</h3>"
            f'<div class="scroll"><table class="bd"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body)
            + "</tbody></table></div>"
        )
    return "\n".join(parts)


def _references_note(recs: Sequence[PointRecord]) -> str:
    """`` Reference schemes (raw) are plotted, never compared.`` ("" when there is none)."""
    refs = _with_role(recs, "reference")
    if not refs:
        return ""
    return f" Reference schemes ({_e(', '.join(refs))}) are plotted, never compared."


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
    path), the best proposed scheme against the best baseline per channel
    (:func:`best_vs_best`; baselines that cannot be ranked: ``anchor_scheme`` first),
    BD-rate tables against ``anchor_scheme`` (default: :func:`default_anchor`) and
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
        '<p class="note"><b>bytes</b>: mean bytes per image: every message of its session, '
        "each whole (container header included). <b>channel bytes</b>: what the channel "
        "carried (packet headers / FEC included). <b>bpp</b>: bytes × 8 / pixels. "
        "<b>failed</b>: images whose session left no usable answer, e.g. a message the "
        "receiver could not decode (a fallback output was scored). ↑/↓: higher/lower is better."
        + _columns_note(recs)
        + "</p>",
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
    best = _best_section(recs, anchor)
    if best:
        parts.append("<h3>Best proposed scheme vs best baseline</h3>" + best)
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
