"""``shape-classifier-ft``: the zoo classifier fine-tuned on decoder reconstructions.

* model: the classifier given (``classifier=``, default the zoo ``shape-classifier``),
  same architecture (``arch="shape-classifier"``; any classifier, e.g. ``mobilenet-v2``)
  and config, its weights as the start; ``trainable`` (comma-separated parameter-name
  prefixes, e.g. ``blocks.15,blocks.16,head,classifier``) trains only those, the rest
  frozen (all by default);
* data: reconstructions by the frozen decoder (received patches pasted) of images that
  kept a rate ``r ~ U{0.25, 0.5, 0.75, 1}`` of their patches (attention / random
  selection as for the decoder), mixed with a fraction ``clean_frac`` of clean images;
* loss: the classifier's (:func:`~semcom.train.recipes.classifier.classifier_loss`),
  the dense aux-mask loss of the original training kept on the synthetic world;
* evaluation: ``accuracy`` (clean images) and ``acc_recon_{attn,rand}_r{0.25,0.5}`` on
  reconstructions (pasted), plus the same for the original ``baseline`` classifier as
  ``base_accuracy`` / ``base_acc_recon_*``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.registry import create_model
from semcom.train.patch import (
    apply_keep,
    cls_attention,
    eval_keeps,
    load_frozen,
    logits_of,
    select_patches,
)
from semcom.train.recipes.base import Batch
from semcom.train.recipes.classifier import classifier_loss
from semcom.train.recipes.patch import Add, Frozen, PatchRecipe
from semcom.train.sources import EvalBatch

__all__ = ["FT_RATES", "FinetuneRecipe"]

#: the keep rates of the training reconstructions
FT_RATES = (0.25, 0.5, 0.75, 1.0)


class FinetuneRecipe(PatchRecipe):
    """``shape-classifier-ft`` (see the module docstring)."""

    name = "shape-classifier-ft"
    arch = "shape-classifier"
    weights = ("aux_weight",)
    depends = {"vit": "vit-synth", "decoder": "patch-decoder-synth", "baseline": "shape-classifier"}
    #: the frozen decoder, once built
    decoder: nn.Module | None = None

    def __init__(self, *, trainable: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self.cfg["trainable"] = str(trainable or "")

    def build(self) -> nn.Module:
        init = load_frozen(self.cfg["classifier"])
        model = create_model(self.cfg["arch"], **{**init.config, **self.model_kw})
        model.load_state_dict(init.state_dict())
        prefixes = tuple(p.strip() for p in self.cfg["trainable"].split(",") if p.strip())
        names = [n for n, _ in model.named_parameters()]
        unknown = [p for p in prefixes if not any(n.startswith(p) for n in names)]
        if unknown:
            raise InputError(
                f"--ft-trainable {unknown[0]!r} names no parameter of {self.cfg['arch']} "
                f"(they start {', '.join(sorted({n.split('.')[0] for n in names}))})"
            )
        for n, p in model.named_parameters():
            p.requires_grad_(not prefixes or n.startswith(prefixes))
        self.vit = load_frozen(self.cfg["vit"])
        self.decoder = load_frozen(self.cfg["decoder"])
        return model

    def unused_parameters(self, model: nn.Module) -> bool:
        # the aux head gets a gradient only from the synthetic world's masks
        return bool(self.cfg["trainable"]) or not (self.cfg["aux_weight"] and self.data is None)

    def loss(self, net: nn.Module, model: nn.Module, batch: Batch) -> Tensor:
        c = self.cfg
        x = batch.x
        n = x.shape[0]
        p, att, use_att = self.attend(x)
        assert self.decoder is not None
        rates = torch.tensor(FT_RATES)[torch.randint(0, len(FT_RATES), (n,))]
        counts = torch.floor(rates * p + 0.5).long()
        keep = select_patches(counts, att, use_att)
        with torch.no_grad():
            sparse, m = apply_keep(x, keep, int(self.decoder.patch_size))
            rec = self.decoder(sparse, m, paste_received=True)
            clean = (torch.rand(n) < c["clean_frac"]).view(-1, 1, 1, 1)
            xin = torch.where(clean, x, rec)
        dense = c["aux_weight"] if getattr(model, "has_aux", False) else 0.0
        return classifier_loss(
            net, xin, batch.y, batch.masks,
            label_smoothing=c["label_smoothing"], aux_weight=dense,
        )  # fmt: skip

    def frozen(self) -> dict[str, Any]:
        # the original classifier is scored beside the fine-tuned one on the synthetic world
        baseline = self.cfg["classifier"] if self.eval_data is None else None
        return {"vit": self.vit, "decoder": self.decoder, "baseline": baseline}

    @classmethod
    def score_batch(cls, model: nn.Module, frozen: Frozen, batch: EvalBatch, add: Add) -> None:
        x, y, ids = batch.x, batch.y, batch.ids
        vit, dec, base = frozen["vit"], frozen["decoder"], frozen["baseline"]
        assert vit is not None and dec is not None
        judges = {"": model, **({"base_": base} if base is not None else {})}
        att = cls_attention(vit, x)
        for pre, clf in judges.items():
            add(f"{pre}accuracy", (logits_of(clf(x)).argmax(1) == y).float())
        for r in (0.25, 0.5):
            for mode, keep in eval_keeps(att, ids, r).items():
                sparse, m = apply_keep(x, keep, int(dec.patch_size))
                rec = dec(sparse, m, paste_received=True)
                for pre, clf in judges.items():
                    hit = (logits_of(clf(rec)).argmax(1) == y).float()
                    add(f"{pre}acc_recon_{mode}_r{r}", hit)
