"""``results.json`` / ``results.csv``: writing, reading, and merging several runs.

:func:`write_results` writes both files; :func:`load_results` reads and validates one;
:func:`merge_results` puts several together (repeats dropped, conflicting runs refused,
by :func:`dedupe_records`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from semcom.errors import InputError
from semcom.experiments.records import PointRecord, current_git_commit, now_iso, to_json_safe
from semcom.experiments.report.format import _round_text
from semcom.experiments.report.groups import (
    _as_records,
    _cost_keys,
    _metrics,
    _timing_keys,
    _unique,
)

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"

_BASE_COLUMNS = (
    "scheme", "rate_label", "channel", "dataset", "split", "n_images", "seed",
    "mean_bytes", "mean_channel_bytes", "bpp", "failure_rate", "target_bytes", "over_budget",
)  # fmt: skip
_TAIL_COLUMNS = ("version", "git_commit", "created")


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


def _emit(notes: Sequence[str]) -> None:
    import sys

    for note in notes:
        print(f"semcom: {note}", file=sys.stderr)


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
    columns += [f"cost.{k}" for k in _cost_keys(records)]  # only when some record has one
    columns += [f"messages.{k}" for k in sorted({k for r in records for k in r.messages})]
    columns += [f"timing.{k}" for k in _timing_keys(records)]
    columns += [f"channel_config.{k}" for k in configs]
    columns += list(_TAIL_COLUMNS)
    if any(r.extra for r in records):
        columns.append("extra")
    rows = []
    for rec in records:
        d = rec.to_dict()
        row = {c: _csv_cell(d.get(c)) for c in (*_BASE_COLUMNS, *_TAIL_COLUMNS)}
        for group in ("settings", "metrics", "cost", "messages", "timing", "channel_config"):
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
    out.update({f"cost.{k}": v for k, v in rec.cost.items()})
    if rec.messages:
        out["messages"] = _canon(rec.messages)
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
    the same measurements (bytes, failures, budget, metrics, other costs, sessions;
    timing and creation time may differ) is dropped, and a line saying so is appended to ``notes``.

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
