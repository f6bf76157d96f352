"""``server-synth``: the server model of collaborative inference (Im et al., IEEE IoT-J
2024), trained to classify from any subset of the image's patches.

* model: a registered ViT (default ``vit-hybrid-synth``: a conv stem and 6 blocks of
  width 192, larger than the edge's ``vit-edge-synth``; ``--arch vit-tiny-synth`` for a
  plain one) that classifies the kept token subset (``keep=``; a hybrid's dropped
  patches are blanked before its stem, :mod:`semcom.models.vit_hybrid`), or a classifier
  (``--arch shape-classifier``) that classifies the image with the unsent patches black
  -- the two server kinds :class:`~semcom.schemes.collab.CollabScheme` takes;
* loss: cross-entropy (optionally label-smoothed) on a random subset: every step draws
  one count ``K`` uniformly from ``[ceil(min_rate * P), P]`` and every image keeps ``K``
  patches drawn uniformly at random (the paper's random token dropping); on the
  synthetic world, with ``aux_weight``, the dense mask term too (a ViT's kept tokens on
  an object predict its class; a classifier's aux head segments the blanked image). On
  datasets, random horizontal flips as ``vit-synth``;
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


def blank_outside(x: Tensor, keep: Tensor, patch_size: int) -> Tensor:
    """``x`` float ``(N, C, H, W)`` with every patch not in ``keep`` int64 ``(N, K)``
    set to 0 (what a classifier server gets from the received patches)."""
    n, _, h, w = x.shape
    gh, gw = h // patch_size, w // patch_size
    cells = x.new_zeros(n, gh * gw).scatter_(1, keep, 1.0).view(n, 1, gh, gw)
    return x * cells.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)


def _is_vit(model: nn.Module) -> bool:
    return hasattr(model, "num_patches") and hasattr(model, "_check_keep")


class ServerRecipe(VitRecipe):
    """``server-synth`` (see the module docstring)."""

    name = "server-synth"
    arch = "vit-hybrid-synth"
    weights = ("aux_weight",)
    #: the patch grid of a classifier server (a ViT brings its own)
    patch_size = 8

    def build(self) -> nn.Module:
        from semcom.models.registry import create_model, model_entrypoint

        entry = model_entrypoint(self.cfg["arch"])
        if getattr(entry, "task", None) == "classify":  # a CNN classifier: no img_size
            kw = dict(self.model_kw)
            if self.data is not None and "num_classes" not in kw:
                kw["num_classes"] = int(getattr(self.data, "num_classes", 0)) or len(
                    self.data.classes
                )
            return create_model(self.cfg["arch"], **kw)
        return super().build()

    def unused_parameters(self, model: nn.Module) -> bool:
        return not _is_vit(model) and bool(getattr(model, "has_aux", False))

    def _grid(self, model: nn.Module, x: Tensor) -> int:
        if _is_vit(model):
            return int(model.num_patches)
        return (x.shape[-2] // self.patch_size) * (x.shape[-1] // self.patch_size)

    def loss(self, net: nn.Module, model: nn.Module, batch: Batch) -> Tensor:
        from semcom.train.recipes.classifier import classifier_loss

        c = self.cfg
        x, y = self.flipped(batch.x), batch.y
        p = self._grid(model, x)
        low = min(p, max(1, math.ceil(c["min_rate"] * p)))
        k = int(torch.randint(low, p + 1, ()))
        keep = random_keep(x.shape[0], p, k)
        if not _is_vit(model):  # a classifier server: the unsent patches are black
            dense = c["aux_weight"] if getattr(model, "has_aux", False) else 0.0
            return classifier_loss(
                net, blank_outside(x, keep, self.patch_size), y, batch.masks,
                label_smoothing=c["label_smoothing"], aux_weight=dense,
            )  # fmt: skip
        out, dense_term = self.forward_dense(net, model, x, batch.masks, keep=keep)
        return F.cross_entropy(out["logits"], y, label_smoothing=c["label_smoothing"]) + dense_term

    @classmethod
    def score_batch(cls, model: nn.Module, frozen: Frozen, batch: EvalBatch, add: Add) -> None:
        from semcom.train.patch import logits_of

        x, y, _masks, ids = batch
        vit = _is_vit(model)
        p = int(model.num_patches) if vit else (x.shape[-2] // cls.patch_size) ** 2
        add("accuracy", (logits_of(model(x)).argmax(1) == y).float())
        for r in (0.25, 0.5):
            g = torch.Generator().manual_seed(int(ids[0]) if len(ids) else 0)
            keep = random_keep(x.shape[0], p, max(1, round(r * p)), g)
            out = model(x, keep=keep) if vit else model(blank_outside(x, keep, cls.patch_size))
            add(f"accuracy_rand_r{r}", (logits_of(out).argmax(1) == y).float())
