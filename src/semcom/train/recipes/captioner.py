"""``captioner-synth``: the transmitter's captioner on the synthetic world's captions.

* model: :class:`~semcom.models.captioner.Captioner` (``arch="captioner"``), its
  vocabulary the world's (:func:`~semcom.text.words.synthetic_vocabulary`);
* data: the world's training images and captions
  (:class:`~semcom.train.recipes.text_diffusion.CaptionSource`);
* loss: next-word cross-entropy with teacher forcing, input ``<bos> w1 .. wn``, target
  ``w1 .. wn <eos>`` (padding ignored);
* evaluation (:meth:`CaptionerRecipe.score`, greedy captions of ``n`` images of the
  world's ``split``): ``exact_match`` (the whole caption word for word), ``bleu4``
  (corpus BLEU-4, :func:`~semcom.text.metrics.corpus_bleu`), ``word_accuracy`` (words
  equal at their position, over the reference's length) and per attribute
  ``attr_<name>`` (:func:`~semcom.text.metrics.caption_attributes`: the main object's
  size, colour and shape, the object count, the background's texture and colour).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.registry import create_model
from semcom.train.recipes.base import Batch
from semcom.train.recipes.text_diffusion import CaptionRecipe, caption_ids

__all__ = ["CaptionerRecipe", "teacher_forcing"]


def teacher_forcing(ids: Tensor) -> tuple[Tensor, Tensor]:
    """``(inputs, targets)`` int64 ``(B, T + 1)`` of padded captions ``ids`` ``(B, T)``:
    ``<bos>`` + words, and words + ``<eos>`` (padding 0 elsewhere)."""
    from semcom.text.words import BOS, EOS

    lengths = (ids != 0).sum(1)
    inputs = F.pad(ids, (1, 0), value=BOS)
    targets = F.pad(ids, (0, 1))
    targets[torch.arange(ids.shape[0]), lengths] = EOS
    return inputs, targets


class CaptionerRecipe(CaptionRecipe):
    """``captioner-synth`` (see the module docstring)."""

    name: ClassVar[str] = "captioner-synth"
    arch: ClassVar[str] = "captioner"
    task = "caption"
    metric = "exact_match"
    weights: ClassVar[tuple[str, ...]] = ()
    depends: ClassVar[dict[str, str]] = {}

    def build(self) -> nn.Module:
        from semcom.text.words import synthetic_vocabulary

        kw = {"vocab_size": len(synthetic_vocabulary()), "image_size": self.image_size,
              **self.model_kw}  # fmt: skip
        model = create_model(self.cfg["arch"], **kw)
        if not hasattr(model, "caption"):
            raise InputError(f"{self.name} trains a captioner, not {self.cfg['arch']!r}")
        return self.initial(model)

    def loss(self, net: nn.Module, model: nn.Module, batch: Batch) -> Tensor:
        inputs, targets = teacher_forcing(batch.y)
        logits = net(batch.x, inputs)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0)

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
        """The module docstring's figures on ``n`` images of the world's ``split``."""
        from semcom.text.metrics import ATTRIBUTES, caption_attributes, corpus_bleu
        from semcom.text.words import synthetic_vocabulary
        from semcom.train.sources import eval_batches

        if frozen or data is not None:
            raise InputError(f"{cls.name} is scored on the world's captions, with no models")
        vocab = synthetic_vocabulary()
        refs: list[list[str]] = []
        hyps: list[list[str]] = []
        was = model.training
        model.eval()
        try:
            for batch in eval_batches(split, n, batch_size, image_size):
                ids = caption_ids(batch.ids, image_size)
                refs += [vocab.decode(r) for r in ids.tolist()]
                hyps += [vocab.decode(h) for h in model.caption(batch.x)]
        finally:
            model.train(was)
        count = len(refs)
        res: dict[str, Any] = {"split": split, "n": count}
        res["exact_match"] = sum(r == h for r, h in zip(refs, hyps, strict=True)) / max(count, 1)
        res["bleu4"] = corpus_bleu(refs, hyps)
        pairs = list(zip(refs, hyps, strict=True))
        hits = sum(sum(a == b for a, b in zip(r, h, strict=False)) for r, h in pairs)
        res["word_accuracy"] = hits / max(sum(len(r) for r in refs), 1)
        for attr in ATTRIBUTES:
            same = [caption_attributes(r)[attr] == caption_attributes(h)[attr] for r, h in pairs]
            res[f"attr_{attr}"] = sum(same) / max(count, 1)
        return res
