"""Training a classifier (``shape-classifier``): cross-entropy, the dense mask loss, flips.

* loss: cross-entropy (optionally label-smoothed) plus, on the synthetic world and for a
  model with an ``aux`` head, ``aux_weight`` x the cross-entropy of that head's mask
  logits against the world's masks sampled at its resolution (:func:`classifier_loss`,
  also the fine-tuned classifier's);
* data: the synthetic world's train split (never augmented: it is infinite), or a
  dataset whose images are randomly flipped and shifted (:func:`augment_batch`);
* evaluation: accuracy (:func:`semcom.train.evaluate.evaluate`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.metrics import IGNORE_INDEX
from semcom.train.patch import logits_of
from semcom.train.recipes.base import Batch, mask_at
from semcom.train.recipes.task import TaskRecipe

__all__ = ["ClassifierRecipe", "augment_batch", "classifier_loss"]


def classifier_loss(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    masks: Tensor | None,
    *,
    label_smoothing: float,
    aux_weight: float,
) -> Tensor:
    """Cross-entropy of ``net(x)`` against labels ``y``; with ``aux_weight`` and
    ``masks``, plus ``aux_weight`` x the aux head's mask cross-entropy (255 ignored)."""
    if aux_weight and masks is not None:
        logits, aux = net(x, return_aux=True)
        aux_loss = F.cross_entropy(aux, mask_at(masks, aux.shape[-2:]), ignore_index=IGNORE_INDEX)
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing) + aux_weight * aux_loss
    return F.cross_entropy(logits_of(net(x)), y, label_smoothing=label_smoothing)


def augment_batch(
    x: Tensor,
    generator: torch.Generator | None = None,
    rows: Tensor | None = None,
    total: int | None = None,
) -> Tensor:
    """Random horizontal flip and shift (reflect padding, up to 1/16 of the side) per image.

    Args:
        x: float ``(N, C, H, W)``.
        generator: the random source (default: the global torch RNG).
        rows / total: ``x`` holds rows ``rows`` (int64 ``(N,)``) of a global batch of
            ``total`` images: the draws are made for the whole global batch and these rows
            taken, so DDP ranks augment their shards exactly as one process would the
            whole batch. Default: ``x`` is the whole batch.

    Returns:
        float ``(N, C, H, W)``.
    """
    n, _, h, w = x.shape
    total = n if total is None else int(total)
    rows = torch.arange(n) if rows is None else rows
    pad = max(1, min(h, w) // 16)
    flip = (torch.rand(total, generator=generator) < 0.5)[rows]
    dy = torch.randint(0, 2 * pad + 1, (total,), generator=generator)[rows].tolist()
    dx = torch.randint(0, 2 * pad + 1, (total,), generator=generator)[rows].tolist()
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    crops = [
        padded[i, :, a : a + h, b : b + w] for i, (a, b) in enumerate(zip(dy, dx, strict=True))
    ]
    return torch.stack(crops)


class ClassifierRecipe(TaskRecipe):
    """A registered ``task == "classify"`` model (see the module docstring)."""

    task = "classify"
    metric = "accuracy"
    zoo_metrics = ("accuracy",)

    @property
    def augments(self) -> bool:
        return bool(self.augment and self.data is not None)

    def build(self) -> nn.Module:
        model = super().build()
        has_aux = bool(getattr(model, "has_aux", False))
        # the dense mask loss needs the aux head and masks: only the synthetic world has them
        self.dense_weight = self.aux_weight if has_aux and self.data is None else 0.0
        return model

    def unused_parameters(self, model: nn.Module) -> bool:
        return bool(getattr(model, "has_aux", False)) and not self.dense_weight

    def loss(self, net: nn.Module, model: nn.Module, batch: Batch) -> Tensor:
        x = batch.x
        if self.augments:
            gen = torch.Generator().manual_seed(batch.seed + 7919)
            x = augment_batch(x, gen, batch.rows, batch.total)
        return classifier_loss(
            net, x, batch.y, batch.masks,
            label_smoothing=self.label_smoothing, aux_weight=self.dense_weight,
        )  # fmt: skip
