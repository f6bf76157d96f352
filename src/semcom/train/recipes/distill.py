"""``vit-distill``: the patch-ranking ViT trained by distillation from a teacher judge
(DeiT-style, Touvron et al. 2021), for real datasets where a from-scratch ViT is too weak
for its attention to find the object.

* model: a registered ViT (default ``vit-edge-synth``'s layout; ``--arch`` /
  ``--model-kw`` choose another) with DeiT's distillation token (``distilled=True``).
  With ``--arch vit-hybrid-mnv2`` the patch embedding is the start of a MobileNetV2
  (:mod:`semcom.models.vit_hybrid`); ``stem`` (``--stem CKPT``, a ``mobilenet-v2``
  checkpoint such as the ImageNet port) copies its pretrained weights there and freezes
  them, so only the projection, the transformer and the heads learn;
* data: ``K`` views of every training image (:mod:`semcom.train.teacher`: the whole
  image and ``K - 1`` random-resized, mirrored crops); the teacher -- any ``logits``
  judge spec, e.g. ``tflite-classifier=mobilenet_v2.tflite`` -- scores each view once
  and the scores are kept in ``<out>/teacher.safetensors`` (reused by a run with the same
  teacher, data, ``K`` and seed);
* loss: ``(1 - a) * CE(class head, label) + a * T^2 * KL(teacher(T) || distillation
  head(T))`` with ``a = distill_weight`` and temperature ``T``: the class token learns
  the labels, the distillation token the teacher's soft answers on the same view;
* evaluation (as ``vit-synth``): ``accuracy`` (both heads averaged), and classifying from
  the top 25 % / 50 % attention patches only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.train.recipes.base import Batch
from semcom.train.recipes.vit import VitRecipe
from semcom.train.teacher import TeacherCache, render_views

__all__ = ["DistillRecipe", "DistillViews"]


class DistillViews(torch.utils.data.Dataset):
    """Items ``(view uint8 (3, S, S), flat index)`` over ``N * K`` views: index ``j`` is
    view ``j % K`` of image ``j // K`` (the index finds the teacher's answer)."""

    def __init__(self, images: Tensor, labels: Tensor, cache: TeacherCache, base: Any) -> None:
        self.images, self.labels, self.cache = images, labels, cache
        self.k = cache.views
        self.classes = list(base.classes)
        self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return int(self.images.shape[0]) * self.k

    def __getitem__(self, j: int) -> tuple[Tensor, int]:
        i, v = divmod(int(j), self.k)
        box = self.cache.boxes[i, v][None]
        return render_views(self.images[i : i + 1], box)[0], int(j)


class DistillRecipe(VitRecipe):
    """``vit-distill`` (see the module docstring)."""

    name = "vit-distill"
    weights = ()

    def __init__(
        self,
        *,
        teacher: str | None = None,
        views: int = 6,
        temperature: float = 2.0,
        distill_weight: float = 0.5,
        stem: str | None = None,
        cache_dir: str | Path | None = None,
        quiet: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.cfg.update(
            teacher=str(teacher), views=int(views), temperature=float(temperature),
            distill_weight=float(distill_weight), stem=str(stem or ""),
        )  # fmt: skip
        self.model_kw.setdefault("distilled", True)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.quiet = quiet
        self.cache: TeacherCache | None = None

    def check(self) -> None:
        super().check()
        c = self.cfg
        if c["teacher"] in ("None", ""):
            raise InputError("vit-distill needs a teacher judge: --teacher SPEC")
        if self.dataset == "synthetic" and self.data is None:
            raise InputError("vit-distill trains on a real dataset: --dataset, --data-root")
        if not 1 <= c["views"] <= 64:
            raise InputError(f"--views must be in [1, 64], got {c['views']}")
        if c["temperature"] <= 0 or not 0.0 <= c["distill_weight"] <= 1.0:
            raise InputError("--temperature must be > 0 and --distill-weight in [0, 1]")
        if not self.model_kw.get("distilled", False):
            raise InputError("vit-distill trains a ViT with a distillation token (distilled)")
        if c["stem"] and not Path(c["stem"]).is_file():
            raise InputError(f"--stem: no checkpoint file {c['stem']}")

    def build(self) -> nn.Module:
        model = super().build()
        if self.cfg["stem"]:
            from semcom.models.vit_hybrid import HybridVisionTransformer, load_stem

            if not isinstance(model, HybridVisionTransformer):
                raise InputError(
                    f"--stem needs a hybrid ViT (--arch vit-hybrid-mnv2), not {self.cfg['arch']}"
                )
            load_stem(model, self.cfg["stem"])
        return model

    def prepare(self) -> None:
        from semcom.judges import create_judge

        super().prepare()
        base = self.data
        if not getattr(base, "classes", None):
            raise InputError("vit-distill needs a dataset that names its classes")
        teacher = create_judge(self.cfg["teacher"])
        if teacher.yields != "logits":
            raise InputError(f"teacher {teacher.name} yields {teacher.yields}, not class scores")
        teacher.bind(base.classes, self.dataset)
        images, labels = [], []
        for i in range(len(base)):
            x, y = base[i]
            images.append(x)
            labels.append(int(y))
        imgs = torch.stack(images)
        if imgs.dtype != torch.uint8:
            raise InputError("vit-distill expects uint8 dataset images")
        seed = 0
        key = TeacherCache.key(teacher, base, self.cfg["views"], seed, imgs.shape[-1])
        path = (self.cache_dir or Path(".")) / "teacher.safetensors"
        cache = TeacherCache.load(path, key)
        if cache is None:
            cache = TeacherCache.build(
                teacher, base, imgs, views=self.cfg["views"], seed=seed, quiet=self.quiet
            )
            cache.save(path)
        self.cache = cache
        self.data = DistillViews(imgs, torch.tensor(labels), cache, base)

    def loss(self, net: nn.Module, model: nn.Module, batch: Batch) -> Tensor:
        assert self.cache is not None and isinstance(self.data, DistillViews)
        c = self.cfg
        j = batch.y
        i, v = j // self.data.k, j % self.data.k
        y = self.data.labels[i]
        teacher = self.cache.logits[i, v].float().clamp_min(-1e4)  # -inf: no judge class
        tokens: list[Tensor] = []
        hook = model.norm.register_forward_hook(lambda _m, _i, o: tokens.append(o))
        try:
            net(batch.x)
        finally:
            hook.remove()
        h = tokens[0]
        cls_logits, dist_logits = model.head(h[:, 0]), model.head_dist(h[:, 1])
        ce = F.cross_entropy(cls_logits, y, label_smoothing=c["label_smoothing"])
        t = c["temperature"]
        kl = F.kl_div(
            F.log_softmax(dist_logits / t, dim=1),
            F.log_softmax(teacher / t, dim=1),
            reduction="batchmean",
            log_target=True,
        ) * (t * t)
        a = c["distill_weight"]
        return (1 - a) * ce + a * kl
