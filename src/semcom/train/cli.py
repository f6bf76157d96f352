"""``python -m semcom.train`` / ``semcom.train.main(argv)``: train a task model.

Example (the zoo's classifier)::

    python -m semcom.train --model shape-classifier --steps 1500 --batch-size 64 \
        --lr 3e-3 --seed 0 --out runs/shape-classifier

Under ``torchrun --nproc_per_node N`` the same command trains with DDP (gloo).
Prints the final metrics as one JSON line on stdout (rank 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from semcom.errors import SemcomError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m semcom.train``."""
    p = argparse.ArgumentParser(prog="python -m semcom.train", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="registered model name, e.g. shape-classifier")
    p.add_argument("--out", required=True, help="output directory (checkpoints, metrics.json)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64, help="global batch size")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--schedule", default="cosine", choices=["cosine", "onecycle", "constant"])
    p.add_argument("--warmup", type=float, default=0.05, help="warmup fraction of steps")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--model-kw", default="{}", help="JSON object of model config overrides")
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--eval-n", type=int, default=512)
    p.add_argument("--eval-split", default="val")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, train, print metrics JSON; returns the exit status (2 on bad input)."""
    from semcom.train.loop import train_task_model

    args = build_parser().parse_args(argv)
    try:
        model_kw = json.loads(args.model_kw)
        if not isinstance(model_kw, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        print(f"error: --model-kw: {exc}", file=sys.stderr)
        return 2
    try:
        res = train_task_model(
            args.model,
            args.out,
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
            ckpt_every=args.ckpt_every,
            eval_n=args.eval_n,
            eval_split=args.eval_split,
            quiet=args.quiet,
            log_every=args.log_every,
            threads=args.threads,
        )
    except SemcomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if res.checkpoint is not None:
        print(json.dumps({"checkpoint": str(res.checkpoint), "step": res.step, **res.metrics}))
    return 0
