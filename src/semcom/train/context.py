"""Give a trained VQ-VAE a context-adaptive index prior after the fact.

A VQ-VAE trained with ``--model-kw '{"context": 64}'`` fits its context model
(:mod:`semcom.models.index_context`) at the end of the run. This tool adds one to a
checkpoint trained without: it rebuilds the model with ``context = hidden``, copies every
trained weight (the encoder, codebook and decoder are unchanged, so the same images give
the same indices), and fits the static prior and the context model on the indices of the
first ``images`` training images, exactly as the recipe's ``finish`` does::

    python -m semcom.train.context runs/vq4/vqvae-synth.safetensors --out runs/vq4/ctx.safetensors
    python -m semcom.train.context runs/cv-vq4/vqvae-synth.safetensors \
        --out runs/cv-vq4/ctx.safetensors --dataset camvid \
        --data-root CAMVID_DIR --image-size 240x320

It prints one JSON line: the fit's ``train_bits`` and the ``vqvae-synth`` evaluation of
the new checkpoint (``bytes_context`` next to ``bytes_per_image`` and ``bytes_fixed``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from semcom.errors import InputError, SemcomError

__all__ = ["add_context", "main"]


def add_context(
    checkpoint: str | Path,
    out: str | Path,
    *,
    hidden: int = 64,
    images: int = 2048,
    steps: int = 1500,
    seed: int = 0,
    image_size: int | tuple[int, int] = 64,
    eval_n: int = 256,
    dataset: str = "synthetic",
    data_root: str | Path | None = None,
) -> dict[str, Any]:
    """Write ``out``: ``checkpoint``'s VQ-VAE with a fitted context model of width
    ``hidden``; returns the fit's figures and the evaluation on ``eval_n`` test images
    (of a real ``dataset``: fitted on its train split's whole images at ``image_size``,
    evaluated on its val split)."""
    from semcom.models.checkpoint import load_checkpoint, save_checkpoint
    from semcom.models.registry import create_model
    from semcom.train.recipes.vqvae import VQVAERecipe
    from semcom.train.sources import load_data_split, parse_image_size

    src, meta = load_checkpoint(checkpoint)
    if not hasattr(src, "fit_context"):
        raise InputError(f"{checkpoint}: holds a {meta.name}, not a VQ-VAE")
    config = {**meta.config, "context": hidden}
    model = create_model(meta.name, **config)
    missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
    if unexpected or any(not k.startswith("context.") for k in missing):
        raise InputError(f"{checkpoint}: keys do not match a {meta.name} ({unexpected or missing})")
    size = parse_image_size(image_size)
    data = load_data_split(dataset, data_root, "train", size)
    eval_data = load_data_split(dataset, data_root, "val", size)
    if data is not None:
        images = min(images, len(data))
    recipe = VQVAERecipe(
        arch=meta.name,
        model_kw=config,
        image_size=size,
        prior_images=images,
        context_steps=steps,
        data=data,
        dataset=dataset,
    )
    recipe.check()
    run: dict[str, Any] = {"seed": seed}
    t0 = time.perf_counter()
    recipe.finish(model.eval(), run)
    fit = {**run.get("context_fit", {}), "fit_s": round(time.perf_counter() - t0, 1)}
    path = save_checkpoint(model.eval(), out, step=meta.step, extra={"context_fit": fit})
    scores = VQVAERecipe.score(
        model, split="test", n=eval_n, batch_size=16, image_size=size, data=eval_data
    )
    return {"checkpoint": str(path), **fit, **scores}


def main(argv: list[str] | None = None) -> int:
    """Command line (``python -m semcom.train.context --help``); exit 2 on bad input."""
    p = argparse.ArgumentParser(
        prog="python -m semcom.train.context",
        description="Add a fitted context-adaptive index prior to a trained VQ-VAE checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", help="a vqvae / vqvae-res checkpoint (.safetensors)")
    p.add_argument("--out", required=True, help="where to write the new checkpoint")
    p.add_argument("--hidden", type=int, default=64, help="context model width")
    p.add_argument("--images", type=int, default=2048, help="training images to fit on")
    p.add_argument("--steps", type=int, default=1500, help="optimiser steps of the fit")
    p.add_argument("--seed", type=int, default=0, help="the training batches and the fit")
    p.add_argument(
        "--image-size",
        default="64",
        help="image side N, or HxW for a real dataset (its images are resized to it)",
    )
    p.add_argument("--dataset", default="synthetic", help="synthetic | tiny-imagenet | camvid")
    p.add_argument("--data-root", default=None, help="the real dataset's folder")
    p.add_argument("--eval-n", type=int, default=256, help="test images to evaluate on")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        res = add_context(
            args.checkpoint,
            args.out,
            hidden=args.hidden,
            images=args.images,
            steps=args.steps,
            seed=args.seed,
            image_size=args.image_size,
            eval_n=args.eval_n,
            dataset=args.dataset,
            data_root=args.data_root,
        )
    except (SemcomError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
