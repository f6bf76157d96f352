"""Building blocks of attention-guided patch transmission (Mortaheb et al., arXiv 2405.01521)
for training and scoring: patch selection, masking, the frozen models, coverage.

The recipes that train with them -- ``vit-synth``, ``patch-decoder-synth``,
``shape-classifier-ft`` -- are :mod:`semcom.train.recipes`; they run on the one loop
(:func:`semcom.train.loop.train_patch_model`).

Patch masks: patches are numbered row-major (``semcom.patches``); a keep mask is
bool ``(N, P)``; the pixel mask float32 ``(N, 1, H, W)`` (1 = received).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.patch_decoder import keep_mask_to_pixels
from semcom.patches import RandomK, Rate, TopK
from semcom.train.sources import eval_batches

__all__ = [
    "EVAL_SEED",
    "apply_keep",
    "attention_coverage",
    "cls_attention",
    "eval_keeps",
    "evaluate_reconstruction",
    "load_frozen",
    "logits_of",
    "main_object_share",
    "random_keep",
    "select_patches",
    "top_keep",
]

#: Random-selection seed of the evaluations (per image: ``EVAL_SEED + id``).
EVAL_SEED = 20240502


def load_frozen(spec: str | os.PathLike[str] | nn.Module) -> nn.Module:
    """A frozen model (eval mode, ``requires_grad=False``) from a zoo name or a checkpoint path.

    ``spec`` is an ``nn.Module`` (used as is), the path of a semcom checkpoint, or a zoo
    name (``semcom.models.zoo.load_pretrained``).
    """
    if isinstance(spec, nn.Module):
        model = spec
    else:
        path = Path(spec)
        if path.suffix in (".safetensors", ".pt", ".pth") or path.is_file():
            from semcom.models.checkpoint import load_checkpoint

            model, _ = load_checkpoint(path)
        else:
            from semcom.models.zoo import load_pretrained

            model = load_pretrained(str(spec))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def init_from(model: nn.Module, spec: str | os.PathLike[str]) -> nn.Module:
    """``model`` with the weights of checkpoint / zoo model ``spec`` (``--init``): same
    class and config, every key (strict); InputError naming what differs otherwise."""
    from semcom.models.zoo import load_model

    src = load_model(str(spec))
    if type(src) is not type(model) or getattr(src, "config", None) != model.config:
        raise InputError(
            f"--init {spec}: a {type(src).__name__} with config "
            f"{getattr(src, 'config', None)}, not this run's {type(model).__name__} "
            f"{getattr(model, 'config', None)}"
        )
    model.load_state_dict(src.state_dict(), strict=True)
    return model


def logits_of(out: Any) -> Tensor:
    """A classifier's logits, whether it returns them or ``{"logits": ...}`` (a ViT)."""
    return out["logits"] if isinstance(out, dict) else out


def cls_attention(vit: nn.Module, x: Tensor) -> Tensor:
    """Mean last-layer CLS attention float32 ``(N, P)`` of the frozen ``vit``."""
    with torch.no_grad():
        return vit(x, return_attention="mean")["attention"]


def select_patches(counts: Tensor, scores: Tensor, use_scores: Tensor | None = None) -> Tensor:
    """Keep ``counts[i]`` patches of row ``i``: the highest-scoring ones or random ones.

    Args:
        counts: int64 ``(N,)``, patches to keep per row (clamped to ``[1, P]``).
        scores: float ``(N, P)`` patch scores (e.g. a ViT's CLS attention).
        use_scores: bool ``(N,)``, which rows select by score (default: all); the other
            rows keep a uniformly random subset drawn from the global torch RNG.

    Returns:
        bool ``(N, P)``, ``True`` = kept. Ties in score go to the lower patch index.
    """
    n, p = scores.shape
    s = scores.float()
    if use_scores is not None:
        s = torch.where(use_scores.view(-1, 1), s, torch.rand(n, p))
    order = torch.sort(s, dim=1, descending=True, stable=True).indices
    keep_rank = torch.arange(p).unsqueeze(0) < counts.long().clamp(1, p).unsqueeze(1)
    return torch.zeros(n, p, dtype=torch.bool).scatter_(1, order, keep_rank)


def top_keep(scores: Tensor, k: int) -> Tensor:
    """The ``k`` highest-scoring patches of every row (``semcom.patches.TopK``): bool ``(N, P)``."""
    return TopK(k)(scores)


def random_keep(n: int, p: int, k: int, ids: Tensor) -> Tensor:
    """Deterministic random keep masks: row ``i`` is ``RandomK(k)`` seeded with
    ``EVAL_SEED + ids[i]`` (bool ``(N, P)``)."""
    return RandomK(k)(torch.zeros(n, p), seed=[int(s) for s in ids + EVAL_SEED])


def eval_keeps(att: Tensor, ids: Tensor, rate: float) -> dict[str, Tensor]:
    """The two selections an evaluation compares at keep rate ``rate``, both of
    ``semcom.patches.Rate``'s count: ``{"attn": Rate(rate)(att), "rand": seeded random}``."""
    n, p = att.shape
    rule = Rate(rate)
    return {"attn": rule(att), "rand": random_keep(n, p, rule.count(p), ids)}


def apply_keep(images: Tensor, keep: Tensor, patch_size: int) -> tuple[Tensor, Tensor]:
    """Zero the patches not kept.

    Args:
        images: float ``(N, 3, H, W)`` in ``[0, 1]``.
        keep: bool ``(N, P)``.
        patch_size: patch side.

    Returns:
        ``(sparse, mask)``: float ``(N, 3, H, W)`` and float ``(N, 1, H, W)``.
    """
    m = keep_mask_to_pixels(keep, tuple(images.shape[-2:]), patch_size).to(images.dtype)
    return images * m, m


def main_object_share(masks: Tensor, labels: Tensor, patch_size: int) -> Tensor:
    """Main-object pixels per patch: float32 ``(N, P)`` counts (row-major patches).

    ``masks`` int64 ``(N, H, W)`` (``1 + class`` on objects), ``labels`` int64 ``(N,)``.
    """
    main = (masks == (labels + 1).view(-1, 1, 1)).float().unsqueeze(1)
    return F.avg_pool2d(main, patch_size).flatten(1) * patch_size * patch_size


def attention_coverage(keep: Tensor, share: Tensor) -> Tensor:
    """Fraction of main-object pixels inside kept patches: float ``(N,)``."""
    total = share.sum(1).clamp_min(1.0)
    return (share * keep.float()).sum(1) / total


@torch.no_grad()
def evaluate_reconstruction(
    decoder: nn.Module,
    *,
    split: str = "val",
    n: int | None = 512,
    batch_size: int = 64,
    image_size: int = 64,
    data: Any = None,
    rate: float = 0.5,
    vit: nn.Module | None = None,
    paste_received: bool = False,
) -> dict[str, Any]:
    """Mean PSNR (dB) of ``decoder`` rebuilding images that kept a fraction ``rate`` of
    their patches: attention-selected by ``vit`` when given, else random (per-image seeds).

    This is ``semcom.train.evaluate``'s protocol for ``task == "reconstruct"`` models
    (``rate=0.5``, random, no pasting). Returns ``{"split", "n", "psnr"}``.
    """
    from semcom.metrics import psnr

    ps = int(getattr(decoder, "patch_size", 8))
    total, count = 0.0, 0
    was = decoder.training
    decoder.eval()
    try:
        for x, _, _, ids in eval_batches(split, n, batch_size, image_size, data):
            p = (x.shape[-2] // ps) * (x.shape[-1] // ps)
            k = Rate(rate).count(p)
            if vit is not None:
                keep = top_keep(cls_attention(vit, x), k)
            else:
                keep = random_keep(len(x), p, k, ids)
            sparse, m = apply_keep(x, keep, ps)
            out = decoder(sparse, m, paste_received=paste_received)
            v = psnr(out, x).clamp(max=100.0)
            total += float(v.double().sum())
            count += len(x)
    finally:
        decoder.train(was)
    return {"split": split if data is None else "dataset", "n": count, "psnr": total / count}
