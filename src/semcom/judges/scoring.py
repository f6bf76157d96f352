"""Scoring: the receivers' final answers and the judges -> one number per metric.

Whatever the receiver produced is judged: its own ``logits`` are scored directly
(``accuracy``), its own ``segmentation`` directly (``miou``, ``pixel_accuracy``), and its
``x_hat`` goes through the judges (:mod:`semcom.judges.base`). A session whose answer
lacks an output the scheme declares (the message was lost, could not be decoded, or
was never sent and the sender kept no answer) is a failure and is scored on a fallback:
a mid-grey image, an answer that matches no class, an all-background segmentation, so
metrics stay honest about losses.

When a judge's metric has the name of a receiver's own metric (or another judge's), it
is recorded as ``metric[judge name]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from semcom.judges.base import Judge
    from semcom.schemes.session import Decoded

RECEIVER = "receiver"  # who produced a metric computed from the receiver's own answer


@dataclass
class Scores:
    """``metrics`` by name, ``judged_by`` (metric -> judge name or ``"receiver"``), the
    metrics whose judge declared smaller values better (``lower``) and the number of
    ``failures`` (sessions without a usable answer)."""

    metrics: dict[str, float] = field(default_factory=dict)
    judged_by: dict[str, str] = field(default_factory=dict)
    lower: list[str] = field(default_factory=list)
    failures: int = 0


def usable(decoded: Decoded | None, outputs: Sequence[str], size: tuple[int, int]) -> bool:
    """True when ``decoded`` holds every output in ``outputs``, shaped for a ``size`` image."""
    if decoded is None:
        return False
    for name in outputs:
        value = getattr(decoded, name)
        if value is None:
            return False
        if name == "x_hat" and (tuple(value.shape) != (3, *size) or value.dtype != torch.uint8):
            return False
        if name == "logits" and value.ndim != 1:
            return False
        if name == "segmentation" and (value.ndim != 3 or tuple(value.shape[1:]) != size):
            return False
    return True


class _Table:
    """Metric names handed out once each; a taken name gets ``[who]`` appended."""

    def __init__(self, scores: Scores) -> None:
        self.scores = scores

    def put(self, metric: str, value: float, who: str, lower: bool = False) -> None:
        name, n = metric, 1
        while name in self.scores.metrics:
            n += 1
            name = f"{metric}[{who}]" if n == 2 else f"{metric}[{who}#{n - 1}]"
        self.scores.metrics[name] = float(value)
        self.scores.judged_by[name] = who
        if lower:
            self.scores.lower.append(name)


def mask_classes(masks: torch.Tensor) -> int:
    """1 + the largest class id in ``masks`` (ignored pixels aside), at least 1."""
    from semcom.metrics.segmentation import IGNORE_INDEX

    valid = masks[masks != IGNORE_INDEX]
    return int(valid.max()) + 1 if valid.numel() else 1


@torch.no_grad()
def score(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    masks: torch.Tensor | None,
    finals: Sequence[Decoded | None],
    outputs: Sequence[str],
    judges: Sequence[Judge],
    batch_size: int = 128,
) -> Scores:
    """Score the final answers ``finals`` (one per image) of a scheme producing ``outputs``.

    Args:
        images: uint8 ``(N, 3, H, W)`` originals.
        labels: int64 ``(N,)`` class labels, or None.
        masks: int64 ``(N, H, W)`` segmentation targets (255 = ignore), or None.
        finals: each image's final :class:`~semcom.schemes.session.Decoded` (None: nothing).
        outputs: the scheme's declared outputs.
        judges: judges of ``x_hat`` (used when ``"x_hat"`` is in ``outputs``).
        batch_size: images per judge call.
    """
    from semcom.metrics import SegmentationMeter

    n, size = images.shape[0], tuple(images.shape[-2:])
    ok = [usable(d, outputs, size) for d in finals]  # type: ignore[arg-type]
    scores = Scores(failures=sum(not k for k in ok))
    table = _Table(scores)
    if "logits" in outputs and labels is not None:
        pred = torch.tensor(
            [int(d.logits.argmax()) if good else -1 for d, good in zip(finals, ok, strict=True)]  # type: ignore[union-attr]
        )
        table.put("accuracy", int((pred == labels).sum()) / n, RECEIVER)
    if "segmentation" in outputs and masks is not None:
        segs = [d.segmentation for d, good in zip(finals, ok, strict=True) if good]  # type: ignore[union-attr]
        k = max([int(s.shape[0]) for s in segs] + [mask_classes(masks)])
        meter = SegmentationMeter(num_classes=k)
        for i, (d, good) in enumerate(zip(finals, ok, strict=True)):
            pred = d.segmentation.argmax(0) if good else torch.zeros(size, dtype=torch.long)  # type: ignore[union-attr]
            meter.update(pred[None], masks[i : i + 1])
        seg = meter.compute()
        table.put("miou", float(seg["miou"]), RECEIVER)
        table.put("pixel_accuracy", float(seg["pixel_accuracy"]), RECEIVER)
    if "x_hat" in outputs:
        fallback = torch.full((3, *size), 128, dtype=torch.uint8)
        x_hat = torch.stack(
            [d.x_hat if good else fallback for d, good in zip(finals, ok, strict=True)]  # type: ignore[union-attr,misc]
        )
        for judge in judges:
            for metric, value in judge_reconstructions(
                judge, images, x_hat, labels, masks, batch_size
            ).items():
                table.put(metric, value, judge.name, lower=not judge.higher_is_better)
    return scores


@torch.no_grad()
def judge_reconstructions(
    judge: Judge,
    images: torch.Tensor,
    x_hat: torch.Tensor,
    labels: torch.Tensor | None,
    masks: torch.Tensor | None,
    batch_size: int = 128,
) -> dict[str, float]:
    """``judge``'s metrics of reconstructions ``x_hat`` uint8 ``(N, 3, H, W)`` of ``images``
    (``{}`` when the judge needs labels or masks the data does not have)."""
    from semcom.data import to_float
    from semcom.metrics import SegmentationMeter

    if (judge.yields == "logits" and labels is None) or (
        judge.yields == "segmentation" and masks is None
    ):
        return {}
    n = x_hat.shape[0]
    total = 0.0
    correct = 0
    meter = None
    feats: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
    for lo in range(0, n, batch_size):
        xb = to_float(x_hat[lo : lo + batch_size])
        ref = to_float(images[lo : lo + batch_size])
        if judge.yields == "distribution":
            feats[0].append(judge(xb, ref))
            feats[1].append(judge(ref, ref))
        elif judge.yields == "distance":
            total += float(judge(xb, ref).sum())
        elif judge.yields == "logits":
            correct += int((judge.predict(xb, ref) == labels[lo : lo + batch_size]).sum())  # type: ignore[index]
        else:
            pred = judge.predict(xb, ref)
            top = int(pred.max()) + 1 if pred.numel() else 1
            if meter is None or top > meter.num_classes:
                cmap = judge.class_map
                k = max(top, mask_classes(masks), int(cmap.max()) + 1 if cmap is not None else 1)  # type: ignore[arg-type]
                # (a later batch may predict a higher class id than the first did)
                meter = SegmentationMeter(k) if meter is None else meter.grown(k)
            meter.update(pred, masks[lo : lo + batch_size])  # type: ignore[index]
    if judge.yields == "distribution":
        if n < 2:
            return {}  # a distance between sets needs two images per set
        from semcom.metrics.frechet import frechet_distance

        fd = frechet_distance(torch.cat(feats[0]), torch.cat(feats[1]))
        return {judge.metrics[0]: fd}
    if judge.yields == "distance":
        return {judge.metrics[0]: total / n}
    if judge.yields == "logits":
        return {judge.metrics[0]: correct / n}
    assert meter is not None
    seg = meter.compute()
    return {judge.metrics[0]: float(seg["miou"]), judge.metrics[1]: float(seg["pixel_accuracy"])}
