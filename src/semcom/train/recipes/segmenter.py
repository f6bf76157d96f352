"""Training a segmenter (``shape-segmenter``): per-pixel cross-entropy.

* loss: cross-entropy of the ``(N, C + 1, H, W)`` logits against the masks (255 ignored);
* data: the synthetic world's train split (targets: its masks) or a dataset of
  ``(image, mask)`` items;
* evaluation: mIoU and pixel accuracy (:func:`semcom.train.evaluate.evaluate`).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from semcom.metrics import IGNORE_INDEX
from semcom.train.recipes.base import Batch
from semcom.train.recipes.task import TaskRecipe

__all__ = ["SegmenterRecipe"]


class SegmenterRecipe(TaskRecipe):
    """A registered ``task == "segment"`` model (see the module docstring)."""

    task = "segment"
    targets = "segment"
    metric = "miou"
    zoo_metrics = ("miou", "pixel_accuracy")

    def loss(self, net: nn.Module, model: nn.Module, batch: Batch) -> Tensor:
        return F.cross_entropy(net(batch.x), batch.y, ignore_index=IGNORE_INDEX)
