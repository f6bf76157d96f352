"""``vit-server-synth``: the server ViT of collaborative inference (Im et al., IEEE IoT-J 2024),
trained to classify from any subset of its patch tokens.

* model: a registered ViT (default ``vit-hybrid-synth``: a small MobileNetV2 stem and 6
  blocks of width 192, larger than the edge's ``vit-edge-synth``; ``--arch
  vit-tiny-synth`` for a plain one), trained from scratch. A hybrid's dropped patches
  are blanked before its stem (:mod:`semcom.models.vit_hybrid`);
* loss: cross-entropy (optionally label-smoothed) on a random token subset: every step
  draws one count ``K`` uniformly from ``[ceil(min_rate * P), P]`` and every image
  keeps ``K`` patches drawn uniformly at random (``keep=``: the other patches never
  reach the transformer); on the synthetic world, with ``aux_weight``, every kept patch
  token lying on an object also predicts that object's class through the shared head
  (as ``vit-synth``). On datasets, random horizontal flips as ``vit-synth``;
* evaluation: ``accuracy`` on every patch, ``accuracy_rand_r0.25`` / ``_r0.5`` from a
  random quarter / half of them (seeded by image id).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.train.recipes.base import Batch
from semcom.train.recipes.patch import Add, Frozen
from semcom.train.recipes.vit import VitRecipe
from semcom.train.sources import EvalBatch

__all__ = ["ServerRecipe"]


def random_keep(n: int, p: int, k: int, generator: torch.Generator | None = None) -> Tensor:
    """int64 ``(n, k)``: ``k`` distinct patch indices per row, uniformly at random."""
    return torch.rand(n, p, generator=generator).argsort(dim=1)[:, :k]


class ServerRecipe(VitRecipe):
    """``vit-server-synth`` (see the module docstring)."""

    name = "vit-server-synth"
    arch = "vit-hybrid-synth"
    weights = ("aux_weight",)

    def loss(self, net: nn.Module, model: nn.Module, batch: Batch) -> Tensor:
        c = self.cfg
        x, y = self.flipped(batch.x), batch.y
        p = int(model.num_patches)
        low = min(p, max(1, math.ceil(c["min_rate"] * p)))
        k = int(torch.randint(low, p + 1, ()))
        keep = random_keep(x.shape[0], p, k)
        out, dense = self.forward_dense(net, model, x, batch.masks, keep=keep)
        return F.cross_entropy(out["logits"], y, label_smoothing=c["label_smoothing"]) + dense

    @classmethod
    def score_batch(cls, model: nn.Module, frozen: Frozen, batch: EvalBatch, add: Add) -> None:
        x, y, _masks, ids = batch
        add("accuracy", (model(x)["logits"].argmax(1) == y).float())
        p = int(model.num_patches)
        for r in (0.25, 0.5):
            g = torch.Generator().manual_seed(int(ids[0]) if len(ids) else 0)
            keep = random_keep(x.shape[0], p, max(1, round(r * p)), g)
            lg = model(x, keep=keep)["logits"]
            add(f"accuracy_rand_r{r}", (lg.argmax(1) == y).float())
