"""``text-diffusion-synth``: the receiver's text-to-image generator on the synthetic world.

* model: :class:`~semcom.models.text_diffusion.TextDiffusion` (``arch="text-diffusion"``;
  ``--model-kw '{"image_size": 32, "widths": [32, 64, 96]}'``), its vocabulary the
  world's (:func:`~semcom.text.words.synthetic_vocabulary`);
* data: the world's training images with their captions (:class:`CaptionSource`: ids
  padded to :data:`CAPTION_LEN` words, positions ``0 .. L-1``); the images are
  area-resized to the model's ``image_size``;
* loss: DDPM noise prediction with word dropout and caption dropout
  (:meth:`TextDiffusion.loss`), its randomness drawn from the step's seed and rank;
* evaluation (:meth:`TextDiffusionRecipe.score`): images generated with DDIM
  (``eval_steps`` steps, guidance ``eval_guidance``, seed = the image's world seed) from
  the whole caption, from a random half of its words (in caption order, at their
  positions) and from no words, judged by the frozen zoo ``shape-classifier`` (the
  generated image bilinearly resized to the world's size): ``shape_accuracy``,
  ``shape_accuracy_half`` and ``shape_accuracy_uncond`` -- how often the main object's
  shape is recognised (the "semantic success" of the progressive scheme; the last one
  is what the model draws knowing nothing, about chance). The semantic success of the
  scheme proper, and the LPIPS to the original, are measured by the scheme's sweep.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.registry import create_model
from semcom.train.recipes.base import Batch
from semcom.train.recipes.patch import PatchRecipe
from semcom.train.sources import EvalBatch, SyntheticSource

__all__ = ["CAPTION_LEN", "CaptionRecipe", "CaptionSource", "TextDiffusionRecipe"]

#: Words per caption row in training batches (the world's longest caption has 30).
CAPTION_LEN = 32


def caption_ids(seeds: Tensor, image_size: int) -> Tensor:
    """int64 ``(B, CAPTION_LEN)``: the world captions of ``seeds`` as padded word ids."""
    from semcom.data import SyntheticWorld
    from semcom.text.words import synthetic_vocabulary

    world = SyntheticWorld(size=image_size)
    vocab = synthetic_vocabulary()
    ids = vocab.batch([world.caption(int(s)) for s in seeds])
    if ids.shape[1] > CAPTION_LEN:
        raise InputError(f"a world caption of {ids.shape[1]} words exceeds {CAPTION_LEN}")
    return F.pad(ids, (0, CAPTION_LEN - ids.shape[1]))


class CaptionSource(SyntheticSource):
    """The world's train split as ``(images, caption ids (B, CAPTION_LEN), masks)``."""

    def batch(
        self, step: int, batch_size: int, rank: int = 0, world: int = 1
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        x, _, masks = super().batch(step, batch_size, rank, world)
        seeds = self.global_seeds(step, batch_size)[rank::world]
        return x, caption_ids(seeds, self.world.size), masks


class CaptionRecipe(PatchRecipe):
    """What the recipes on the world's image-caption pairs share: the synthetic world only,
    batches from :class:`CaptionSource`; ``init``: start from a trained model's weights
    (same architecture and config: a longer or a second training)."""

    def __init__(self, *, init: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.cfg["init"] = str(init or "")

    def initial(self, model: nn.Module) -> nn.Module:
        """``model`` with the ``init`` weights, when given."""
        from semcom.train.patch import init_from

        return init_from(model, self.cfg["init"]) if self.cfg["init"] else model

    def check(self) -> None:
        super().check()
        if self.data is not None or self.dataset != "synthetic":
            raise InputError(f"{self.name} trains on the synthetic world's captions only")

    def source(self, seed: int) -> Any:
        return CaptionSource("classify", seed=seed, image_size=self.image_size)


class TextDiffusionRecipe(CaptionRecipe):
    """``text-diffusion-synth`` (see the module docstring).

    Args:
        eval_steps: DDIM steps of the evaluation's generations.
        eval_guidance: their classifier-free guidance weight.
        kw: the family's settings (``arch``, ``model_kw``, ``image_size``: the world's).
    """

    name: ClassVar[str] = "text-diffusion-synth"
    arch: ClassVar[str] = "text-diffusion"
    task = "generate"
    metric = "shape_accuracy"
    zoo_metrics: ClassVar[tuple[str, ...] | None] = (
        "shape_accuracy",
        "shape_accuracy_half",
        "shape_accuracy_uncond",
    )
    weights: ClassVar[tuple[str, ...]] = ()
    depends: ClassVar[dict[str, str]] = {"judge": "shape-classifier"}

    def __init__(
        self, *, eval_steps: int = 10, eval_guidance: float = 3.0, ema: float = 0.0, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.cfg["eval_steps"] = eval_steps
        self.cfg["eval_guidance"] = eval_guidance
        self.cfg["ema"] = float(ema)
        self._ema: dict[str, Tensor] | None = None

    def after_step(self, model: nn.Module, step: int) -> None:
        """The weights' exponential moving average (``ema`` > 0: its decay), which the
        final checkpoint holds (diffusion samples are much better from the average than
        from the last noisy step). It starts from the weights of this process's first
        step, so a resumed run restarts the average there."""
        d = self.cfg["ema"]
        if d <= 0:
            return
        with torch.no_grad():
            params = dict(model.named_parameters())
            if self._ema is None:
                self._ema = {k: p.detach().clone() for k, p in params.items()}
            else:
                for k, p in params.items():
                    self._ema[k].lerp_(p.detach(), 1.0 - d)

    def finish(self, model: nn.Module, run: dict[str, Any]) -> None:
        super().finish(model, run)
        if self._ema is not None:
            with torch.no_grad():
                for k, p in model.named_parameters():
                    p.copy_(self._ema[k])

    def check(self) -> None:
        super().check()
        n = self.cfg["eval_steps"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"eval_steps must be an int >= 1, got {n!r}")
        if not 0.0 <= self.cfg["ema"] < 1.0:
            raise InputError(f"--ema must be a decay in [0, 1), got {self.cfg['ema']}")

    def build(self) -> nn.Module:
        from semcom.text.words import synthetic_vocabulary

        kw = {"vocab_size": len(synthetic_vocabulary()), **self.model_kw}
        model = create_model(self.cfg["arch"], **kw)
        if not hasattr(model, "generate"):
            raise InputError(f"{self.name} trains a text-diffusion model, not {self.cfg['arch']!r}")
        return self.initial(model)

    def loss(self, net: nn.Module, model: nn.Module, batch: Batch) -> Tensor:
        g = torch.Generator().manual_seed(batch.seed * 1009 + int(batch.rows[0]))
        ids = batch.y
        positions = torch.arange(ids.shape[1]).expand_as(ids)
        return net.loss(batch.x, ids, positions, g)

    def evaluate(self, model: nn.Module, *, split: str, n: int | None) -> dict[str, Any]:
        return self.score(
            model, split=split, n=n, image_size=self.image_size,
            steps=self.cfg["eval_steps"], guidance=self.cfg["eval_guidance"], **self.frozen(),
        )  # fmt: skip

    @classmethod
    def score(
        cls,
        model: nn.Module,
        *,
        split: str = "val",
        n: int | None = 256,
        batch_size: int = 32,
        image_size: int = 64,
        data: Any = None,
        steps: int = 10,
        guidance: float = 3.0,
        **frozen: Any,
    ) -> dict[str, Any]:
        """The module docstring's figures on ``n`` images of the world's ``split``
        (``frozen``: ``judge``, a zoo name, checkpoint or module; default the zoo's)."""
        from semcom.train.patch import load_frozen, logits_of
        from semcom.train.sources import eval_batches

        unknown = sorted(set(frozen) - set(cls.depends))
        if unknown or data is not None:
            raise InputError(f"{cls.name} is scored on the world by a judge, not {unknown}")
        judge = load_frozen(frozen.get("judge", cls.depends["judge"]))
        sums: dict[str, float] = {}
        count = 0
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                for batch in eval_batches(split, n, batch_size, image_size):
                    for key, hits in cls._judged(model, judge, logits_of, batch, steps, guidance):
                        sums[key] = sums.get(key, 0.0) + float(hits.double().sum())
                    count += len(batch.x)
        finally:
            model.train(was)
        res: dict[str, Any] = {"split": split, "n": count, "steps": steps, "guidance": guidance}
        res.update({k: v / max(count, 1) for k, v in sorted(sums.items())})
        return res

    @staticmethod
    def _judged(
        model: nn.Module,
        judge: nn.Module,
        logits_of: Any,
        batch: EvalBatch,
        steps: int,
        guidance: float,
    ) -> list[tuple[str, Tensor]]:
        """Per image, whether the judge recognises the main shape in the images generated
        from the whole caption, half of it and nothing."""
        ids = caption_ids(batch.ids, batch.x.shape[-1])
        positions = torch.arange(ids.shape[1]).expand_as(ids)
        half = ids.clone()
        for row, seed in enumerate(batch.ids.tolist()):
            g = torch.Generator().manual_seed(int(seed))
            half[row, torch.rand(ids.shape[1], generator=g) < 0.5] = 0
        out = []
        for suffix, words in (("", ids), ("_half", half), ("_uncond", torch.zeros_like(ids))):
            img = model.generate(words, positions, batch.ids.tolist(), steps=steps,
                                 guidance=guidance)  # fmt: skip
            img = F.interpolate(img, size=batch.x.shape[-2:], mode="bilinear", align_corners=False)
            out.append((f"shape_accuracy{suffix}", logits_of(judge(img)).argmax(-1) == batch.y))
        return out
