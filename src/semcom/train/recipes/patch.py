"""The patch-transmission family (Mortaheb et al., arXiv 2405.01521): what its recipes share.

Three recipes, each ``train_patch_model(name, out_dir, ...)`` or
``python -m semcom.train --model <name> ...``:

* ``vit-synth`` (:mod:`~semcom.train.recipes.vit`): a ViT classifier whose CLS attention
  ranks the patches to send;
* ``patch-decoder-synth`` (:mod:`~semcom.train.recipes.patch_decoder`): the decoder that
  rebuilds an image from the patches received;
* ``shape-classifier-ft`` (:mod:`~semcom.train.recipes.finetune`): the zoo classifier
  fine-tuned on those reconstructions.

They share :class:`PatchRecipe`: one set of settings (all of them recorded in the run's
``args``; a loss weight a recipe does not have is recorded as 0), the data (synthetic, or
``dataset``'s train / val splits), the frozen ViT's attention and the shape of the
evaluation. Checkpoints carry the *architecture* name (``vit-edge-synth``,
``patch-decoder``, ``shape-classifier``) and full config; the zoo entry (``name``)
records it as ``arch``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.train.patch import cls_attention, load_frozen
from semcom.train.recipes.base import Recipe
from semcom.train.sources import EvalBatch, eval_batches, load_data_split

__all__ = ["PatchRecipe"]

#: ``add(key, values)``: adds a batch's per-image values to figure ``key`` of a score.
Add = Callable[[str, Tensor], None]
#: the frozen models of a score by role
Frozen = dict[str, nn.Module | None]


class PatchRecipe(Recipe):
    """Settings, data and evaluation of a patch-transmission recipe.

    Args:
        arch: registered architecture to build (default: the recipe's :attr:`arch`).
        dataset: ``"synthetic"`` (generated on the fly) or ``"tiny-imagenet"`` (read with
            ``semcom.data.load_dataset(dataset, root=data_root, split="train"/"val")``);
            ``data`` / ``eval_data``: map-style datasets given directly instead.
        label_smoothing: cross-entropy smoothing (ViT, fine-tuned classifier).
        aux_weight: dense loss on the synthetic world's masks (ViT, fine-tuned classifier).
        attn_weight: ViT attention guidance (synthetic world only; 0 = off).
        perceptual_weight / perceptual_net: decoder's feature-distance term and backbone.
        min_rate: decoder's lowest keep rate. attn_frac: share of attention-selected rows.
        clean_frac: share of clean images for the fine-tuned classifier.
        flip: random horizontal flips for the ViT on real datasets.
        vit / decoder / classifier: zoo names or checkpoint paths of the frozen ViT
            (attention), the frozen decoder and the classifier to fine-tune.
        model_kw / image_size: see :class:`~semcom.train.recipes.base.Recipe`.
    """

    task = "classify"
    #: the recipe's name (``--model``)
    name: ClassVar[str]
    #: the architecture it trains by default
    arch: ClassVar[str]
    #: the loss weights it has, of ``aux_weight``, ``attn_weight``, ``perceptual_weight``
    weights: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        arch: str | None = None,
        model_kw: dict[str, Any] | None = None,
        dataset: str = "synthetic",
        data_root: Any = None,
        data: Any = None,
        eval_data: Any = None,
        image_size: int = 64,
        label_smoothing: float = 0.0,
        aux_weight: float = 1.0,
        attn_weight: float = 0.0,
        perceptual_weight: float = 0.0,
        min_rate: float = 0.25,
        attn_frac: float = 0.5,
        clean_frac: float = 0.25,
        flip: bool = True,
        vit: str = "vit-synth",
        decoder: str = "patch-decoder-synth",
        classifier: str = "shape-classifier",
        perceptual_net: str = "shape-classifier",
    ) -> None:
        super().__init__(
            self.name, data=data, eval_data=eval_data, model_kw=model_kw, image_size=image_size
        )
        self.dataset = dataset
        self.data_root = data_root
        given = {
            "aux_weight": aux_weight,
            "attn_weight": attn_weight,
            "perceptual_weight": perceptual_weight,
        }
        w = {k: (v if k in self.weights else 0.0) for k, v in given.items()}
        self.cfg: dict[str, Any] = {
            "arch": arch or self.arch,
            # a list, as the settings read back from metrics.json / a resume file hold it
            "image_size": image_size if isinstance(image_size, int) else list(image_size),
            "label_smoothing": label_smoothing,
            **w,
            "perceptual_net": perceptual_net,
            "min_rate": min_rate,
            "attn_frac": attn_frac,
            "clean_frac": clean_frac,
            "flip": bool(flip),
            "vit": str(vit),
            "decoder": str(decoder),
            "classifier": str(classifier),
        }
        self.vit: nn.Module | None = None  # the frozen ViT, once built (decoder, ft)

    # ------------------------------------------------------------------ setup
    def check(self) -> None:
        c = self.cfg
        if (
            not 0.0 < c["min_rate"] <= 1.0
            or not 0.0 <= c["attn_frac"] <= 1.0
            or not 0.0 <= c["clean_frac"] <= 1.0
        ):
            raise InputError("min_rate must be in (0, 1]; attn_frac and clean_frac in [0, 1]")

    def prepare(self) -> None:
        if self.data is None:
            self.data = load_data_split(self.dataset, self.data_root, "train", self.image_size)
            if self.eval_data is None and self.data is not None:
                self.eval_data = load_data_split(
                    self.dataset, self.data_root, "val", self.image_size
                )
        elif self.dataset == "synthetic":
            self.dataset = type(self.data).__name__

    def run_args(self, model: nn.Module, run: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": self.cfg["arch"],
            "recipe": self.name,
            "model_kw": model.config,
            **run,
            "dataset": self.dataset,
            **self.cfg,
        }

    # ------------------------------------------------------------------- steps
    def attend(self, x: Tensor) -> tuple[int, Tensor, Tensor]:
        """``(P, attention (N, P), rows that select by it)`` for a training batch: the
        frozen ViT's CLS attention, and a fraction ``attn_frac`` of rows (the others
        select at random)."""
        assert self.vit is not None
        ps = int(self.vit.patch_size)
        p = (x.shape[-2] // ps) * (x.shape[-1] // ps)
        att = cls_attention(self.vit, x)
        return p, att, torch.rand(x.shape[0]) < self.cfg["attn_frac"]

    # -------------------------------------------------------------- evaluation
    @classmethod
    def score(
        cls,
        model: nn.Module,
        *,
        split: str = "val",
        n: int | None = 512,
        batch_size: int = 64,
        image_size: int = 64,
        data: Any = None,
        **frozen: Any,
    ) -> dict[str, Any]:
        """The recipe's figures (see each recipe), all on the same ``n`` images.

        ``frozen``: the models of :attr:`depends` by role -- zoo names, checkpoint paths
        or modules, default the zoo's; ``None`` leaves a role out.
        """
        unknown = sorted(set(frozen) - set(cls.depends))
        if unknown:
            raise InputError(f"{cls.name} depends on {sorted(cls.depends)}, not {unknown}")
        was = model.training
        model.eval()
        sums: dict[str, float] = {}
        count = 0

        def add(key: str, v: Tensor) -> None:
            sums[key] = sums.get(key, 0.0) + float(v.double().sum())

        try:
            with torch.no_grad():
                given = {role: frozen.get(role, zoo) for role, zoo in cls.depends.items()}
                models = {r: None if s is None else load_frozen(s) for r, s in given.items()}
                for batch in eval_batches(split, n, batch_size, image_size, data):
                    cls.score_batch(model, models, batch, add)
                    count += len(batch.x)
        finally:
            model.train(was)
        res: dict[str, Any] = {"split": split if data is None else "dataset", "n": count}
        for key in sorted(sums):
            res[key] = sums[key] / max(count, 1)
        return res

    @classmethod
    def score_batch(cls, model: nn.Module, frozen: Frozen, batch: EvalBatch, add: Add) -> None:
        """Add one evaluation batch's per-image figures (``frozen``: the models of
        :attr:`depends` by role, ``None`` where left out)."""
        raise NotImplementedError
