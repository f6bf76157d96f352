"""The sweep: schemes x rate settings x channel conditions -> one record per point.

Data flows one way: each image goes through the scheme's transmitter (a session of zero,
one or several messages), each message through a seeded channel, then the scheme's
stateful receiver; the receivers' final answers are scored (:mod:`semcom.judges.scoring`:
their own logits / segmentation directly, reconstructions by the judges). A session
without a usable answer counts as a failure and is scored on a fallback, so task
metrics stay honest about losses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

import semcom
from semcom.errors import BudgetError, InputError
from semcom.experiments.distributed import LOCAL, Group
from semcom.experiments.records import PointRecord, current_git_commit, now_iso

if TYPE_CHECKING:
    from semcom.judges import Judge
    from semcom.schemes.base import Scheme
    from semcom.schemes.session import Decoded, Transmission


@dataclass
class EvalSet:
    """What the receiver's output is judged against.

    images: uint8 ``(N, 3, H, W)``; labels: int64 ``(N,)`` or None;
    masks: int64 ``(N, H, W)`` or None (255 = ignore).
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    masks: torch.Tensor | None
    dataset: str = "synthetic"
    split: str = "test"
    seed: int = 0
    #: the dataset's class ids (label ``i`` is ``classes[i]``: wnids, CamVid names), which
    #: judges with their own label set are mapped onto (``Judge.bind``); None: unknown
    classes: tuple[str, ...] | None = None


@dataclass
class SweepConfig:
    schemes: Sequence[str]
    channels: Sequence[str] = ("ideal",)
    rates: dict[str, Sequence[float]] = field(
        default_factory=dict
    )  # per scheme; default: scheme.default_rates
    seed: int = 0
    batch_size: int = 128


def synthetic_evalset(n: int, size: int = 64, split: str = "test", seed: int = 0) -> EvalSet:
    """``n`` images of the synthetic world's ``split`` with labels and masks."""
    from semcom.data.synthetic import SyntheticWorld

    world = SyntheticWorld(size=size)
    batch = world.generate(world.split_seeds(split, n))
    from semcom.data.synthetic import CLASS_NAMES

    return EvalSet(
        batch.images, batch.labels, batch.masks, "synthetic", split, seed, tuple(CLASS_NAMES)
    )


def byte_budget(scheme: Scheme, rate: float) -> float | None:
    """The byte budget a rate setting is (codecs), else None (patch fractions, bpp)."""
    return float(rate) if getattr(scheme, "rate_unit", None) == "bytes" else None


def transmit_all(scheme: Scheme, images: torch.Tensor, rate: float) -> list[Transmission]:
    """Transmissions of ``images`` uint8 ``(N, 3, H, W)`` at ``rate``. An image whose byte
    budget the scheme cannot meet (:class:`~semcom.errors.BudgetError`) is sent as the
    smallest message the scheme can make, and :func:`run_point` marks the point as over
    budget."""
    from semcom.schemes.session import Transmission

    if byte_budget(scheme, rate) is None:  # no budget to miss: the vectorised path
        return scheme.transmit_batch(images, rate)
    out = []
    for img in images:
        try:
            out.append(scheme.transmit(img, rate))
        except BudgetError as exc:
            out.append(Transmission([exc.message]))
    return out


def encode_all(scheme: Scheme, images: torch.Tensor, rate: float) -> list[bytes]:
    """Every message of :func:`transmit_all`, session after session, in order (for a
    single-message scheme: one per image)."""
    return [m for tx in transmit_all(scheme, images, rate) for m in tx.messages]


def _chunks(n: int, size: int) -> list[range]:
    return [range(lo, min(n, lo + size)) for lo in range(0, n, size)]


def transmit_shared(
    scheme: Scheme, images: torch.Tensor, rate: float, batch_size: int, group: Group
) -> tuple[list[Transmission], float]:
    """:func:`transmit_all` in chunks of ``batch_size`` images, each chunk by one process of
    ``group``; every process gets all transmissions (in image order) and the transmitter's
    CPU time per image (ms, summed over processes)."""
    mine: dict[int, list[Transmission]] = {}
    t0 = time.perf_counter()
    for c, idx in enumerate(_chunks(images.shape[0], batch_size)):
        if group.owns(c):
            mine[c] = transmit_all(scheme, images[idx.start : idx.stop], rate)
    spent = time.perf_counter() - t0
    parts = group.all_gather((mine, spent))
    merged = {c: tx for part, _ in parts for c, tx in part.items()}
    out = [tx for c in sorted(merged) for tx in merged[c]]
    return out, sum(t for _, t in parts) * 1000 / max(1, images.shape[0])


@dataclass
class Delivery:
    """What one channel condition did to every session of one (scheme, rate) point.

    ``finals`` holds each image's final answer (in image order); ``sent`` the messages
    each session sent (a session stops when its receiver is satisfied); ``bytes`` the
    bytes each session sent; ``channel_bytes`` what the channel carried in all.
    """

    finals: list[Decoded | None]
    sent: list[int]
    bytes: list[int]
    channel_bytes: int
    decode_ms: float
    channel_name: str = ""
    channel_config: dict[str, Any] = field(default_factory=dict)
    bytes_per_step: list[float] = field(default_factory=list)
    sessions_per_step: list[int] = field(default_factory=list)


def deliver(
    scheme: Scheme,
    transmissions: Sequence[Transmission],
    channel_spec: str,
    seed: int,
    batch_size: int = 128,
    group: Group | None = None,
) -> Delivery:
    """Send every session's messages over a fresh ``channel_spec`` channel seeded ``seed``,
    step by step (the k-th message of every session still sending, in image order), into
    one receiver per session; a session stops after the message its receiver is satisfied
    with. Receivers run in the chunks of ``batch_size`` images the transmitters had (the
    sessions of a chunk still sending), each chunk on one process of ``group``; every
    process applies the channel to every message, so the channel's random draws do not
    depend on the number of processes."""
    from semcom.channel import create_channel
    from semcom.schemes.base import final_answer, receive_all, settle_all

    group = group or LOCAL
    channel = create_channel(channel_spec, seed=seed)
    n = len(transmissions)
    owner = [group.owns(i // batch_size) for i in range(n)]  # chunks as in transmit_shared
    receivers = {i: scheme.open_receiver() for i in range(n) if owner[i]}
    sent, nbytes = [0] * n, [0] * n
    out = Delivery([None] * n, sent, nbytes, 0, 0.0, channel.name, channel.config())
    active = [i for i in range(n) if transmissions[i].messages]
    spent = 0.0
    k = 0
    while active:
        msgs = [transmissions[i].messages[k] for i in active]
        received = [channel(m) for m in msgs]
        out.channel_bytes += sum(rx.channel_bytes for rx in received)
        out.bytes_per_step.append(sum(len(m) for m in msgs) / len(msgs))
        out.sessions_per_step.append(len(active))
        for i, m in zip(active, msgs, strict=True):
            sent[i] += 1
            nbytes[i] += len(m)
        satisfied: dict[int, bool] = {}
        t0 = time.perf_counter()
        chunks: dict[int, list[tuple[int, Any]]] = {}  # the image chunks, as in transmission
        for i, rx in zip(active, received, strict=True):
            if owner[i]:
                chunks.setdefault(i // batch_size, []).append((i, rx))
        for part in chunks.values():
            results = receive_all(
                scheme,
                [receivers[i] for i, _ in part],
                [rx.data for _, rx in part],
                [rx.erasures for _, rx in part],
                lazy=True,  # only the final answers are judged: drawn below, batched
            )
            for (i, _), res in zip(part, results, strict=True):
                satisfied[i] = not isinstance(res, BaseException) and res.satisfied
        spent += time.perf_counter() - t0
        if not scheme.single_message:  # a single message ends its session anyway
            for part in group.all_gather(satisfied):
                satisfied.update(part)
        k += 1
        active = [i for i in active if not satisfied.get(i) and len(transmissions[i].messages) > k]
    t0 = time.perf_counter()
    for lo in range(0, n, batch_size):
        settle_all(scheme, [receivers[i] for i in range(lo, min(n, lo + batch_size)) if owner[i]])
    spent += time.perf_counter() - t0
    finals: dict[int, Decoded | None] = {}
    for i in range(n):
        if owner[i]:
            final = final_answer(receivers[i], transmissions[i])
            finals[i] = None if final is None else final.replace(aux={})
    for part, t in group.all_gather((finals, spent)):
        for i, d in part.items():
            out.finals[i] = d
        out.decode_ms += t
    out.decode_ms = out.decode_ms * 1000 / max(1, n)
    return out


def run_point(
    scheme: Scheme,
    rate: float,
    transmissions: Sequence[Transmission],
    encode_ms: float,
    channel_spec: str,
    evalset: EvalSet,
    judges: Sequence[Judge],
    seed: int,
    batch_size: int = 128,
    group: Group | None = None,
) -> PointRecord | None:
    """Send pre-made ``transmissions`` over one channel and judge what arrives (the
    record, on the first process of ``group``; None on the others)."""
    from semcom.judges.scoring import score

    group = group or LOCAL
    got = deliver(scheme, transmissions, channel_spec, seed, batch_size, group)
    if group.rank != 0:
        return None
    scores = score(
        evalset.images,
        evalset.labels,
        evalset.masks,
        got.finals,
        scheme.outputs,
        judges,
        batch_size,
    )
    n = len(transmissions)
    h, w = evalset.images.shape[-2:]
    mean_bytes = sum(got.bytes) / n
    target = byte_budget(scheme, rate)
    over = 0.0 if target is None else sum(b > target for b in got.bytes) / n
    messages: dict[str, Any] = {}
    if any(s != 1 for s in got.sent):
        messages = {
            "mean": sum(got.sent) / n,
            "max": max(got.sent),
            "bytes_per_step": got.bytes_per_step,
            "sessions_per_step": got.sessions_per_step,
        }
    return PointRecord(
        scheme=scheme.label,
        settings=scheme.settings(rate),
        rate_label=scheme.rate_label(rate),
        channel=got.channel_name,
        channel_config={**got.channel_config, "seed": seed},
        dataset=evalset.dataset,
        split=evalset.split,
        n_images=n,
        seed=seed,
        mean_bytes=mean_bytes,
        mean_channel_bytes=got.channel_bytes / n,
        bpp=mean_bytes * 8 / (h * w),
        metrics=scores.metrics,
        failure_rate=scores.failures / n,
        target_bytes=target,
        over_budget=over,
        role=scheme.role,
        family=scheme.family_name,
        cost=scheme.measured_cost(rate, transmissions),
        messages=messages,
        judges=scores.judged_by,
        lower_is_better=scores.lower,
        timing={"encode_ms": encode_ms, "decode_ms": got.decode_ms},
        version=semcom.__version__,
        git_commit=current_git_commit(),
        created=now_iso(),
    )


def plan_points(config: SweepConfig) -> list[tuple[Scheme, float]]:
    """Every (scheme, rate) of ``config``, in order; InputError for a scheme without rates."""
    from semcom.schemes import create_scheme

    plan = []
    for scheme in [create_scheme(s) for s in config.schemes]:
        rates = list(
            config.rates.get(scheme.label, config.rates.get(scheme.name, scheme.default_rates))
        )
        if not rates:
            raise InputError(f"no rate settings for scheme {scheme.label!r}")
        plan += [(scheme, scheme.validate_rate(r)) for r in rates]
    return plan


def run_sweep(
    config: SweepConfig,
    evalset: EvalSet,
    judges: Sequence[Judge],
    progress: bool = True,
    group: Group | None = None,
) -> list[PointRecord]:
    """Every (scheme, rate, channel) point of ``config``; sessions are made once per rate.

    With a ``group`` of several processes (:mod:`semcom.experiments.distributed`) the
    images are shared out in chunks of ``config.batch_size``; the first process returns
    the records (the same as one process makes), the others an empty list."""
    from rich.progress import Progress

    group = group or LOCAL
    plan = plan_points(config)
    records: list[PointRecord] = []
    with Progress(disable=not progress or group.rank != 0, transient=True) as bar:
        task = bar.add_task("sweep", total=len(plan) * (1 + len(config.channels)))
        for scheme, rate in plan:
            what = f"{scheme.label} @ {scheme.rate_label(rate)}"
            bar.update(task, description=f"{what}: encoding")
            sessions, encode_ms = transmit_shared(
                scheme, evalset.images, rate, config.batch_size, group
            )
            bar.advance(task)
            for spec in config.channels:
                bar.update(task, description=f"{what}: {spec}")
                rec = run_point(
                    scheme,
                    rate,
                    sessions,
                    encode_ms,
                    spec,
                    evalset,
                    judges,
                    config.seed,
                    config.batch_size,
                    group,
                )
                if rec is not None:
                    records.append(rec)
                bar.advance(task)
    return records


def _sweep_job(group: Group, config: SweepConfig, evalset: EvalSet, judges: Any, path: str) -> None:
    records = run_sweep(config, evalset, judges, progress=False, group=group)
    if group.rank == 0:
        import json

        with open(path, "w", encoding="utf-8") as f:
            json.dump([r.to_dict() for r in records], f)


def run_sweep_processes(
    workers: int, config: SweepConfig, evalset: EvalSet, judges: Sequence[Judge]
) -> list[PointRecord]:
    """:func:`run_sweep` shared by ``workers`` local processes (torch.distributed, gloo);
    the records equal a one-process run's but for timings and timestamps."""
    import json
    import tempfile
    from pathlib import Path

    from semcom.experiments.distributed import spawn

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "records.json")
        spawn(workers, _sweep_job, config, evalset, list(judges), path)
        with open(path, encoding="utf-8") as f:
            return [PointRecord.from_dict(d) for d in json.load(f)]
