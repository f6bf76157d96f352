"""The result record: one ``PointRecord`` per sweep point (scheme x rate x channel).

A record is what the sweep measures and what the report reads. ``to_dict()`` gives a
JSON-able dict; ``from_dict()`` validates untrusted input (a ``results.json`` written by
another version, edited by hand, ...) and raises :class:`~semcom.errors.InputError`
naming the offending field.

Non-finite floats (NaN, +-inf) are not valid JSON: :func:`to_json_safe` writes them as
``null`` and ``from_dict`` reads ``null`` metrics/timings back as NaN.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import numbers
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from semcom.errors import InputError
from semcom.vocabulary import ROLES

__all__ = [
    "LEGACY_ROLES",
    "LOWER_IS_BETTER",
    "METRIC_ORDER",
    "ROLES",
    "PointRecord",
    "current_git_commit",
    "higher_is_better",
    "legacy_role",
    "metric_sort_key",
    "now_iso",
    "to_json_safe",
]

#: Metric name prefixes for which a *smaller* value is better (``featdist[...]``, ...).
LOWER_IS_BETTER: tuple[str, ...] = ("featdist", "lpips", "bpp")

#: Canonical display order of the well-known metrics; others follow alphabetically.
METRIC_ORDER: tuple[str, ...] = (
    "accuracy",
    "accuracy_ft",
    "miou",
    "pixel_accuracy",
    "psnr",
    "ssim",
)


#: ``(role, family)`` of the schemes that results written before records carried a role
#: name (read only by :meth:`PointRecord.from_dict` for such files; new records carry
#: what the scheme declares).
LEGACY_ROLES: dict[str, tuple[str, str]] = {
    "raw": ("reference", "raw"),
    "jpeg": ("baseline", "classical-codec"),
    "webp": ("baseline", "classical-codec"),
    "avif": ("baseline", "classical-codec"),
}


def legacy_role(scheme: str) -> tuple[str, str]:
    """``(role, family)`` of a record written without them, from its scheme's name."""
    base = scheme.split("[", 1)[0]
    if base in LEGACY_ROLES:
        return LEGACY_ROLES[base]
    if base.startswith("patch"):
        return ("proposed", "attention-patch")
    return ("proposed", base)


def higher_is_better(metric: str, lower: Iterable[str] = ()) -> bool:
    """False when ``metric`` is in ``lower`` (what the records' judges declared lower-is-
    better) or starts with one of :data:`LOWER_IS_BETTER`, else True."""
    if metric in set(lower):
        return False
    return not any(metric.startswith(prefix) for prefix in LOWER_IS_BETTER)


def metric_sort_key(metric: str) -> tuple[int, str]:
    """Sort key putting :data:`METRIC_ORDER` first, then the rest alphabetically."""
    if metric in METRIC_ORDER:
        return (METRIC_ORDER.index(metric), "")
    return (len(METRIC_ORDER), metric)


def now_iso() -> str:
    """The current UTC time as an ISO-8601 string with seconds precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@lru_cache(maxsize=8)
def current_git_commit(path: str | Path | None = None) -> str | None:
    """Short hash of the git commit checked out at ``path`` (default: this package), or None
    (asked of git once per process and path: every record of a sweep names it)."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def _plain(value: Any) -> Any:
    """numpy / torch scalars as Python ``int`` / ``float``; anything else unchanged."""
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def to_json_safe(value: Any) -> Any:
    """Copy of ``value`` with numpy/torch scalars made plain and non-finite floats as None."""
    value = _plain(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_safe(v) for v in value]
    return value


# --------------------------------------------------------------------------- validation


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _str(d: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = d[key]
    if not isinstance(value, str) or (not allow_empty and not value):
        raise InputError(f"record field {key!r} must be a non-empty string, got {value!r}")
    return value


def _int(d: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int:
    value = d[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"record field {key!r} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise InputError(f"record field {key!r} must be >= {minimum}, got {value}")
    return value


def _float(d: Mapping[str, Any], key: str, *, lo: float = 0.0, hi: float = math.inf) -> float:
    value = d[key]
    if not _is_number(value):
        raise InputError(f"record field {key!r} must be a number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise InputError(f"record field {key!r} must be in [{lo}, {hi}], got {value}")
    return value


def _json_dict(d: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = d[key]
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InputError(f"record field {key!r} must be an object with string keys")
    try:
        json.dumps(to_json_safe(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"record field {key!r} is not JSON-serialisable: {exc}") from None
    return dict(value)


def _number_dict(d: Mapping[str, Any], key: str) -> dict[str, float]:
    value = d[key]
    if not isinstance(value, Mapping):
        raise InputError(f"record field {key!r} must be an object of numbers")
    out: dict[str, float] = {}
    for name, number in value.items():
        if not isinstance(name, str) or not name:
            raise InputError(f"record field {key!r} has an invalid key {name!r}")
        if number is None:
            out[name] = math.nan
        elif _is_number(number):
            out[name] = float(number)
        else:
            raise InputError(f"record field {key}.{name} must be a number, got {number!r}")
    return out


# --------------------------------------------------------------------------- the record


@dataclass
class PointRecord:
    """Everything measured at one sweep point (one scheme, one rate setting, one channel).

    ``mean_bytes`` is the mean size of the whole message container (header included);
    ``mean_channel_bytes`` what the channel carried (packet headers / FEC included);
    ``failure_rate`` the fraction of sessions without a usable answer (every message
    lost or undecodable, or nothing sent and no answer kept by the sender).

    ``target_bytes`` is the byte budget of the rate setting when the rate *is* one (a
    codec asked for at most N bytes per image), else None; ``over_budget`` the fraction
    of images whose message exceeded that budget (0 when there is none). The report marks
    points with ``over_budget > 0`` and leaves them out of BD-rate comparisons. Both are
    optional in ``from_dict`` (results written before they existed load as None / 0).

    ``role`` (one of :data:`ROLES`) and ``family`` (e.g. ``"classical-codec"``,
    ``"attention-patch"``) are what the scheme declares; the report groups and compares
    by them, never by scheme names. ``cost`` holds other costs than bytes, by name (e.g.
    ``{"patch_fraction": 0.25}``, a paper's own cost measure). ``messages`` describes the
    sessions: ``{"mean": messages per image, "max": ..., "bytes_per_step": [mean bytes of
    the k-th message over the sessions that sent one, ...], "sessions_per_step": [...]}``
    (``mean_bytes`` is the mean *sum* over a session's messages). ``judges`` names, per
    metric, who produced it (``"receiver"`` for a receiver's own answers, else the judge);
    ``lower_is_better`` the metrics whose judge declared smaller values better (the report
    reads directions through :func:`higher_is_better` with it).
    """

    scheme: str
    settings: dict[str, Any]
    rate_label: str
    channel: str
    channel_config: dict[str, Any]
    dataset: str
    split: str
    n_images: int
    seed: int
    mean_bytes: float
    mean_channel_bytes: float
    bpp: float
    metrics: dict[str, float]
    failure_rate: float
    timing: dict[str, float] = field(default_factory=dict)
    version: str = ""
    git_commit: str | None = None
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    target_bytes: float | None = None
    over_budget: float = 0.0
    role: str = ""
    family: str = ""
    cost: dict[str, float] = field(default_factory=dict)
    messages: dict[str, Any] = field(default_factory=dict)
    judges: dict[str, str] = field(default_factory=dict)
    lower_is_better: list[str] = field(default_factory=list)

    REQUIRED = (
        "scheme", "settings", "rate_label", "channel", "channel_config", "dataset", "split",
        "n_images", "seed", "mean_bytes", "mean_channel_bytes", "bpp", "metrics",
        "failure_rate", "timing", "version", "git_commit", "created",
    )  # fmt: skip
    #: Fields ``from_dict`` accepts but does not require (with their defaults).
    OPTIONAL = (
        "target_bytes", "over_budget", "extra", "role", "family", "cost", "messages", "judges",
        "lower_is_better",
    )  # fmt: skip

    def __post_init__(self) -> None:
        # numpy / torch scalars from the sweep become plain numbers (clean JSON and CSV)
        try:
            for name in ("mean_bytes", "mean_channel_bytes", "bpp", "failure_rate"):
                setattr(self, name, float(_plain(getattr(self, name))))
            self.n_images, self.seed = int(_plain(self.n_images)), int(_plain(self.seed))
            self.over_budget = float(_plain(self.over_budget))
            if self.target_bytes is not None:
                self.target_bytes = float(_plain(self.target_bytes))
            self.metrics = {
                str(k): math.nan if v is None else float(_plain(v)) for k, v in self.metrics.items()
            }
            self.timing = {
                str(k): math.nan if v is None else float(_plain(v)) for k, v in self.timing.items()
            }
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"invalid record value: {exc}") from None
        if not 0.0 <= self.over_budget <= 1.0:
            msg = f"record field 'over_budget' must be in [0, 1], got {self.over_budget}"
            raise InputError(msg)
        if self.target_bytes is not None and not (
            math.isfinite(self.target_bytes) and self.target_bytes > 0
        ):
            msg = f"record field 'target_bytes' must be > 0 or None, got {self.target_bytes}"
            raise InputError(msg)
        if not self.role or not self.family:  # built without them: from the name
            role, family = legacy_role(self.scheme)
            self.role, self.family = self.role or role, self.family or family
        if self.role not in ROLES:
            msg = f"record field 'role' must be one of {', '.join(ROLES)}, got {self.role!r}"
            raise InputError(msg)
        try:
            self.cost = {str(k): float(_plain(v)) for k, v in self.cost.items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"invalid record cost: {exc}") from None
        self.judges = {str(k): str(v) for k, v in self.judges.items()}
        self.lower_is_better = sorted({str(m) for m in self.lower_is_better})
        self.settings = to_json_safe(self.settings)
        self.channel_config = to_json_safe(self.channel_config)
        self.messages = to_json_safe(self.messages)
        if not self.version:
            from semcom import __version__

            self.version = __version__
        if not self.created:
            self.created = now_iso()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict in the documented field order (``extra`` only when non-empty)."""
        out: dict[str, Any] = {
            "scheme": self.scheme,
            "settings": dict(self.settings),
            "rate_label": self.rate_label,
            "channel": self.channel,
            "channel_config": dict(self.channel_config),
            "dataset": self.dataset,
            "split": self.split,
            "n_images": self.n_images,
            "seed": self.seed,
            "mean_bytes": self.mean_bytes,
            "mean_channel_bytes": self.mean_channel_bytes,
            "bpp": self.bpp,
            "metrics": dict(self.metrics),
            "failure_rate": self.failure_rate,
            "target_bytes": self.target_bytes,
            "over_budget": self.over_budget,
            "role": self.role,
            "family": self.family,
            "cost": dict(self.cost),
            "messages": dict(self.messages),
            "judges": dict(self.judges),
            "lower_is_better": list(self.lower_is_better),
            "timing": dict(self.timing),
            "version": self.version,
            "git_commit": self.git_commit,
            "created": self.created,
        }
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> PointRecord:
        """Validate ``data`` (e.g. parsed JSON) and build a record; InputError if malformed."""
        if not isinstance(data, Mapping):
            raise InputError(f"a record must be a JSON object, got {type(data).__name__}")
        missing = [k for k in cls.REQUIRED if k not in data]
        if missing:
            raise InputError(f"record is missing field(s): {', '.join(missing)}")
        known = (*cls.REQUIRED, *cls.OPTIONAL)
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise InputError(f"record has unknown field(s): {', '.join(unknown)}")
        commit = data["git_commit"]
        if commit is not None and not isinstance(commit, str):
            raise InputError(f"record field 'git_commit' must be a string or null, got {commit!r}")
        created = _str(data, "created")
        try:
            _dt.datetime.fromisoformat(created)
        except ValueError:
            msg = f"record field 'created' is not an ISO timestamp: {created!r}"
            raise InputError(msg) from None
        target = data.get("target_bytes")
        if target is not None:
            target = _float(data, "target_bytes")
            if target <= 0:
                raise InputError(f"record field 'target_bytes' must be > 0 or null, got {target}")
        over = _float(data, "over_budget", hi=1.0) if "over_budget" in data else 0.0
        scheme = _str(data, "scheme")
        role, family = legacy_role(scheme)
        if "role" in data:
            role = _str(data, "role")
        if "family" in data:
            family = _str(data, "family")
        judges = _json_dict(data, "judges") if "judges" in data else {}
        if not all(isinstance(v, str) for v in judges.values()):
            raise InputError("record field 'judges' must map metric names to strings")
        lower = data.get("lower_is_better", [])
        if not isinstance(lower, list) or not all(isinstance(m, str) for m in lower):
            raise InputError("record field 'lower_is_better' must be a list of metric names")
        metrics = data["metrics"] if isinstance(data["metrics"], Mapping) else {}
        strays = sorted({*lower, *judges} - set(metrics))
        if strays:
            msg = f"record fields 'lower_is_better' / 'judges' name metrics it lacks: {strays}"
            raise InputError(msg)
        if "messages" in data:
            _check_messages(data["messages"])
        plain = {name: read(data, name) for name, read in _READERS.items()}
        optional = {
            name: read(data, name) for name, read in _OPTIONAL_READERS.items() if name in data
        }
        return cls(
            scheme=scheme,
            **plain,
            **optional,
            git_commit=commit or None,
            created=created,
            target_bytes=target,
            over_budget=over,
            role=role,
            family=family,
            judges=judges,
            lower_is_better=lower,
        )


def _check_messages(value: Any) -> None:
    """A record's ``messages``: an object with ``mean``/``max`` >= 0 and per-step lists of
    numbers >= 0 (or empty: one message per session)."""
    if not isinstance(value, Mapping):
        raise InputError("record field 'messages' must be an object")
    known = {"mean", "max", "bytes_per_step", "sessions_per_step"}
    if set(value) - known:
        raise InputError(
            f"record field 'messages' has unknown key(s): {sorted(set(value) - known)}"
        )
    for key in ("mean", "max"):
        if key in value and not (_is_number(value[key]) and 0 <= value[key] < math.inf):
            raise InputError(f"record field messages.{key} must be a number >= 0")
    for key in ("bytes_per_step", "sessions_per_step"):
        steps = value.get(key, [])
        ok = isinstance(steps, list) and all(_is_number(v) and 0 <= v < math.inf for v in steps)
        if not ok:
            raise InputError(f"record field messages.{key} must be a list of numbers >= 0")


def _label(d: Mapping[str, Any], key: str) -> str:
    return _str(d, key, allow_empty=True)


def _count(d: Mapping[str, Any], key: str) -> int:
    return _int(d, key, minimum=0)


def _fraction(d: Mapping[str, Any], key: str) -> float:
    return _float(d, key, hi=1.0)


#: How :meth:`PointRecord.from_dict` reads each field that needs no cross-checks.
_READERS: dict[str, Any] = {
    "settings": _json_dict, "rate_label": _label, "channel": _str, "channel_config": _json_dict,
    "dataset": _str, "split": _str, "n_images": _count, "seed": _int, "mean_bytes": _float,
    "mean_channel_bytes": _float, "bpp": _float, "metrics": _number_dict,
    "failure_rate": _fraction, "timing": _number_dict, "version": _str,
}  # fmt: skip
#: The same for optional fields (their defaults when absent).
_OPTIONAL_READERS: dict[str, Any] = {
    "extra": _json_dict, "cost": _number_dict, "messages": _json_dict,
}  # fmt: skip
