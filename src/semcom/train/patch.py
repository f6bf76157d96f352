"""Training for attention-guided patch transmission (Mortaheb et al., arXiv 2405.01521).

Three recipes, each run by ``train_patch_model(name, out_dir, ...)`` or
``python -m semcom.train --model <name> ...``, on the machinery of
:mod:`semcom.train.loop` (same schedules, per-step seeding, ``last.*`` resumable
checkpoints, progress output, DDP under ``torchrun``) and the batch sources of
:mod:`semcom.train.sources`:

``vit-synth``
    A ViT classifier (default architecture ``vit-edge-synth``, any registered ViT via
    ``arch=``) trained from scratch. Cross-entropy (optionally label-smoothed) plus, with
    ``attn_weight > 0`` on the synthetic world, an *attention-guidance* term: the KL
    divergence from the main object's per-patch area share to the last layer's
    head-averaged CLS attention. The label is the main object's shape, so a well-trained
    ViT attends to it anyway; the term makes that happen within a CPU budget.

``patch-decoder-synth``
    The :class:`~semcom.models.patch_decoder.PatchDecoder` (``arch="patch-decoder"``):
    each image keeps ``k ~ U{ceil(min_rate * P), ..., P}`` of its ``P`` patches, chosen by
    the frozen ViT's mean CLS attention (probability ``attn_frac``) or uniformly at random,
    the rest are zeroed; loss = MSE to the clean image (the paper's) plus
    ``perceptual_weight`` x the deep-feature distance (``semcom.metrics.FeatureDistance``)
    on the frozen zoo ``shape-classifier``'s feature maps.

``shape-classifier-ft``
    The zoo ``shape-classifier`` fine-tuned on decoder reconstructions (received
    patches pasted, ``r ~ U{0.25, 0.5, 0.75, 1}``, attention/random selection) mixed with
    a fraction ``clean_frac`` of clean images; same architecture (``arch="shape-classifier"``),
    the dense aux-mask loss of the original training is kept on the synthetic world.

Checkpoints carry the *architecture* name (``vit-edge-synth``, ``patch-decoder``,
``shape-classifier``) and full config; the zoo entry (``name``) records it as ``arch``.

Patch masks: patches are numbered row-major (``semcom.patches``); a keep mask is
bool ``(N, P)``; the pixel mask float32 ``(N, 1, H, W)`` (1 = received).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.patch_decoder import keep_mask_to_pixels
from semcom.models.registry import create_model
from semcom.train.loop import (
    SCHEDULES,
    TrainResult,
    _dist_env,
    _finish,
    _lr_lambda,
    _mask_at,
    _Progress,
    _resume,
    _write_final,
    run_steps,
)
from semcom.train.sources import (
    DATASETS,
    DatasetSource,
    SyntheticSource,
    collate_items,
    load_data_split,
)

__all__ = [
    "DATASETS",
    "PATCH_MODELS",
    "ZOO_DEPENDS",
    "add_patch_model_to_zoo",
    "apply_keep",
    "attention_coverage",
    "evaluate_patch_model",
    "evaluate_reconstruction",
    "load_frozen",
    "main_object_share",
    "select_patches",
    "train_patch_model",
]

#: recipe name -> (default architecture, task)
PATCH_MODELS: dict[str, tuple[str, str]] = {
    "vit-synth": ("vit-edge-synth", "classify"),
    "patch-decoder-synth": ("patch-decoder", "reconstruct"),
    "shape-classifier-ft": ("shape-classifier", "classify"),
}
EVAL_RATES = (0.25, 0.5, 1.0)
FT_RATES = (0.25, 0.5, 0.75, 1.0)
_EVAL_SEED = 20240502  # random-selection seed of the evaluations (per image: seed + index)


# --------------------------------------------------------------------------- helpers


def _to_float(x: Tensor) -> Tensor:
    """uint8 ``(N, 3, H, W)`` -> float32 in ``[0, 1]`` (float passes through)."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


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


def _logits(out: Any) -> Tensor:
    return out["logits"] if isinstance(out, dict) else out


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


def _count(rate: float, p: int) -> int:
    """``semcom.patches.Rate``'s count: ``max(1, floor(r * P + 0.5))``."""
    return min(p, max(1, math.floor(rate * p + 0.5)))


def _random_keep(n: int, p: int, k: int, seeds: Tensor) -> Tensor:
    """Deterministic random keep masks: row ``i`` uses ``RandomK(k)`` with seed ``seeds[i]``."""
    from semcom.patches import RandomK

    return RandomK(k)(torch.zeros(n, p), seed=[int(s) for s in seeds])


def _attention(vit: nn.Module, x: Tensor) -> Tensor:
    """Mean last-layer CLS attention float32 ``(N, P)`` of the frozen ``vit``."""
    with torch.no_grad():
        return vit(x, return_attention="mean")["attention"]


# --------------------------------------------------------------------------- data


def _num_classes(data: Any) -> int:
    for attr in ("num_classes",):
        v = getattr(data, attr, None)
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


def _eval_batches(
    split: str, n: int | None, batch_size: int, image_size: int, data: Any
) -> Iterator[tuple[Tensor, Tensor, Tensor | None, Tensor]]:
    """Yield ``(x float (B,3,H,W), labels (B,), masks (B,H,W) | None, ids (B,))``.

    ``ids`` identify the images (world seeds, or dataset indices) and seed the random
    patch selections, so a score never depends on the batch size.
    """
    if data is None:
        from semcom.data.synthetic import SyntheticWorld

        world = SyntheticWorld(size=image_size)
        seeds = torch.as_tensor(world.split_seeds(split, n), dtype=torch.int64)
        for i in range(0, len(seeds), batch_size):
            s = seeds[i : i + batch_size]
            b = world.generate(s)
            yield _to_float(b.images), b.labels, b.masks, s
        return
    total = len(data) if n is None else min(n, len(data))
    for i in range(0, total, batch_size):
        idx = list(range(i, min(total, i + batch_size)))
        x, y = collate_items([data[j] for j in idx])
        yield x, y, None, torch.tensor(idx, dtype=torch.int64)


# --------------------------------------------------------------------------- evaluation


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
        for x, _, _, ids in _eval_batches(split, n, batch_size, image_size, data):
            p = (x.shape[-2] // ps) * (x.shape[-1] // ps)
            k = _count(rate, p)
            if vit is not None:
                keep = select_patches(torch.full((len(x),), k), _attention(vit, x))
            else:
                keep = _random_keep(len(x), p, k, ids + _EVAL_SEED)
            sparse, m = apply_keep(x, keep, ps)
            out = decoder(sparse, m, paste_received=paste_received)
            v = psnr(out, x).clamp(max=100.0)
            total += float(v.double().sum())
            count += len(x)
    finally:
        decoder.train(was)
    return {"split": split if data is None else "dataset", "n": count, "psnr": total / count}


@torch.no_grad()
def evaluate_patch_model(
    name: str,
    model: nn.Module,
    *,
    split: str = "val",
    n: int | None = 512,
    batch_size: int = 64,
    image_size: int = 64,
    data: Any = None,
    vit: Any = "vit-synth",
    decoder: Any = "patch-decoder-synth",
    baseline: Any = "shape-classifier",
) -> dict[str, Any]:
    """The metrics recorded in the zoo for recipe ``name`` (all on the same ``n`` images).

    * ``vit-synth``: ``accuracy``; ``accuracy_attn_r{r}`` (classifying from the top-``r``
      attention tokens only, ``keep=``); on the synthetic world also
      ``cover_attn_r0.25`` / ``cover_rand_r0.25``: mean fraction of the main object's
      pixels inside the top-25% attention patches / 25% random patches.
    * ``patch-decoder-synth``: ``psnr`` (= :func:`evaluate_reconstruction`: random,
      r = 0.5, no pasting) and ``psnr_{attn,rand}_r{0.25,0.5,1.0}`` (decoder output, no
      pasting), ``psnr_paste_{attn,rand}_r0.25`` (received pixels pasted).
    * ``shape-classifier-ft``: ``accuracy`` (clean images) and
      ``acc_recon_{attn,rand}_r{0.25,0.5}`` on reconstructions (pasted), plus the same
      for the original ``baseline`` classifier as ``base_acc_recon_*`` / ``base_accuracy``.

    ``vit`` / ``decoder`` / ``baseline``: zoo names, checkpoint paths or modules (only
    those the recipe needs are loaded).
    """
    from semcom.metrics import psnr
    from semcom.patches import mask_to_keep

    if name not in PATCH_MODELS:
        raise InputError(f"unknown patch recipe {name!r}; expected one of {sorted(PATCH_MODELS)}")
    was = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0

    def add(key: str, v: Tensor) -> None:
        sums[key] = sums.get(key, 0.0) + float(v.double().sum())

    try:
        if name == "vit-synth":
            ps = int(model.patch_size)
            for x, y, masks, ids in _eval_batches(split, n, batch_size, image_size, data):
                out = model(x, return_attention="mean")
                att = out["attention"]
                add("accuracy", (out["logits"].argmax(1) == y).float())
                p = att.shape[1]
                for r in (0.25, 0.5):
                    keep = select_patches(torch.full((len(x),), _count(r, p)), att)
                    lg = model(x, keep=mask_to_keep(keep))["logits"]
                    add(f"accuracy_attn_r{r}", (lg.argmax(1) == y).float())
                if masks is not None:
                    share = main_object_share(masks, y, ps)
                    k = _count(0.25, p)
                    keep = select_patches(torch.full((len(x),), k), att)
                    add("cover_attn_r0.25", attention_coverage(keep, share))
                    rk = _random_keep(len(x), p, k, ids + _EVAL_SEED)
                    add("cover_rand_r0.25", attention_coverage(rk, share))
                count += len(x)
        elif name == "patch-decoder-synth":
            v = load_frozen(vit)
            ps = int(model.patch_size)
            for x, _, _, ids in _eval_batches(split, n, batch_size, image_size, data):
                att = _attention(v, x)
                p = att.shape[1]
                for r in EVAL_RATES:
                    k = _count(r, p)
                    keeps = {
                        "attn": select_patches(torch.full((len(x),), k), att),
                        "rand": _random_keep(len(x), p, k, ids + _EVAL_SEED),
                    }
                    for mode, keep in keeps.items():
                        sparse, m = apply_keep(x, keep, ps)
                        out = model(sparse, m)
                        add(f"psnr_{mode}_r{r}", psnr(out, x).clamp(max=100.0))
                        if r == 0.25:
                            pasted = m * sparse + (1 - m) * out
                            add(f"psnr_paste_{mode}_r{r}", psnr(pasted, x).clamp(max=100.0))
                count += len(x)
            sums["psnr"] = sums["psnr_rand_r0.5"]
        else:
            v = load_frozen(vit)
            dec = load_frozen(decoder)
            base = load_frozen(baseline) if baseline is not None else None
            ps = int(dec.patch_size)
            judges = {"": model, **({"base_": base} if base is not None else {})}
            for x, y, _, ids in _eval_batches(split, n, batch_size, image_size, data):
                att = _attention(v, x)
                p = att.shape[1]
                for pre, clf in judges.items():
                    add(f"{pre}accuracy", (_logits(clf(x)).argmax(1) == y).float())
                for r in (0.25, 0.5):
                    k = _count(r, p)
                    keeps = {
                        "attn": select_patches(torch.full((len(x),), k), att),
                        "rand": _random_keep(len(x), p, k, ids + _EVAL_SEED),
                    }
                    for mode, keep in keeps.items():
                        sparse, m = apply_keep(x, keep, ps)
                        rec = dec(sparse, m, paste_received=True)
                        for pre, clf in judges.items():
                            hit = (_logits(clf(rec)).argmax(1) == y).float()
                            add(f"{pre}acc_recon_{mode}_r{r}", hit)
                count += len(x)
    finally:
        model.train(was)
    res: dict[str, Any] = {"split": split if data is None else "dataset", "n": count}
    for key in sorted(sums):
        res[key] = sums[key] / max(count, 1)
    return res


# --------------------------------------------------------------------------- training


class _Recipe:
    """Per-recipe model building and loss (the loop itself is shared)."""

    def __init__(self, name: str, cfg: dict[str, Any], data: Any) -> None:
        self.name = name
        self.cfg = cfg
        self.data = data
        self.vit: nn.Module | None = None
        self.decoder: nn.Module | None = None
        self.featdist: Any = None

    def build(self, model_kw: dict[str, Any]) -> nn.Module:
        arch = self.cfg["arch"]
        kw = dict(model_kw)
        if self.name == "shape-classifier-ft":
            init = load_frozen(self.cfg["classifier"])
            model = create_model(arch, **{**init.config, **kw})
            model.load_state_dict(init.state_dict())
            for p in model.parameters():
                p.requires_grad_(True)
        else:
            if self.name == "vit-synth" and self.data is not None and "num_classes" not in kw:
                kw["num_classes"] = _num_classes(self.data)
            if self.name == "vit-synth" and "img_size" not in kw:
                kw["img_size"] = self.cfg["image_size"]
            model = create_model(arch, **kw)
        if self.name in ("patch-decoder-synth", "shape-classifier-ft"):
            self.vit = load_frozen(self.cfg["vit"])
        if self.name == "shape-classifier-ft":
            self.decoder = load_frozen(self.cfg["decoder"])
        if self.name == "patch-decoder-synth" and self.cfg["perceptual_weight"]:
            from semcom.metrics import FeatureDistance

            judge = load_frozen(self.cfg["perceptual_net"])
            self.featdist = FeatureDistance(judge.features, name="perceptual")
        return model

    def loss(
        self, net: nn.Module, model: nn.Module, x: Tensor, y: Tensor, masks: Tensor | None
    ) -> Tensor:
        c = self.cfg
        n = x.shape[0]
        if self.name == "vit-synth":
            if self.data is not None and c["flip"]:
                flip = torch.rand(n) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            guide = bool(c["attn_weight"]) and masks is not None
            dense = bool(c["aux_weight"]) and masks is not None
            tokens: list[Tensor] = []
            hook = (
                model.norm.register_forward_hook(lambda _m, _i, o: tokens.append(o))
                if dense
                else None
            )
            try:
                out = net(x, return_attention="mean" if guide else None)
            finally:
                if hook is not None:
                    hook.remove()
            loss = F.cross_entropy(out["logits"], y, label_smoothing=c["label_smoothing"])
            if dense:
                # every patch token on an object predicts that object's class (shared head)
                g = int(model.grid_size)
                pt = model.head(tokens[0][:, model.num_prefix_tokens :])  # (N, P, C)
                tgt = _mask_at(masks, (g, g)).flatten(1) - 1  # (N, P), -1 = background
                loss = loss + c["aux_weight"] * F.cross_entropy(
                    pt.flatten(0, 1), tgt.flatten(), ignore_index=-1
                )
            if guide:
                share = main_object_share(masks, y, int(model.patch_size))
                t = share / share.sum(1, keepdim=True).clamp_min(1.0)
                a = out["attention"].clamp_min(1e-8)
                kl = (t * (torch.log(t.clamp_min(1e-8)) - torch.log(a))).sum(1).mean()
                loss = loss + c["attn_weight"] * kl
            return loss
        assert self.vit is not None
        p = (x.shape[-2] // int(self.vit.patch_size)) * (x.shape[-1] // int(self.vit.patch_size))
        att = _attention(self.vit, x)
        use_att = torch.rand(n) < c["attn_frac"]
        if self.name == "patch-decoder-synth":
            lo = max(1, math.ceil(c["min_rate"] * p))
            counts = torch.randint(lo, p + 1, (n,))
            keep = select_patches(counts, att, use_att)
            sparse, m = apply_keep(x, keep, int(model.patch_size))
            pred = net(sparse, m)
            loss = F.mse_loss(pred, x)
            if self.featdist is not None:
                loss = loss + c["perceptual_weight"] * self.featdist(pred, x).mean()
            return loss
        # shape-classifier-ft
        assert self.decoder is not None
        rates = torch.tensor(FT_RATES)[torch.randint(0, len(FT_RATES), (n,))]
        counts = torch.floor(rates * p + 0.5).long()
        keep = select_patches(counts, att, use_att)
        with torch.no_grad():
            sparse, m = apply_keep(x, keep, int(self.decoder.patch_size))
            rec = self.decoder(sparse, m, paste_received=True)
            clean = (torch.rand(n) < c["clean_frac"]).view(-1, 1, 1, 1)
            xin = torch.where(clean, x, rec)
        if c["aux_weight"] and masks is not None and getattr(model, "has_aux", False):
            logits, aux = net(xin, return_aux=True)
            aux_t = _mask_at(masks, aux.shape[-2:])
            ce = F.cross_entropy(logits, y, label_smoothing=c["label_smoothing"])
            return ce + c["aux_weight"] * F.cross_entropy(aux, aux_t, ignore_index=255)
        return F.cross_entropy(_logits(net(xin)), y, label_smoothing=c["label_smoothing"])


def train_patch_model(
    name: str,
    out_dir: str | os.PathLike[str],
    *,
    steps: int = 1000,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    resume: bool = True,
    arch: str | None = None,
    model_kw: dict[str, Any] | None = None,
    dataset: str = "synthetic",
    data_root: str | os.PathLike[str] | None = None,
    data: Any = None,
    eval_data: Any = None,
    image_size: int = 64,
    schedule: str = "cosine",
    warmup: float = 0.05,
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
    grad_clip: float | None = 1.0,
    ckpt_every: int = 250,
    eval_n: int = 512,
    eval_split: str = "val",
    quiet: bool = False,
    log_every: int = 50,
    threads: int | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train patch-transmission recipe ``name`` (see the module docstring).

    Args:
        name: ``"vit-synth"``, ``"patch-decoder-synth"`` or ``"shape-classifier-ft"``.
        out_dir: ``last.safetensors`` / ``last_state.pt`` (resume), ``<name>.safetensors``
            (final, with metrics in its metadata) and ``metrics.json`` go here.
        steps / batch_size / lr / weight_decay / seed / schedule / warmup / grad_clip /
            ckpt_every / stop_after / resume / threads: as in
            :func:`semcom.train.loop.train_task_model`.
        arch: registered architecture (default: ``PATCH_MODELS[name][0]``).
        model_kw: config overrides for ``create_model(arch, ...)``.
        dataset: ``"synthetic"`` (generated on the fly) or ``"tiny-imagenet"`` (read with
            ``semcom.data.load_dataset(dataset, root=data_root, split="train"/"val")``).
            ``data`` / ``eval_data``: map-style datasets given directly instead.
        label_smoothing: cross-entropy smoothing (ViT, fine-tuned classifier).
        aux_weight: dense loss on the synthetic world's masks: the fine-tuned classifier's
            aux mask head; for the ViT, every patch token lying on an object predicts that
            object's class through the shared ``head`` (no extra parameters).
        attn_weight: ViT attention guidance (synthetic world only; 0 = off).
        perceptual_weight / perceptual_net: decoder's feature-distance term and backbone.
        min_rate: decoder's lowest keep rate. attn_frac: share of attention-selected rows.
        clean_frac: share of clean images for the fine-tuned classifier.
        flip: random horizontal flips for the ViT on real datasets.
        vit / decoder / classifier: zoo names or checkpoint paths of the frozen ViT
            (attention), the frozen decoder and the classifier to fine-tune.
        eval_n / eval_split: final :func:`evaluate_patch_model` on ``eval_n`` images of
            the synthetic ``eval_split`` (or on the validation dataset); 0 skips it.
    """
    if name not in PATCH_MODELS:
        raise InputError(f"unknown patch recipe {name!r}; expected one of {sorted(PATCH_MODELS)}")
    if steps < 1 or batch_size < 1:
        raise InputError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if lr <= 0:
        raise InputError(f"lr must be > 0, got {lr}")
    if schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    if image_size < 8 or image_size % 8:
        raise InputError(f"image_size must be a positive multiple of 8, got {image_size}")
    if not 0.0 < min_rate <= 1.0 or not 0.0 <= attn_frac <= 1.0 or not 0.0 <= clean_frac <= 1.0:
        raise InputError("min_rate must be in (0, 1]; attn_frac and clean_frac in [0, 1]")
    if threads:
        torch.set_num_threads(int(threads))
    if data is None:
        data = load_data_split(dataset, data_root, "train", image_size)
        if eval_data is None and data is not None:
            eval_data = load_data_split(dataset, data_root, "val", image_size)
    elif dataset == "synthetic":
        dataset = type(data).__name__
    cfg = {
        "arch": arch or PATCH_MODELS[name][0],
        "image_size": image_size,
        "label_smoothing": label_smoothing,
        "aux_weight": aux_weight if name != "patch-decoder-synth" else 0.0,
        "attn_weight": attn_weight if name == "vit-synth" else 0.0,
        "perceptual_weight": perceptual_weight if name == "patch-decoder-synth" else 0.0,
        "perceptual_net": perceptual_net,
        "min_rate": min_rate,
        "attn_frac": attn_frac,
        "clean_frac": clean_frac,
        "flip": bool(flip),
        "vit": str(vit),
        "decoder": str(decoder),
        "classifier": str(classifier),
    }
    rank, world = _dist_env()
    if batch_size % world:
        raise InputError(f"batch_size {batch_size} is not divisible by WORLD_SIZE {world}")
    created_pg = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
        created_pg = True
    try:
        return _run(
            name,
            Path(out_dir),
            cfg=cfg,
            data=data,
            dataset=dataset,
            eval_data=eval_data,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            seed=seed,
            resume=resume,
            model_kw=model_kw or {},
            schedule=schedule,
            warmup=warmup,
            grad_clip=grad_clip,
            ckpt_every=ckpt_every,
            eval_n=eval_n,
            eval_split=eval_split,
            quiet=quiet,
            log_every=log_every,
            stop_after=stop_after,
            rank=rank,
            world=world,
        )
    finally:
        if created_pg:
            dist.destroy_process_group()


def _run(
    name: str,
    out: Path,
    *,
    cfg: dict[str, Any],
    data: Any,
    dataset: str,
    eval_data: Any,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    resume: bool,
    model_kw: dict[str, Any],
    schedule: str,
    warmup: float,
    grad_clip: float | None,
    ckpt_every: int,
    eval_n: int,
    eval_split: str,
    quiet: bool,
    log_every: int,
    stop_after: int | None,
    rank: int,
    world: int,
) -> TrainResult:
    t_start = time.time()
    is_main = rank == 0
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    recipe = _Recipe(name, cfg, data)
    torch.manual_seed(int(seed))
    model = recipe.build(model_kw)
    model.train()
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _lr_lambda(schedule, steps, int(round(warmup * steps)))
    )
    arch = cfg["arch"]
    run_args = {
        "model": arch,
        "recipe": name,
        "model_kw": model.config,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "seed": seed,
        "schedule": schedule,
        "warmup": warmup,
        "grad_clip": grad_clip,
        "dataset": dataset,
        **cfg,
    }
    start = 0
    last_w, last_s = out / "last.safetensors", out / "last_state.pt"
    if resume and last_w.is_file() and last_s.is_file():
        start = _resume(model, opt, sched, last_w, last_s, run_args)
    source: Any = (
        SyntheticSource("classify", seed=seed, image_size=cfg["image_size"])
        if data is None
        else DatasetSource(data, seed=seed)
    )
    net: nn.Module = model
    if world > 1:
        unused = name == "shape-classifier-ft" and not (cfg["aux_weight"] and data is None)
        net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=unused)

    progress = _Progress(steps, start, is_main and not quiet, log_every, name)
    losses, end = run_steps(
        model,
        opt,
        sched,
        source,
        lambda step, x, y, masks: recipe.loss(net, model, x, y, masks),
        progress,
        start=start,
        steps=steps,
        stop_after=stop_after,
        seed=seed,
        batch_size=batch_size,
        grad_clip=grad_clip,
        ckpt_every=ckpt_every,
        run_args=run_args,
        last_w=last_w,
        last_s=last_s,
        rank=rank,
        world=world,
    )
    metrics: dict[str, Any] = {}
    final = None
    if end == steps and is_main:
        model.eval()
        if eval_n or eval_data is not None:
            metrics = evaluate_patch_model(
                name,
                model,
                split=eval_split,
                n=(eval_n or None) if eval_data is not None else eval_n,
                image_size=cfg["image_size"],
                data=eval_data,
                vit=recipe.vit if recipe.vit is not None else cfg["vit"],
                decoder=recipe.decoder if recipe.decoder is not None else cfg["decoder"],
                baseline=cfg["classifier"] if eval_data is None else None,
            )
        final = _write_final(model, out, name, steps, metrics, start, t_start, world, run_args)
    return _finish(model, metrics, end, final, start, t_start, world, losses)


# --------------------------------------------------------------------------- zoo


#: the frozen models each recipe's evaluation uses (zoo names)
ZOO_DEPENDS: dict[str, dict[str, str]] = {
    "vit-synth": {},
    "patch-decoder-synth": {"vit": "vit-synth"},
    "shape-classifier-ft": {
        "vit": "vit-synth",
        "decoder": "patch-decoder-synth",
        "baseline": "shape-classifier",
    },
}
_MAIN_METRIC = {"vit-synth": "accuracy", "patch-decoder-synth": "psnr"}


def add_patch_model_to_zoo(
    name: str,
    checkpoint: str | os.PathLike[str],
    *,
    command: str,
    tolerance: dict[str, float],
    train_facts: dict[str, Any] | None = None,
    test_n: int = 2048,
    check_n: int = 256,
    directory: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Copy a trained recipe checkpoint into the zoo as ``<name>.safetensors`` and record it.

    Like :func:`semcom.models.zoo.add_to_zoo`, plus ``"arch"`` (the registered
    architecture in the checkpoint), ``"depends"`` (the zoo models the evaluation
    uses) and ``"depends_sha256"`` (their files' hashes at scoring time: figures that
    involve a dependency are only reproducible while it is unchanged). ``metrics`` /
    ``check`` hold every :func:`evaluate_patch_model` figure on the first ``test_n`` /
    ``check_n`` synthetic test images; the main one (``accuracy`` or
    ``psnr``) is also what ``semcom.train.evaluate`` computes. Other entries of
    ``zoo.json`` are kept as they are. Returns the entry.
    """
    import shutil

    from semcom.models.checkpoint import load_checkpoint
    from semcom.models.zoo import file_sha256, write_zoo_index, zoo_dir, zoo_entry

    if name not in PATCH_MODELS:
        raise InputError(f"unknown patch recipe {name!r}")
    src = Path(checkpoint)
    model, meta = load_checkpoint(src)
    deps = ZOO_DEPENDS[name]
    full = evaluate_patch_model(name, model, split="test", n=test_n, **deps)
    check = evaluate_patch_model(name, model, split="test", n=check_n, **deps)
    out_dir = Path(directory) if directory is not None else zoo_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    fname = f"{name}.safetensors"
    if src.resolve() != (out_dir / fname).resolve():
        shutil.copyfile(src, out_dir / fname)
    keys = [k for k in full if k not in ("split", "n")]
    main = _MAIN_METRIC.get(name, "accuracy")
    dep_sha = {d: zoo_entry(z)["sha256"] for d, z in deps.items()}
    entry = {
        "name": name,
        "arch": meta.name,
        "file": fname,
        "sha256": file_sha256(out_dir / fname),
        "bytes": (out_dir / fname).stat().st_size,
        "task": PATCH_MODELS[name][1],
        "config": meta.config,
        "depends": deps,
        "depends_sha256": dep_sha,
        "train": {"command": command, **(train_facts or {}), "step": meta.step},
        "metrics": {"split": "test", "n": full["n"], **{k: round(full[k], 4) for k in keys}},
        "check": {"split": "test", "n": check["n"], **{k: check[k] for k in keys}},
        "tolerance": {k: float(tolerance.get(k, tolerance.get(main, 0.02))) for k in keys},
    }
    index = out_dir / "zoo.json"
    doc = json.loads(index.read_text("utf-8")) if index.is_file() else {"format_version": 1}
    models = [e for e in doc.get("models", []) if e.get("name") != name] + [entry]
    doc["models"] = sorted(models, key=lambda e: e["name"])
    write_zoo_index(index, doc)
    return entry
