"""Scoring task models: accuracy (classifier); mIoU + pixel accuracy (segmenter).

Segmentation metrics come from ``semcom.metrics``: one confusion matrix accumulated
over all images (dataset-level mIoU over the classes present, background included);
pixels labelled ``IGNORE_INDEX`` (255) are skipped.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.metrics import IGNORE_INDEX, confusion_matrix, iou_from_confusion
from semcom.metrics import pixel_accuracy_from_confusion as _pixacc
from semcom.train.sources import eval_batches

__all__ = ["IGNORE_INDEX", "evaluate"]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    *,
    split: str = "val",
    n: int | None = 512,
    batch_size: int = 128,
    image_size: int = 64,
    data: Any = None,
    task: str | None = None,
) -> dict[str, Any]:
    """Score ``model`` on ``n`` synthetic-world images of ``split`` (or on dataset ``data``).

    Returns ``{"split", "n", "accuracy"}`` for classifiers and ``{"split", "n", "miou",
    "pixel_accuracy", "iou"}`` for segmenters (``task`` defaults to ``model.task``);
    ``{"split", "n", "psnr"}`` for patch decoders (``task == "reconstruct"``: half the
    patches kept at random: ``semcom.train.patch.evaluate_reconstruction``);
    ``{"split", "n", "psnr", "usage", ...}`` for VQ-VAE codecs (``task == "codec"``:
    :meth:`semcom.train.recipes.vqvae.VQVAERecipe.score`; Ballé codecs:
    :meth:`semcom.train.recipes.balle.BalleRecipe.score`); the caption figures of
    :meth:`semcom.train.recipes.captioner.CaptionerRecipe.score` for captioners
    (``task == "caption"``) and the semantic success of
    :meth:`semcom.train.recipes.text_diffusion.TextDiffusionRecipe.score` for
    text-to-image generators (``task == "generate"``; judged by the zoo classifier).
    The model is put in eval mode and restored to its previous mode afterwards.
    """
    model = getattr(model, "module", model)
    task = task or getattr(model, "task", None)
    if task == "codec":  # VQ-VAE codecs: vqvae-synth's figures; Balle codecs: balle-synth's
        from semcom.train.recipes.balle import BalleRecipe
        from semcom.train.recipes.vqvae import VQVAERecipe

        recipe = VQVAERecipe if hasattr(model, "quantizer") else BalleRecipe
        return recipe.score(
            model, split=split, n=n, batch_size=batch_size, image_size=image_size, data=data
        )
    if task in ("caption", "generate"):  # the progressive text scheme's two ends
        from semcom.train.recipes.captioner import CaptionerRecipe
        from semcom.train.recipes.text_diffusion import TextDiffusionRecipe

        if data is not None:
            raise InputError(f"a {task} model is scored on the synthetic world only")
        text_recipe = CaptionerRecipe if task == "caption" else TextDiffusionRecipe
        return text_recipe.score(
            model, split=split, n=n, batch_size=min(batch_size, 64), image_size=image_size
        )
    if task == "reconstruct":  # patch decoders
        from semcom.train.patch import evaluate_reconstruction

        return evaluate_reconstruction(
            model, split=split, n=n, batch_size=batch_size, image_size=image_size, data=data
        )
    if task not in ("classify", "segment"):
        raise InputError(f"cannot evaluate model with task {task!r}")
    if data is None and (n is None or n < 1):
        raise InputError(f"n must be >= 1, got {n}")
    was_training = model.training
    model.eval()
    correct = count = 0
    cm: Tensor | None = None
    try:
        for x, y, masks, _ in eval_batches(split, n, batch_size, image_size, data):
            if task == "segment" and masks is not None:  # the synthetic world's masks
                y = masks
            out = model(x)
            if isinstance(out, dict):  # e.g. VisionTransformer: {"logits": ...}
                out = out["logits"]
            if task == "classify":
                correct += int((out.argmax(1) == y).sum())
                count += int(y.numel())
            else:
                k = out.shape[1]
                c = confusion_matrix(out.argmax(1), y, k)
                cm = c if cm is None else cm + c
                count += int(y.shape[0])
    finally:
        model.train(was_training)
    name = split if data is None else "dataset"
    if task == "classify":
        return {"split": name, "n": count, "accuracy": correct / max(count, 1)}
    assert cm is not None
    iou = iou_from_confusion(cm)
    return {
        "split": name,
        "n": count,
        "miou": iou.miou,
        "pixel_accuracy": _pixacc(cm),
        "iou": [float(v) for v in iou.per_class],
    }
