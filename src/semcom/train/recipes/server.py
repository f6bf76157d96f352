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
* distillation (``teacher``, e.g. ``--teacher server-synth``): a frozen classifier
  server scores the same image with the same unsent patches blanked, and the loss becomes
  ``(1 - a) * CE + a * T^2 * KL(teacher(T) || student(T))`` (``a = distill_weight``,
  temperature ``T``) -- a ViT server learns from a CNN's soft answers on every subset;
* ``edge_attn_frac`` (``--edge-attn-frac F``): a share ``F`` of each batch's rows keep the
  top-``K`` patches of the frozen edge ViT's attention (``--vit``) instead of random ones
  -- the subsets the collaborative edge actually sends; ``init`` (``--init CKPT``) starts
  from a checkpoint of the same architecture (a second stage of training);
* ``stem`` (``--stem CKPT`` with ``--arch vit-hybrid-shape``): a ``shape-classifier``
  checkpoint (e.g. ``server-synth``) whose first stages become the ViT's frozen patch
  embedding (:func:`semcom.models.vit_hybrid.load_stem`);
* evaluation: ``accuracy`` on every patch, ``accuracy_rand_r0.25`` / ``_r0.5`` from a
  random quarter / half of them (seeded by image id).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
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

    def __init__(
        self,
        *,
        teacher: str | None = None,
        temperature: float = 2.0,
        distill_weight: float = 0.5,
        stem: str | None = None,
        edge_attn_frac: float = 0.0,
        init: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.cfg.update(
            teacher=str(teacher or ""), temperature=float(temperature),
            distill_weight=float(distill_weight), stem=str(stem or ""),
            edge_attn_frac=float(edge_attn_frac), init=str(init or ""),
        )  # fmt: skip
        self.teacher: nn.Module | None = None

    def check(self) -> None:
        super().check()
        c = self.cfg
        if c["teacher"] and (c["temperature"] <= 0 or not 0.0 <= c["distill_weight"] <= 1.0):
            raise InputError("--temperature must be > 0 and --distill-weight in [0, 1]")
        if not 0.0 <= c["edge_attn_frac"] <= 1.0:
            raise InputError(f"--edge-attn-frac must be in [0, 1], got {c['edge_attn_frac']}")

    def build(self) -> nn.Module:
        from semcom.models.registry import create_model, model_entrypoint

        entry = model_entrypoint(self.cfg["arch"])
        if getattr(entry, "task", None) == "classify":  # a CNN classifier: no img_size
            if self.cfg["stem"]:
                raise InputError("--stem is for a hybrid ViT server (--arch vit-hybrid-shape)")
            kw = dict(self.model_kw)
            if self.data is not None and "num_classes" not in kw:
                kw["num_classes"] = int(getattr(self.data, "num_classes", 0)) or len(
                    self.data.classes
                )
            return self._init(create_model(self.cfg["arch"], **kw))
        model = self._init(super().build())
        if self.cfg["stem"]:
            from semcom.models.vit_hybrid import HybridVisionTransformer, load_stem

            if not isinstance(model, HybridVisionTransformer):
                raise InputError(f"--stem needs a hybrid ViT server, not {self.cfg['arch']}")
            load_stem(model, self.cfg["stem"])
        return model

    def _init(self, model: nn.Module) -> nn.Module:
        """``model`` with the ``init`` checkpoint's weights, when one is given."""
        from semcom.train.patch import init_from

        return init_from(model, self.cfg["init"]) if self.cfg["init"] else model

    def prepare(self) -> None:
        super().prepare()
        if self.cfg["edge_attn_frac"] > 0:
            from semcom.train.recipes.patch import load_frozen

            self.vit = load_frozen(self.cfg["vit"])
        if not self.cfg["teacher"]:
            return
        from semcom.models.zoo import load_model

        teacher = load_model(self.cfg["teacher"])
        if getattr(teacher, "task", None) != "classify" or _is_vit(teacher):
            raise InputError(
                f"--teacher {self.cfg['teacher']}: a server-synth teacher is a classifier of "
                "blanked images (e.g. server-synth), not a ViT"
            )
        self.teacher = teacher.eval().requires_grad_(False)

    def distilled(self, logits: Tensor, y: Tensor, x_blank: Tensor) -> Tensor:
        """The training loss of ``logits`` ``(N, C)`` for labels ``y``: cross-entropy, and
        with a teacher the temperature-scaled KL to its answer on ``x_blank``."""
        c = self.cfg
        ce = F.cross_entropy(logits, y, label_smoothing=c["label_smoothing"])
        if self.teacher is None:
            return ce
        from semcom.train.patch import logits_of

        with torch.no_grad():
            t_logits = logits_of(self.teacher(x_blank))
        if t_logits.shape != logits.shape:
            raise InputError(
                f"--teacher gives {t_logits.shape[1]} classes, the server {logits.shape[1]}"
            )
        temp, a = c["temperature"], c["distill_weight"]
        kl = F.kl_div(
            F.log_softmax(logits / temp, 1), F.log_softmax(t_logits / temp, 1),
            reduction="batchmean", log_target=True,
        )  # fmt: skip
        return (1 - a) * ce + a * temp * temp * kl

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
        if self.vit is not None and c["edge_attn_frac"] > 0:
            # some rows keep the edge's top-k attention patches: the subsets it will send
            from semcom.train.patch import cls_attention

            with torch.no_grad():
                att = cls_attention(self.vit, x)
            if att.shape[1] != p:
                raise InputError(f"--vit has {att.shape[1]} patches, the server {p}")
            rows = torch.rand(x.shape[0]) < c["edge_attn_frac"]
            keep = torch.where(rows[:, None], att.topk(k, dim=1).indices, keep)
        if not _is_vit(model):  # a classifier server: the unsent patches are black
            dense = c["aux_weight"] if getattr(model, "has_aux", False) else 0.0
            return classifier_loss(
                net, blank_outside(x, keep, self.patch_size), y, batch.masks,
                label_smoothing=c["label_smoothing"], aux_weight=dense,
            )  # fmt: skip
        out, dense_term = self.forward_dense(net, model, x, batch.masks, keep=keep)
        blank = blank_outside(x, keep, int(model.patch_size)) if self.teacher is not None else x
        return self.distilled(out["logits"], y, blank) + dense_term

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
