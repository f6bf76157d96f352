"""The training loop every recipe runs: seeded, resumable, DDP-capable.

``fit(recipe, out_dir, ...)`` trains what a :class:`~semcom.train.recipes.base.Recipe`
describes with AdamW (no weight decay on biases and norms) and a warmup + cosine (or
one-cycle, or constant) schedule; step ``s`` seeds torch with a pure function of
``(seed, s)`` and reads the same global batch whether the run was interrupted or not.
Two entry points name what to train:

* ``train_task_model(name, out_dir, ...)``: registered model ``name`` (``model.task`` is
  ``"classify"`` or ``"segment"``), on the synthetic world or a dataset;
* ``train_patch_model(name, out_dir, ...)``: a patch-transmission recipe (``vit-synth``,
  ``patch-decoder-synth``, ``shape-classifier-ft``).

The files a run keeps in ``out_dir`` (rank 0): see :mod:`semcom.train.state`.

Under ``torchrun`` (``WORLD_SIZE > 1``) a gloo process group is created, the model is
wrapped in ``DistributedDataParallel`` and rank ``r`` trains on items ``r::W`` of every
global batch (``batch_size`` is the *global* batch).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from semcom.errors import InputError
from semcom.train.progress import Progress
from semcom.train.recipes import Batch, Recipe, patch_recipe, task_recipe
from semcom.train.state import resume_state, save_state, write_final

__all__ = [
    "SCHEDULES",
    "TrainResult",
    "fit",
    "train_classifier",
    "train_patch_model",
    "train_segmenter",
    "train_task_model",
]

SCHEDULES = ("cosine", "onecycle", "constant")


@dataclass
class TrainResult:
    """What a training run produced (``model`` is unwrapped, on CPU, in eval mode)."""

    model: nn.Module
    metrics: dict[str, Any]
    step: int
    checkpoint: Path | None
    wall_s: float
    resumed_from: int = 0
    losses: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------- entry points


def train_task_model(name: str, out_dir: str | os.PathLike[str], **kw: Any) -> TrainResult:
    """Train registered model ``name``; write checkpoints to ``out_dir``; return the result.

    The recipe is the one of the model's task (:func:`semcom.train.recipes.task_recipe`).
    ``kw``: the recipe's settings -- ``data`` / ``eval_data`` (map-style datasets instead
    of the synthetic world; then ``model_kw`` must give ``num_classes``), ``model_kw``,
    ``image_size``, ``label_smoothing``, ``aux_weight``, ``augment``: see
    :class:`~semcom.train.recipes.task.TaskRecipe` -- and the loop's (``steps``,
    ``batch_size``, ``lr``, ``seed``, ``resume``, ``stop_after``, ...: see :func:`fit`).
    """
    recipe_kw, loop_kw = _split(kw)
    return fit(task_recipe(name)(name, **recipe_kw), out_dir, **loop_kw)


def train_patch_model(name: str, out_dir: str | os.PathLike[str], **kw: Any) -> TrainResult:
    """Train patch-transmission recipe ``name`` (``"vit-synth"``, ``"patch-decoder-synth"``
    or ``"shape-classifier-ft"``); write checkpoints to ``out_dir``; return the result.

    ``kw``: the recipe's settings (``arch``, ``model_kw``, ``dataset`` / ``data_root``,
    ``data`` / ``eval_data``, ``image_size``, the loss weights, ``min_rate``,
    ``attn_frac``, ``clean_frac``, ``flip``, ``vit`` / ``decoder`` / ``classifier``, ...:
    see :class:`~semcom.train.recipes.patch.PatchRecipe`) and the loop's (see
    :func:`fit`; here ``steps`` defaults to 1000 and ``lr`` to 1e-3). The final
    evaluation is the recipe's ``score`` on ``eval_n`` images of the synthetic
    ``eval_split`` (or on the validation dataset).
    """
    recipe_cls = patch_recipe(name)
    recipe_kw, loop_kw = _split(kw)
    return fit(recipe_cls(**recipe_kw), out_dir, **{"steps": 1000, "lr": 1e-3, **loop_kw})


def train_classifier(out_dir: str | os.PathLike[str], **kw: Any) -> TrainResult:
    """``train_task_model("shape-classifier", out_dir, **kw)``."""
    return train_task_model("shape-classifier", out_dir, **kw)


def train_segmenter(out_dir: str | os.PathLike[str], **kw: Any) -> TrainResult:
    """``train_task_model("shape-segmenter", out_dir, **kw)``."""
    return train_task_model("shape-segmenter", out_dir, **kw)


# --------------------------------------------------------------------------- the loop


def fit(
    recipe: Recipe,
    out_dir: str | os.PathLike[str],
    *,
    steps: int = 2000,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    resume: bool = True,
    schedule: str = "cosine",
    warmup: float = 0.05,
    grad_clip: float | None = 1.0,
    ckpt_every: int = 250,
    eval_n: int = 512,
    eval_split: str = "val",
    quiet: bool = False,
    log_every: int = 50,
    threads: int | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``recipe``'s model; write checkpoints to ``out_dir``; return the result.

    Args:
        steps: total optimizer steps (a resumed run continues up to this count).
        batch_size: *global* batch (split evenly across DDP ranks).
        lr / weight_decay: AdamW's peak learning rate and weight decay.
        seed: fixes model init and every batch (step ``s`` always sees the same data).
        resume: continue from ``out_dir/last.*`` when present (same settings only).
        schedule: ``"cosine"`` (linear warmup then cosine), ``"onecycle"`` (warmup then
            linear decay) or ``"constant"``; ``warmup`` is a fraction of ``steps``.
        grad_clip: gradient-norm clip (``None``: none).
        ckpt_every: steps between resume checkpoints (0: only at the end).
        eval_n / eval_split: final evaluation (rank 0) on ``eval_n`` images of the
            synthetic ``eval_split``, or on the recipe's ``eval_data``; ``eval_n=0``
            skips it (unless there is ``eval_data``: then all of it).
        quiet: no progress output. ``log_every``: steps between progress lines.
        threads: ``torch.set_num_threads`` if given.
        stop_after: end this call after that step (a time-boxed or simulated-preempted
            job): state is saved to ``last.*``, nothing is evaluated; call again with the
            same arguments to continue. The LR schedule always spans ``steps``.
    """
    if steps < 1 or batch_size < 1:
        raise InputError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if lr <= 0:
        raise InputError(f"lr must be > 0, got {lr}")
    if schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    from semcom.train.sources import parse_image_size

    size = parse_image_size(recipe.image_size)
    recipe.check()
    if threads:
        torch.set_num_threads(int(threads))
    recipe.prepare()
    if not isinstance(size, int) and recipe.data is None:
        raise InputError(f"image size {size} (H x W) needs a real dataset; the world is square")
    rank, world = _dist_env()
    if batch_size % world:
        raise InputError(f"batch_size {batch_size} is not divisible by WORLD_SIZE {world}")
    created_pg = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
        created_pg = True
    run = {
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "seed": seed,
        "schedule": schedule,
        "warmup": warmup,
        "grad_clip": grad_clip,
    }
    try:
        return _run(
            recipe,
            Path(out_dir),
            run,
            steps=steps,
            resume=resume,
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


def _split(kw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(the recipe's settings, the loop's)``: the loop's are :func:`fit`'s keywords."""
    loop = set(fit.__kwdefaults__ or ())
    return {k: kw[k] for k in kw if k not in loop}, {k: kw[k] for k in kw if k in loop}


def _run(
    recipe: Recipe,
    out: Path,
    run: dict[str, Any],
    *,
    steps: int,
    resume: bool,
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
    torch.manual_seed(int(run["seed"]))
    model = recipe.build()
    model.train()
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": run["weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=run["lr"],
    )
    n_warm = int(round(run["warmup"] * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(run["schedule"], steps, n_warm))
    run_args = recipe.run_args(model, run)
    start = 0
    last_w, last_s = out / "last.safetensors", out / "last_state.pt"
    if resume and last_w.is_file() and last_s.is_file():
        start = resume_state(model, opt, sched, last_w, last_s, run_args)
    source = recipe.source(run["seed"])
    net: nn.Module = model
    if world > 1:
        unused = recipe.unused_parameters(model)
        net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=unused)

    progress = Progress(steps, start, is_main and not quiet, log_every, recipe.name)
    end = steps if stop_after is None else max(start, min(steps, int(stop_after)))
    losses: list[float] = []
    rows = torch.arange(run["batch_size"])[rank::world]  # this rank's shard of a batch
    try:
        for step in range(start, end):
            seed = _step_seed(run["seed"], step)
            torch.manual_seed(seed + rank)
            x, y, masks = source.batch(step, run["batch_size"], rank, world)
            batch = Batch(step, x, y, masks, rows=rows, total=run["batch_size"], seed=seed)
            loss = recipe.loss(net, model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if run["grad_clip"]:
                nn.utils.clip_grad_norm_(model.parameters(), run["grad_clip"])
            opt.step()
            sched.step()
            recipe.after_step(model, step + 1)
            losses.append(float(loss.detach()))
            progress.update(step + 1, losses[-1], sched.get_last_lr()[0])
            done = step + 1
            if is_main and ckpt_every and done % ckpt_every == 0 and done < steps:
                save_state(model, opt, sched, done, run_args, last_w, last_s)
    finally:
        progress.close()

    if world > 1:  # BN running stats were updated locally in the last forward: take rank 0's
        with torch.no_grad():
            for buf in model.buffers():
                dist.broadcast(buf, 0)
    if end == steps:  # what the recipe derives from the trained model (e.g. a prior)
        model.eval()
        recipe.finish(model, run)
        model.train()
    if is_main:  # stopped early (end < steps) or done: keep the state either way
        save_state(model, opt, sched, end, run_args, last_w, last_s)

    metrics: dict[str, Any] = {}
    final = None
    if end == steps and is_main:
        model.eval()
        if eval_n or recipe.eval_data is not None:
            n = eval_n if recipe.eval_data is None else (eval_n or None)
            metrics = recipe.evaluate(model, split=eval_split, n=n)
        final = write_final(
            model, out, recipe.name, steps, metrics, start, t_start, world, run_args
        )
    if world > 1:  # every rank waits for rank 0's evaluation and files
        dist.barrier()
    model.eval()
    return TrainResult(
        model=model,
        metrics=metrics,
        step=end,
        checkpoint=final,
        wall_s=time.time() - t_start,
        resumed_from=start,
        losses=losses,
    )


def _dist_env() -> tuple[int, int]:
    """``(rank, world_size)`` from the torchrun environment (``(0, 1)`` when absent)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        raise InputError("RANK / WORLD_SIZE environment variables must be integers") from None
    return rank, world


def _lr_lambda(schedule: str, steps: int, warmup: int):
    def f(step: int) -> float:
        if schedule == "constant":
            return 1.0 if step >= warmup else (step + 1) / max(1, warmup)
        if step < warmup:
            return (step + 1) / max(1, warmup)
        t = min(1.0, (step - warmup) / max(1, steps - warmup))
        if schedule == "onecycle":  # linear anneal after the ramp
            return max(0.0, 1.0 - t) * 0.99 + 0.01
        return 0.5 * (1.0 + math.cos(math.pi * t)) * 0.99 + 0.01

    return f


def _step_seed(seed: int, step: int) -> int:
    return (int(seed) * 1_000_003 + int(step) * 7_919 + 12_345) % (2**63 - 1)
