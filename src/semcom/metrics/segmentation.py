"""Semantic segmentation: confusion matrix, IoU / mIoU, pixel accuracy, a streaming meter.

Conventions (every function here):

* Labels are class indices ``0..K-1`` (``K = num_classes``; in semcom's masks 0 is the
  background, which counts as a class). Pixels whose *target* is ``ignore_index`` are
  left out everywhere; any other target or prediction outside ``0..K-1`` is an error.
* The confusion matrix is ``int64 (K, K)``, **rows = target class, columns = predicted
  class**.
* ``IoU_c = TP_c / (TP_c + FP_c + FN_c)``. A class is *present* when it occurs in the
  target or the prediction (its union is non-zero); absent classes get ``NaN`` IoU and are
  left out of the mean. **mIoU = mean IoU over present classes**; ``NaN`` if no pixel
  counts at all.
* Over a dataset (:class:`SegmentationMeter`), the confusion matrices of all batches are
  summed first, so mIoU is the dataset-level IoU (each pixel weighs the same), not a mean
  of per-image mIoUs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from semcom.errors import InputError

IGNORE_INDEX = 255


class IoU(NamedTuple):
    """``miou`` (float; NaN if nothing present), ``per_class`` float64 ``(K,)`` (NaN = absent)."""

    miou: float
    per_class: Tensor


def _as_labels(pred: Tensor, target: Tensor) -> Tensor:
    """Predictions as labels shaped like ``target`` (logits ``(N, K, ...)`` -> argmax)."""
    if pred.dtype.is_floating_point:
        if pred.ndim != target.ndim + 1 or pred.shape[:1] + pred.shape[2:] != target.shape:
            raise InputError(
                f"logits {tuple(pred.shape)} do not match target {tuple(target.shape)} "
                "(expected (N, K, H, W) for (N, H, W))"
            )
        return pred.argmax(dim=1)
    if pred.shape != target.shape:
        raise InputError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return pred


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Confusion matrix of a batch.

    Args:
        pred: int labels ``(N, H, W)`` (any shape equal to ``target``) or float logits
            ``(N, K, H, W)`` (argmax over dim 1).
        target: int labels ``(N, H, W)``; ``ignore_index`` pixels are skipped.
        num_classes: ``K``.

    Returns:
        ``int64 (K, K)``, rows = target, columns = prediction (CPU).
    """
    if num_classes < 1:
        raise InputError(f"num_classes must be >= 1, got {num_classes}")
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise InputError(f"target must hold integer labels, got {target.dtype}")
    p = _as_labels(pred, target).reshape(-1).to("cpu", torch.int64)
    t = target.reshape(-1).to("cpu", torch.int64)
    keep = t != ignore_index
    p, t = p[keep], t[keep]
    k = num_classes
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= k):
        raise InputError(f"target labels must be in [0, {k}) or {ignore_index}")
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= k):
        raise InputError(f"predicted labels must be in [0, {k})")
    return torch.bincount(t * k + p, minlength=k * k).reshape(k, k)


def iou_from_confusion(cm: Tensor) -> IoU:
    """Per-class IoU and mIoU (over present classes) from a ``(K, K)`` confusion matrix."""
    cm = cm.to(torch.float64)
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    per_class = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    present = union > 0
    miou = float(per_class[present].mean()) if bool(present.any()) else float("nan")
    return IoU(miou, per_class)


def pixel_accuracy_from_confusion(cm: Tensor) -> float:
    """Fraction of counted pixels predicted correctly (trace / sum); NaN if none counted."""
    total = float(cm.sum())
    return float(cm.diagonal().sum()) / total if total > 0 else float("nan")


def miou(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> IoU:
    """mIoU of one batch: ``IoU(miou, per_class)``; shapes as in :func:`confusion_matrix`."""
    return iou_from_confusion(confusion_matrix(pred, target, num_classes, ignore_index))


def pixel_accuracy(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> float:
    """Pixel accuracy over non-ignored pixels; shapes as in :func:`confusion_matrix`."""
    return pixel_accuracy_from_confusion(confusion_matrix(pred, target, num_classes, ignore_index))


class SegmentationMeter:
    """Streaming segmentation metrics: ``update`` per batch, ``compute`` at the end."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise InputError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch: ``pred`` int (N, H, W) or logits (N, K, H, W); ``target`` (N, H, W)."""
        self._cm += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def grown(self, num_classes: int) -> SegmentationMeter:
        """A meter over ``num_classes >= self.num_classes`` classes holding what this one
        has seen (for a stream whose class count is learnt as it goes)."""
        if num_classes < self.num_classes:
            raise InputError(f"cannot shrink a meter from {self.num_classes} to {num_classes}")
        out = SegmentationMeter(num_classes, self.ignore_index)
        out._cm[: self.num_classes, : self.num_classes] += self._cm
        return out

    def reset(self) -> None:
        """Forget every batch."""
        self._cm.zero_()

    @property
    def confusion(self) -> Tensor:
        """The accumulated ``int64 (K, K)`` confusion matrix (a copy; rows = target)."""
        return self._cm.clone()

    @property
    def n_pixels(self) -> int:
        """Number of non-ignored pixels seen."""
        return int(self._cm.sum())

    def compute(self) -> dict[str, float | Tensor]:
        """``{"miou": float, "pixel_accuracy": float, "per_class_iou": float64 (K,)}``."""
        iou = iou_from_confusion(self._cm)
        return {
            "miou": iou.miou,
            "pixel_accuracy": pixel_accuracy_from_confusion(self._cm),
            "per_class_iou": iou.per_class,
        }
