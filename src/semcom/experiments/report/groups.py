"""The records as the report reads them: validated, grouped into conditions, by role.

A *condition* is the channel name, plus ``dataset/split`` when the records mix several
data sets; every table and plot panel is one condition. A scheme's *role* (baseline /
proposed / reference) and *family* are what its records declare
(:attr:`PointRecord.role`, :attr:`PointRecord.family`); the report compares and groups by
them, never by scheme names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from semcom.errors import InputError
from semcom.experiments.records import PointRecord, metric_sort_key

_TIMING_ORDER = ("encode_ms", "decode_ms")


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


def _cost_keys(records: Sequence[PointRecord]) -> list[str]:
    """The names of the other costs than bytes that any record holds, sorted."""
    return sorted({k for r in records for k in r.cost})


def _mean_messages(rec: PointRecord) -> float | None:
    """Mean messages per image of the point's sessions, or None when not recorded."""
    value = rec.messages.get("mean")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _lower(records: Iterable[PointRecord]) -> frozenset[str]:
    """Metrics the records' judges declared lower-is-better (see ``higher_is_better``):
    those that every record holding the metric declares so (one record cannot turn a
    metric around for the others)."""
    recs = list(records)
    declared = {m for r in recs for m in r.lower_is_better}
    return frozenset(
        m for m in declared if all(m in r.lower_is_better for r in recs if m in r.metrics)
    )


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _in_budget(rec: PointRecord) -> bool:
    """False when some of the point's messages exceeded its byte budget."""
    return not rec.over_budget > 0


def _data_summary(records: Sequence[PointRecord]) -> str:
    """``synthetic/test, 256 images`` (several data sets joined by ``; ``)."""
    parts = []
    for ds, split in _unique((r.dataset, r.split) for r in records):
        ns = sorted({r.n_images for r in records if (r.dataset, r.split) == (ds, split)})
        n = "/".join(str(x) for x in ns)
        parts.append(f"{ds}/{split}, {n} images")
    return "; ".join(parts)


# --------------------------------------------------------------------------- roles


def _roles(records: Iterable[PointRecord]) -> dict[str, str]:
    """Scheme -> role, in record order (a scheme's first record says)."""
    out: dict[str, str] = {}
    for r in records:
        out.setdefault(r.scheme, r.role)
    return out


def _families(records: Iterable[PointRecord]) -> dict[str, str]:
    """Scheme -> family, in record order (a scheme's first record says)."""
    out: dict[str, str] = {}
    for r in records:
        out.setdefault(r.scheme, r.family)
    return out


def _with_role(records: Iterable[PointRecord], role: str) -> list[str]:
    """The schemes of ``role``, in record order."""
    return [s for s, r in _roles(records).items() if r == role]


def _references(records: Iterable[PointRecord]) -> frozenset[str]:
    """The schemes of role ``reference``: plotted, never compared."""
    return frozenset(_with_role(records, "reference"))


def _role_listing(records: Sequence[PointRecord], role: str) -> str:
    """The schemes of ``role`` by family: ``family: a, b; other: c`` (record order)."""
    families = _families(records)
    by_family: dict[str, list[str]] = {}
    for scheme in _with_role(records, role):
        by_family.setdefault(families[scheme], []).append(scheme)
    return "; ".join(f"{fam}: {', '.join(schemes)}" for fam, schemes in by_family.items())
