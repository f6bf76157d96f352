"""``vit-synth``: a ViT classifier whose CLS attention finds the main object.

* model: a registered ViT (default ``vit-edge-synth``, any via ``arch=``) trained from
  scratch at ``image_size`` (and the dataset's class count);
* loss: cross-entropy (optionally label-smoothed); on the synthetic world, with
  ``aux_weight``, every patch token lying on an object predicts that object's class
  through the shared ``head`` (no extra parameters), and with ``attn_weight`` an
  *attention-guidance* term: the KL divergence from the main object's per-patch area
  share to the last layer's head-averaged CLS attention. The label is the main object's
  shape, so a well-trained ViT attends to it anyway; the term makes that happen within
  a CPU budget. On datasets: random horizontal flips (``flip``);
* evaluation: ``accuracy``; ``accuracy_attn_r{r}`` (classifying from the top-``r``
  attention tokens only, ``keep=``); on the synthetic world also ``cover_attn_r0.25`` /
  ``cover_rand_r0.25``: mean fraction of the main object's pixels inside the top-25%
  attention patches / 25% random patches.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.models.registry import create_model
from semcom.patches import Rate, mask_to_keep
from semcom.train.patch import attention_coverage, eval_keeps, main_object_share
from semcom.train.recipes.base import Batch, mask_at
from semcom.train.recipes.patch import Add, Frozen, PatchRecipe
from semcom.train.sources import EvalBatch

__all__ = ["VitRecipe"]


def _num_classes(data: Any) -> int:
    """A dataset's class count: its ``num_classes`` or ``classes``, else the largest label + 1."""
    v = getattr(data, "num_classes", None)
    if isinstance(v, int) and v > 0:
        return v
    classes = getattr(data, "classes", None)
    if classes is not None and len(classes) > 0:
        return len(classes)
    top = -1
    for i in range(len(data)):
        item = data[i]
        y = item.get("label") if isinstance(item, dict) else item[1]
        top = max(top, int(y))
    return top + 1


class VitRecipe(PatchRecipe):
    """``vit-synth`` (see the module docstring)."""

    name = "vit-synth"
    arch = "vit-edge-synth"
    weights = ("aux_weight", "attn_weight")

    def build(self) -> nn.Module:
        kw = dict(self.model_kw)
        if self.data is not None and "num_classes" not in kw:
            kw["num_classes"] = _num_classes(self.data)
        if "img_size" not in kw:
            kw["img_size"] = self.image_size
        return create_model(self.cfg["arch"], **kw)

    def flipped(self, x: Tensor) -> Tensor:
        """``x`` with random horizontal flips, on real datasets when ``flip`` is on."""
        if self.data is None or not self.cfg["flip"]:
            return x
        flip = torch.rand(x.shape[0]) < 0.5
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)

    def forward_dense(
        self, net: nn.Module, model: nn.Module, x: Tensor, masks: Tensor | None, **kw: Any
    ) -> tuple[dict[str, Tensor], Tensor]:
        """``net(x, **kw)`` and its dense term: with ``aux_weight`` and masks, every patch
        token (every kept one, with ``keep=``) lying on an object predicts that object's
        class through the shared ``head`` (weighted; 0 otherwise)."""
        dense = bool(self.cfg["aux_weight"]) and masks is not None
        tokens: list[Tensor] = []
        hook = (
            model.norm.register_forward_hook(lambda _m, _i, o: tokens.append(o)) if dense else None
        )
        try:
            out = net(x, **kw)
        finally:
            if hook is not None:
                hook.remove()
        if not dense:
            return out, x.new_zeros(())
        g = int(model.grid_size)
        pt = model.head(tokens[0][:, model.num_prefix_tokens :])  # (N, K, C)
        tgt = mask_at(masks, (g, g)).flatten(1) - 1  # (N, P), -1 = background
        if kw.get("keep") is not None:
            tgt = torch.gather(tgt, 1, kw["keep"])
        term = F.cross_entropy(pt.flatten(0, 1), tgt.flatten(), ignore_index=-1)
        return out, self.cfg["aux_weight"] * term

    def loss(self, net: nn.Module, model: nn.Module, batch: Batch) -> Tensor:
        c = self.cfg
        x, y, masks = self.flipped(batch.x), batch.y, batch.masks
        guide = bool(c["attn_weight"]) and masks is not None
        out, dense = self.forward_dense(
            net, model, x, masks, return_attention="mean" if guide else None
        )
        loss = F.cross_entropy(out["logits"], y, label_smoothing=c["label_smoothing"]) + dense
        if guide:
            share = main_object_share(masks, y, int(model.patch_size))
            t = share / share.sum(1, keepdim=True).clamp_min(1.0)
            a = out["attention"].clamp_min(1e-8)
            kl = (t * (torch.log(t.clamp_min(1e-8)) - torch.log(a))).sum(1).mean()
            loss = loss + c["attn_weight"] * kl
        return loss

    @classmethod
    def score_batch(cls, model: nn.Module, frozen: Frozen, batch: EvalBatch, add: Add) -> None:
        x, y, masks, ids = batch
        out = model(x, return_attention="mean")
        att = out["attention"]
        add("accuracy", (out["logits"].argmax(1) == y).float())
        for r in (0.25, 0.5):
            lg = model(x, keep=mask_to_keep(Rate(r)(att)))["logits"]
            add(f"accuracy_attn_r{r}", (lg.argmax(1) == y).float())
        if masks is not None:
            share = main_object_share(masks, y, int(model.patch_size))
            keeps = eval_keeps(att, ids, 0.25)
            add("cover_attn_r0.25", attention_coverage(keeps["attn"], share))
            add("cover_rand_r0.25", attention_coverage(keeps["rand"], share))
