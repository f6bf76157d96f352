"""``semcom train`` (also ``python -m semcom.train``, ``semcom.train.main(argv)``): train a model.

Example (the zoo's classifier)::

    semcom train --model shape-classifier --steps 1500 --batch-size 64 \
        --lr 3e-3 --seed 0 --out runs/shape-classifier

The attention-guided patch-transmission recipes (``semcom.train.recipes``) run the same
way: ``--model vit-synth | patch-decoder-synth | shape-classifier-ft`` (options in the
"patch transmission" group; ``--dataset tiny-imagenet --data-root DIR`` for real data).

Under ``torchrun --nproc_per_node N`` the same command trains with DDP (gloo).
Prints the final metrics as one JSON line on stdout (rank 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from semcom.errors import SemcomError, one_line
from semcom.train.sources import DATASETS

__all__ = ["build_parser", "main"]


def _error_line(text: object) -> str:
    return f"semcom: error: {one_line(text)}\n"


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``semcom: error: ...`` on stderr, exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, _error_line(message))


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every default shown, except for required options (which have none); lines never
    broken inside a hyphenated name (model names such as deit-tiny-patch16-224)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required:
            return action.help or ""
        return super()._get_help_string(action) or ""


def _image_size(text: str) -> Any:
    """argparse type of ``--image-size``: ``N`` or ``HxW``."""
    from semcom.train.sources import parse_image_size

    try:
        return parse_image_size(text)
    except SemcomError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def trainable_models() -> list[str]:
    """Every name ``--model`` takes: the registered models and the patch recipes."""
    from semcom.models.registry import list_models
    from semcom.train.recipes import PATCH_MODELS

    return sorted(set(list_models()) | set(PATCH_MODELS))


def build_parser(prog: str = "python -m semcom.train") -> argparse.ArgumentParser:
    """The argument parser of ``semcom train`` (``--help`` shows every default)."""
    p = _Parser(
        prog=prog,
        description="Train a model: a task model (classifier, segmenter, ViT) on the "
        "synthetic world or a real dataset, or a patch-transmission recipe; resumable "
        "from --out, seeded, DDP under torchrun. Prints the final metrics as one JSON line.",
        formatter_class=_Formatter,
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="NAME",
        help=f"what to train (required), one of: {', '.join(trainable_models())}",
    )
    p.add_argument(
        "--out", required=True, help="output folder: checkpoints, metrics.json (required)"
    )
    p.add_argument("--steps", type=int, default=2000, help="total optimizer steps")
    p.add_argument("--batch-size", type=int, default=64, help="global batch size")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (AdamW)")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay")
    p.add_argument("--seed", type=int, default=0, help="fixes the init and every batch")
    p.add_argument(
        "--schedule",
        default="cosine",
        choices=["cosine", "onecycle", "constant"],
        help="learning-rate schedule after the warmup",
    )
    p.add_argument("--warmup", type=float, default=0.05, help="warmup fraction of steps")
    p.add_argument(
        "--label-smoothing", type=float, default=0.0, help="cross-entropy label smoothing"
    )
    p.add_argument("--aux-weight", type=float, default=1.0, help="classifier dense mask loss")
    p.add_argument(
        "--image-size",
        type=_image_size,
        default=64,
        help="image side, or HxW (height x width) for a real dataset, each a multiple of 8; "
        "real images are resized to it (default 64)",
    )
    p.add_argument("--model-kw", default="{}", help="JSON object of model config overrides")
    p.add_argument("--ckpt-every", type=int, default=250, help="steps between resume checkpoints")
    p.add_argument(
        "--eval-n", type=int, default=512, help="images of the final evaluation (0 skips it)"
    )
    p.add_argument("--eval-split", default="val", help="synthetic split of the final evaluation")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (1: fastest on a shared CPU)",
    )
    p.add_argument("--log-every", type=int, default=50, help="steps between progress lines")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--dataset",
        default="synthetic",
        choices=list(DATASETS),
        help="training data: the generated synthetic world, or Tiny-ImageNet-200 "
        "(train split; the final evaluation uses its val split)",
    )
    p.add_argument("--data-root", default=None, help="dataset directory (real datasets)")
    g = p.add_argument_group("patch transmission (vit-synth, patch-decoder-synth, ...-ft)")
    g.add_argument("--arch", default=None, help="architecture to build (default per recipe)")
    g.add_argument("--attn-weight", type=float, default=0.0, help="ViT attention guidance")
    g.add_argument("--perceptual-weight", type=float, default=0.0, help="decoder featdist term")
    g.add_argument("--min-rate", type=float, default=0.25, help="decoder's lowest keep rate")
    g.add_argument("--attn-frac", type=float, default=0.5, help="share of attention masks")
    g.add_argument("--clean-frac", type=float, default=0.25, help="ft: share of clean images")
    g.add_argument("--vit", default="vit-synth", help="frozen ViT: zoo name or checkpoint")
    g.add_argument("--decoder", default="patch-decoder-synth", help="frozen decoder (ft)")
    g.add_argument("--classifier", default="shape-classifier", help="classifier to fine-tune")
    g.add_argument(
        "--ft-trainable",
        default="",
        metavar="PREFIXES",
        help="ft: comma-separated parameter-name prefixes to train, the rest frozen "
        "(e.g. blocks.16,head,classifier for mobilenet-v2); empty: all",
    )
    v = p.add_argument_group(
        "GOS-VAE and Balle codecs (gos-vae-synth, balle-synth; --init: fine-tune a trained codec;"
        " also text-diffusion-synth / captioner-synth: continue from a trained model)"
    )
    v.add_argument(
        "--segmenter",
        default="shape-segmenter",
        metavar="SPEC",
        help="frozen task model: zoo name or semcom checkpoint, or espnet=PATH (the authors' "
        "ESPNet CamVid file)",
    )
    v.add_argument(
        "--task-loss",
        default="jsd",
        choices=["jsd", "kld", "ce", "none"],
        help="task term between the segmenter's outputs on the original and the reconstruction",
    )
    v.add_argument("--task-weight", type=float, default=1.0, help="weight of the task term")
    v.add_argument(
        "--perceptual",
        default="none",
        metavar="SPEC",
        help="perceptual term: lpips-vgg=DIR (the paper's), lpips-alex=DIR (cheaper) or none; "
        "DIR holds the LPIPS safetensors weights",
    )
    v.add_argument("--lpips-weight", type=float, default=1.0, help="weight of the LPIPS term")
    v.add_argument("--mse-weight", type=float, default=0.0, help="weight of a pixel MSE term")
    v.add_argument(
        "--crop",
        type=int,
        default=0,
        help="vqvae-synth, gos-vae-synth, balle-synth on a real dataset: train on random "
        "crops of this side (multiple of 8; mirrored at random) of the --image-size images; "
        "0: whole images",
    )
    v.add_argument(
        "--lmbda",
        type=float,
        default=0.013,
        help="balle-synth: rate-distortion trade-off, loss = bpp + lmbda * 255^2 * distortion "
        "(CompressAI's scale for MSE: 0.0018 .. 0.0483)",
    )
    s = p.add_argument_group("collaborative server (server-synth)")
    s.add_argument(
        "--edge-attn-frac",
        type=float,
        default=0.0,
        help="share of rows that keep the edge ViT's (--vit) top-attention patches "
        "instead of random ones",
    )
    s.add_argument(
        "--init",
        default=None,
        metavar="CKPT",
        help="server-synth, gos-vae-synth, balle-synth, text-diffusion-synth, captioner-synth: "
        "start from this checkpoint's weights (same architecture and config)",
    )
    s.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="text-diffusion-synth: the final checkpoint holds the exponential moving "
        "average of the weights with this decay (0: off, e.g. 0.999)",
    )
    d = p.add_argument_group("distillation (vit-distill, server-synth)")
    d.add_argument(
        "--teacher",
        default=None,
        metavar="SPEC",
        help="vit-distill: teacher judge spec, e.g. tflite-classifier=mobilenet_v2_1.0_224_quant"
        ".tflite (see `semcom judges`), its answers on every view cached in --out; "
        "server-synth: a classifier server (zoo name or checkpoint, e.g. server-synth) "
        "scoring the same blanked image online; none: labels only",
    )
    d.add_argument("--views", type=int, default=6, help="views per image (1 = the image only)")
    d.add_argument("--temperature", type=float, default=2.0, help="softening temperature T")
    d.add_argument(
        "--distill-weight", type=float, default=0.5, help="weight a of the teacher term (0..1)"
    )
    d.add_argument(
        "--stem",
        default=None,
        metavar="CKPT",
        help="with --arch vit-hybrid-mnv2: a mobilenet-v2 checkpoint whose first blocks "
        "become the frozen patch embedding (e.g. the ImageNet port that "
        "semcom.models.tflite_import writes); with --arch vit-hybrid-shape (server-synth): "
        "a shape-classifier checkpoint (e.g. server-synth); none: the stem trains from scratch",
    )
    return p


def main(argv: Sequence[str] | None = None, prog: str = "python -m semcom.train") -> int:
    """Parse ``argv``, train, print metrics JSON; returns the exit status (2 on bad input)."""
    args = build_parser(prog).parse_args(argv)
    try:
        model_kw = json.loads(args.model_kw)
        if not isinstance(model_kw, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        sys.stderr.write(_error_line(f"--model-kw: {exc}"))
        return 2
    known = trainable_models()
    if args.model not in known:
        sys.stderr.write(
            _error_line(f"unknown model {args.model!r}; --model takes {', '.join(known)}")
        )
        return 2
    try:
        return _report(_train(args, model_kw))
    except SemcomError as exc:
        sys.stderr.write(_error_line(exc))
        return 2


def _train(args: argparse.Namespace, model_kw: dict) -> Any:
    """Run the training ``args`` ask for: a patch-transmission recipe, or a registered
    task model (on the synthetic world or a real dataset)."""
    from semcom.train.loop import train_patch_model, train_task_model
    from semcom.train.recipes import PATCH_MODELS
    from semcom.train.sources import load_data_split

    common = dict(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        resume=not args.no_resume,
        model_kw=model_kw,
        image_size=args.image_size,
        schedule=args.schedule,
        warmup=args.warmup,
        label_smoothing=args.label_smoothing,
        aux_weight=args.aux_weight,
        ckpt_every=args.ckpt_every,
        eval_n=args.eval_n,
        eval_split=args.eval_split,
        quiet=args.quiet,
        log_every=args.log_every,
        threads=args.threads,
    )
    if args.model in PATCH_MODELS:
        extra: dict[str, Any] = {}
        if args.model == "shape-classifier-ft":
            extra = dict(trainable=args.ft_trainable)
        if args.model == "server-synth":
            extra = dict(
                teacher=args.teacher,
                temperature=args.temperature,
                distill_weight=args.distill_weight,
                stem=args.stem,
                edge_attn_frac=args.edge_attn_frac,
                init=args.init,
            )
        if args.model == "vqvae-synth":
            extra = dict(crop=args.crop)
        if args.model in ("text-diffusion-synth", "captioner-synth"):
            extra = dict(init=args.init)
        if args.model == "text-diffusion-synth":
            extra["ema"] = args.ema
        if args.model in ("gos-vae-synth", "balle-synth"):
            extra = dict(
                crop=args.crop,
                segmenter=args.segmenter,
                task_loss=args.task_loss,
                task_weight=args.task_weight,
                perceptual=args.perceptual,
                lpips_weight=args.lpips_weight,
                mse_weight=args.mse_weight,
                init=args.init,
            )
        if args.model == "balle-synth":
            extra["lmbda"] = args.lmbda
        if args.model == "vit-distill":
            extra = dict(
                teacher=args.teacher,
                views=args.views,
                temperature=args.temperature,
                distill_weight=args.distill_weight,
                stem=args.stem,
                cache_dir=args.out,
            )
        return train_patch_model(
            args.model,
            args.out,
            arch=args.arch,
            dataset=args.dataset,
            data_root=args.data_root,
            attn_weight=args.attn_weight,
            perceptual_weight=args.perceptual_weight,
            min_rate=args.min_rate,
            attn_frac=args.attn_frac,
            clean_frac=args.clean_frac,
            vit=args.vit,
            decoder=args.decoder,
            classifier=args.classifier,
            **extra,
            **common,
        )
    data = eval_data = None
    if args.dataset != "synthetic":
        data = load_data_split(args.dataset, args.data_root, "train", args.image_size)
        eval_data = load_data_split(args.dataset, args.data_root, "val", args.image_size)
        model_kw.setdefault("num_classes", int(data.num_classes))
    return train_task_model(args.model, args.out, data=data, eval_data=eval_data, **common)


def _report(res: Any) -> int:
    """Print a finished run's checkpoint and metrics as one JSON line; exit status 0."""
    if res.checkpoint is not None:
        print(json.dumps({"checkpoint": str(res.checkpoint), "step": res.step, **res.metrics}))
    return 0
