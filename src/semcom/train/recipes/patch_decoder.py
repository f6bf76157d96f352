"""``patch-decoder-synth``: the decoder that rebuilds an image from its received patches.

* model: :class:`~semcom.models.patch_decoder.PatchDecoder` (``arch="patch-decoder"``);
* data: each image keeps ``k ~ U{ceil(min_rate * P), ..., P}`` of its ``P`` patches,
  chosen by the frozen ViT's mean CLS attention (probability ``attn_frac``) or
  uniformly at random; the rest are zeroed;
* loss: MSE to the clean image (the paper's) plus ``perceptual_weight`` x the
  deep-feature distance (``semcom.metrics.FeatureDistance``) on the frozen
  ``perceptual_net``'s feature maps (default: the zoo ``shape-classifier``);
* evaluation: ``psnr`` (= :func:`semcom.train.patch.evaluate_reconstruction`: random,
  r = 0.5, no pasting) and ``psnr_{attn,rand}_r{0.25,0.5,1.0}`` (decoder output, no
  pasting), ``psnr_paste_{attn,rand}_r0.25`` (received pixels pasted).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.models.registry import create_model
from semcom.train.patch import apply_keep, cls_attention, eval_keeps, load_frozen, select_patches
from semcom.train.recipes.base import Batch
from semcom.train.recipes.patch import Add, Frozen, PatchRecipe
from semcom.train.sources import EvalBatch

__all__ = ["EVAL_RATES", "PatchDecoderRecipe"]

#: the keep rates of the evaluation
EVAL_RATES = (0.25, 0.5, 1.0)


class PatchDecoderRecipe(PatchRecipe):
    """``patch-decoder-synth`` (see the module docstring)."""

    name = "patch-decoder-synth"
    arch = "patch-decoder"
    task = "reconstruct"
    metric = "psnr"
    weights = ("perceptual_weight",)
    depends = {"vit": "vit-synth"}
    #: the perceptual term's feature distance (``perceptual_weight > 0``), once built
    featdist: Any = None

    def build(self) -> nn.Module:
        model = create_model(self.cfg["arch"], **self.model_kw)
        self.vit = load_frozen(self.cfg["vit"])
        if self.cfg["perceptual_weight"]:
            from semcom.metrics import FeatureDistance

            judge = load_frozen(self.cfg["perceptual_net"])
            self.featdist = FeatureDistance(judge.features, name="perceptual")
        return model

    def loss(self, net: nn.Module, model: nn.Module, batch: Batch) -> Tensor:
        c = self.cfg
        x = batch.x
        p, att, use_att = self.attend(x)
        lo = max(1, math.ceil(c["min_rate"] * p))
        counts = torch.randint(lo, p + 1, (x.shape[0],))
        keep = select_patches(counts, att, use_att)
        sparse, m = apply_keep(x, keep, int(model.patch_size))
        pred = net(sparse, m)
        loss = F.mse_loss(pred, x)
        if self.featdist is not None:
            loss = loss + c["perceptual_weight"] * self.featdist(pred, x).mean()
        return loss

    def frozen(self) -> dict[str, Any]:
        return {"vit": self.vit}

    @classmethod
    def score_batch(cls, model: nn.Module, frozen: Frozen, batch: EvalBatch, add: Add) -> None:
        from semcom.metrics import psnr

        x, ids = batch.x, batch.ids
        vit = frozen["vit"]
        assert vit is not None
        att = cls_attention(vit, x)
        ps = int(model.patch_size)
        for r in EVAL_RATES:
            for mode, keep in eval_keeps(att, ids, r).items():
                sparse, m = apply_keep(x, keep, ps)
                out = model(sparse, m)
                v = psnr(out, x).clamp(max=100.0)
                add(f"psnr_{mode}_r{r}", v)
                if mode == "rand" and r == 0.5:
                    add("psnr", v)  # the protocol of semcom.train.evaluate
                if r == 0.25:
                    pasted = m * sparse + (1 - m) * out
                    add(f"psnr_paste_{mode}_r{r}", psnr(pasted, x).clamp(max=100.0))
