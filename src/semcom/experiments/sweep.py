"""The sweep: schemes x rate settings x channel conditions -> one record per point.

Data flows one way: the dataset's images go through ``scheme.compress`` (transmitter),
each message through a seeded channel, then ``scheme.decompress`` (receiver); the task
models judge what the receiver got. A message the receiver cannot decode counts as a
failure and is judged on the fallback output (a mid-grey image), so task metrics stay
honest about losses.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import semcom
from semcom.errors import BudgetError, InputError
from semcom.experiments.records import PointRecord


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


@dataclass
class Judges:
    """The receiver-side task models (frozen) and the perceptual-distance backbone.

    ``classifier`` gives the ``accuracy`` metric; ``classifier_ft`` (optional) is a
    classifier fine-tuned on masked / reconstructed images (the zoo's
    ``shape-classifier-ft``) and gives ``accuracy_ft`` on the same outputs.
    """

    classifier: torch.nn.Module | None = None
    segmenter: torch.nn.Module | None = None
    featdist: Any = None  # semcom.metrics.FeatureDistance or None
    classifier_ft: torch.nn.Module | None = None


@dataclass
class SweepConfig:
    schemes: Sequence[str]
    channels: Sequence[str] = ("ideal",)
    rates: dict[str, Sequence[float]] = field(
        default_factory=dict
    )  # per scheme; default: scheme.default_rates
    seed: int = 0
    batch_size: int = 128


def git_commit() -> str | None:
    """Short hash of the checkout semcom runs from, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def synthetic_evalset(n: int, size: int = 64, split: str = "test", seed: int = 0) -> EvalSet:
    """``n`` images of the synthetic world's ``split`` with labels and masks."""
    from semcom.data.synthetic import SyntheticWorld

    world = SyntheticWorld(size=size)
    batch = world.generate(world.split_seeds(split, n))
    return EvalSet(batch.images, batch.labels, batch.masks, "synthetic", split, seed)


def zoo_judges(featdist: bool = True, finetuned: bool = True) -> Judges:
    """The zoo's classifier, segmenter and fine-tuned classifier (each if present), frozen,
    with a deep-feature distance on the classifier's features."""
    from semcom.metrics import FeatureDistance
    from semcom.models.zoo import list_zoo, load_pretrained

    zoo = set(list_zoo())
    clf = load_pretrained("shape-classifier").eval() if "shape-classifier" in zoo else None
    seg = load_pretrained("shape-segmenter").eval() if "shape-segmenter" in zoo else None
    fd = FeatureDistance(clf.features, name="semcom-classifier") if featdist and clf else None
    ft = None
    if finetuned and "shape-classifier-ft" in zoo:
        ft = load_pretrained("shape-classifier-ft").eval()
    return Judges(clf, seg, fd, ft)


@torch.no_grad()
def judge(
    evalset: EvalSet, x_hat: torch.Tensor, judges: Judges, batch_size: int = 128
) -> dict[str, float]:
    """Task metrics of reconstructions ``x_hat`` uint8 ``(N, 3, H, W)`` against ``evalset``."""
    from semcom.data import to_float
    from semcom.metrics import SegmentationMeter, psnr, ssim

    n = x_hat.shape[0]
    sums: dict[str, float] = {"psnr": 0.0, "ssim": 0.0}
    correct = correct_ft = 0
    meter = None
    fd_name = None
    for lo in range(0, n, batch_size):
        xb = to_float(x_hat[lo : lo + batch_size])
        ref = to_float(evalset.images[lo : lo + batch_size])
        sums["psnr"] += float(psnr(xb, ref).clamp(max=100.0).sum())
        sums["ssim"] += float(ssim(xb, ref).sum())
        if judges.featdist is not None:
            fd_name = judges.featdist.name
            sums[fd_name] = sums.get(fd_name, 0.0) + float(judges.featdist(xb, ref).sum())
        if judges.classifier is not None and evalset.labels is not None:
            pred = judges.classifier(xb).argmax(1)
            correct += int((pred == evalset.labels[lo : lo + batch_size]).sum())
        if judges.classifier_ft is not None and evalset.labels is not None:
            pred = judges.classifier_ft(xb).argmax(1)
            correct_ft += int((pred == evalset.labels[lo : lo + batch_size]).sum())
        if judges.segmenter is not None and evalset.masks is not None:
            seg_logits = judges.segmenter(xb)  # (B, C + 1, H, W)
            if meter is None:
                meter = SegmentationMeter(num_classes=seg_logits.shape[1])
            meter.update(seg_logits.argmax(1), evalset.masks[lo : lo + batch_size])
    out = {k: v / n for k, v in sums.items()}
    if judges.classifier is not None and evalset.labels is not None:
        out["accuracy"] = correct / n
    if judges.classifier_ft is not None and evalset.labels is not None:
        out["accuracy_ft"] = correct_ft / n
    if meter is not None:
        seg = meter.compute()
        out["miou"] = float(seg["miou"])
        out["pixel_accuracy"] = float(seg["pixel_accuracy"])
    return out


def encode_all(scheme: Any, images: torch.Tensor, rate: float) -> list[bytes]:
    """Messages of ``images`` uint8 ``(N, 3, H, W)`` at ``rate``. An image whose byte budget
    the scheme cannot meet (:class:`~semcom.errors.BudgetError`) is sent as the smallest
    message the scheme can make, and :func:`run_point` marks the point as over budget."""
    if byte_budget(scheme, rate) is None:  # no budget to miss: the vectorised path
        return scheme.compress_batch(images, rate)
    out = []
    for img in images:
        try:
            out.append(scheme.compress(img, rate))
        except BudgetError as exc:
            out.append(exc.message)
    return out


def byte_budget(scheme: Any, rate: float) -> float | None:
    """The byte budget a rate setting is (codecs), else None (patch fractions, bpp)."""
    return float(rate) if getattr(scheme, "rate_unit", None) == "bytes" else None


def run_point(
    scheme: Any,
    rate: float,
    messages: list[bytes],
    encode_ms: float,
    channel_spec: str,
    evalset: EvalSet,
    judges: Judges,
    seed: int,
    batch_size: int = 128,
) -> PointRecord:
    """Send pre-compressed ``messages`` over one channel and judge what arrives."""
    from semcom.channel import create_channel

    channel = create_channel(channel_spec, seed=seed)
    h, w = evalset.images.shape[-2:]
    fallback = torch.full((3, h, w), 128, dtype=torch.uint8)
    received = [channel(msg) for msg in messages]
    channel_bytes = sum(rx.channel_bytes for rx in received)
    t0 = time.perf_counter()
    results = scheme.decompress_batch(
        [rx.data for rx in received], [rx.erasures for rx in received]
    )
    outs = []
    failures = 0
    for res in results:
        x = None if isinstance(res, BaseException) else res.get("x_hat")
        if x is None or tuple(x.shape) != (3, h, w):
            failures += 1
            x = fallback
        outs.append(x)
    decode_ms = (time.perf_counter() - t0) * 1000 / max(1, len(messages))
    metrics = judge(evalset, torch.stack(outs), judges, batch_size)
    n = len(messages)
    mean_bytes = sum(len(m) for m in messages) / n
    target = byte_budget(scheme, rate)
    over = 0.0 if target is None else sum(len(m) > target for m in messages) / n
    return PointRecord(
        scheme=scheme.label,
        settings=scheme.settings(rate),
        rate_label=scheme.rate_label(rate),
        channel=channel.name,
        channel_config={**channel.config(), "seed": seed},
        dataset=evalset.dataset,
        split=evalset.split,
        n_images=n,
        seed=seed,
        mean_bytes=mean_bytes,
        mean_channel_bytes=channel_bytes / n,
        bpp=mean_bytes * 8 / (h * w),
        metrics=metrics,
        failure_rate=failures / n,
        target_bytes=target,
        over_budget=over,
        timing={"encode_ms": encode_ms, "decode_ms": decode_ms},
        version=semcom.__version__,
        git_commit=git_commit(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def run_sweep(
    config: SweepConfig,
    evalset: EvalSet,
    judges: Judges,
    progress: bool = True,
) -> list[PointRecord]:
    """Every (scheme, rate, channel) point of ``config``; messages are made once per rate."""
    from rich.progress import Progress

    from semcom.schemes import create_scheme

    schemes = [create_scheme(s) for s in config.schemes]
    plan = []
    for scheme in schemes:
        rates = list(
            config.rates.get(scheme.label, config.rates.get(scheme.name, scheme.default_rates))
        )
        if not rates:
            raise InputError(f"no rate settings for scheme {scheme.label!r}")
        plan += [(scheme, scheme.validate_rate(r)) for r in rates]
    records: list[PointRecord] = []
    n = evalset.images.shape[0]
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("sweep", total=len(plan) * (1 + len(config.channels)))
        for scheme, rate in plan:
            bar.update(task, description=f"{scheme.label} @ {scheme.rate_label(rate)}: encoding")
            t0 = time.perf_counter()
            messages = encode_all(scheme, evalset.images, rate)
            encode_ms = (time.perf_counter() - t0) * 1000 / n
            bar.advance(task)
            for spec in config.channels:
                bar.update(task, description=f"{scheme.label} @ {scheme.rate_label(rate)}: {spec}")
                records.append(
                    run_point(
                        scheme,
                        rate,
                        messages,
                        encode_ms,
                        spec,
                        evalset,
                        judges,
                        config.seed,
                        config.batch_size,
                    )
                )
                bar.advance(task)
    return records
