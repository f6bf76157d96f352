"""The training loop for the task models: seeded, resumable, DDP-capable.

``train_task_model(name, out_dir, ...)`` trains a registered model (``model.task`` is
``"classify"`` or ``"segment"``) with AdamW and a warmup + cosine (or one-cycle)
schedule on batches generated on the fly (see ``semcom.train.sources``).

Files written to ``out_dir`` (rank 0 only):

* ``last.safetensors`` -- model weights (semcom checkpoint) every ``ckpt_every`` steps,
* ``last_state.pt`` -- ``{"step", "optimizer", "scheduler", "args"}`` (torch.save; read
  back with ``weights_only=True``),
* ``<name>.safetensors`` -- the final weights with the evaluation metrics in metadata,
* ``metrics.json`` -- final metrics and run facts.

Under ``torchrun`` (``WORLD_SIZE > 1``) a gloo process group is created, the model is
wrapped in ``DistributedDataParallel`` and rank ``r`` trains on items ``r::W`` of every
global batch (``batch_size`` is the *global* batch).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

import semcom
from semcom.errors import InputError
from semcom.models.checkpoint import (
    _atomic_write,
    load_state_dict_file,
    load_torch_file,
    save_checkpoint,
    state_dict_into,
)
from semcom.models.registry import create_model
from semcom.train.evaluate import IGNORE_INDEX, evaluate
from semcom.train.sources import DatasetSource, SyntheticSource

__all__ = ["TrainResult", "train_classifier", "train_segmenter", "train_task_model"]

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


def _mask_at(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Masks int64 ``(N, H, W)`` sampled at the centres of a ``size`` grid of cells."""
    h, w = masks.shape[-2:]
    rows = ((torch.arange(size[0]) + 0.5) * h / size[0]).long().clamp_(max=h - 1)
    cols = ((torch.arange(size[1]) + 0.5) * w / size[1]).long().clamp_(max=w - 1)
    return masks[:, rows][:, :, cols]


def _loss(
    net: nn.Module,
    task: str,
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor | None,
    label_smoothing: float,
    aux_weight: float,
) -> torch.Tensor:
    if task == "segment":
        return F.cross_entropy(net(x), y, ignore_index=IGNORE_INDEX)
    if aux_weight and masks is not None:
        logits, aux = net(x, return_aux=True)
        aux_loss = F.cross_entropy(aux, _mask_at(masks, aux.shape[-2:]), ignore_index=IGNORE_INDEX)
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing) + aux_weight * aux_loss
    return F.cross_entropy(net(x), y, label_smoothing=label_smoothing)


class _Progress:
    """Rich progress bar on a TTY; plain log lines every ``log_every`` steps otherwise."""

    def __init__(self, total: int, start: int, enabled: bool, log_every: int, label: str) -> None:
        self.enabled = enabled
        self.log_every = log_every
        self.bar = None
        self.t0 = time.time()
        self.start = start
        self.total = total
        if enabled and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn(f"[bold]{label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(label, total=total, completed=start, info="")

    def update(self, step: int, loss: float, lr: float) -> None:
        if not self.enabled:
            return
        info = f"loss {loss:.4f} lr {lr:.2e}"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif step == self.total or (self.log_every and step % self.log_every == 0):
            rate = (step - self.start) / max(time.time() - self.t0, 1e-9)
            print(f"step {step}/{self.total} {info} ({rate:.2f} step/s)", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def augment_batch(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    rows: torch.Tensor | None = None,
    total: int | None = None,
) -> torch.Tensor:
    """Random horizontal flip and shift (reflect padding, up to 1/16 of the side) per image.

    Args:
        x: float ``(N, C, H, W)``.
        generator: the random source (default: the global torch RNG).
        rows / total: ``x`` holds rows ``rows`` (int64 ``(N,)``) of a global batch of
            ``total`` images: the draws are made for the whole global batch and these rows
            taken, so DDP ranks augment their shards exactly as one process would the
            whole batch. Default: ``x`` is the whole batch.

    Returns:
        float ``(N, C, H, W)``.
    """
    n, _, h, w = x.shape
    total = n if total is None else int(total)
    rows = torch.arange(n) if rows is None else rows
    pad = max(1, min(h, w) // 16)
    flip = (torch.rand(total, generator=generator) < 0.5)[rows]
    dy = torch.randint(0, 2 * pad + 1, (total,), generator=generator)[rows].tolist()
    dx = torch.randint(0, 2 * pad + 1, (total,), generator=generator)[rows].tolist()
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    crops = [
        padded[i, :, a : a + h, b : b + w] for i, (a, b) in enumerate(zip(dy, dx, strict=True))
    ]
    return torch.stack(crops)


def train_task_model(
    name: str,
    out_dir: str | os.PathLike[str],
    *,
    steps: int = 2000,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    resume: bool = True,
    data: Any = None,
    model_kw: dict[str, Any] | None = None,
    image_size: int = 64,
    schedule: str = "cosine",
    warmup: float = 0.05,
    label_smoothing: float = 0.0,
    aux_weight: float = 1.0,
    grad_clip: float | None = 1.0,
    ckpt_every: int = 250,
    eval_n: int = 512,
    eval_split: str = "val",
    eval_data: Any = None,
    quiet: bool = False,
    log_every: int = 50,
    threads: int | None = None,
    stop_after: int | None = None,
    augment: bool = True,
) -> TrainResult:
    """Train registered model ``name``; write checkpoints to ``out_dir``; return the result.

    Args:
        steps: total optimizer steps (a resumed run continues up to this count).
        batch_size: *global* batch (split evenly across DDP ranks).
        seed: fixes model init and every batch (step ``s`` always sees the same data).
        resume: continue from ``out_dir/last.*`` when present.
        data: optional map-style Dataset of ``(image, label|mask)`` items used instead
            of the synthetic world (then ``model_kw`` must give ``num_classes``).
        model_kw: config passed to ``create_model``.
        image_size: synthetic world image size (multiple of 8).
        schedule: ``"cosine"`` (linear warmup then cosine), ``"onecycle"`` (warmup then
            linear decay) or ``"constant"``; ``warmup`` is a fraction of ``steps``.
        aux_weight: weight of the dense mask loss on a classifier's ``aux`` head (used
            when the model has one and the data has masks: the synthetic world).
        eval_n / eval_split / eval_data: final evaluation (rank 0); ``eval_n=0`` skips it.
        quiet: no progress output. ``threads``: ``torch.set_num_threads`` if given.
        stop_after: end this call after that step (a time-boxed or simulated-preempted
            job): state is saved to ``last.*``, nothing is evaluated; call again with the
            same arguments to continue. The LR schedule always spans ``steps``.
        augment: for classifiers on a real dataset (``data``): random horizontal flips
            and random shifts of up to 1/16 of the side (reflect padding). The synthetic
            world is never augmented (it is infinite).
    """
    if steps < 1 or batch_size < 1:
        raise InputError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    if lr <= 0:
        raise InputError(f"lr must be > 0, got {lr}")
    if schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    if image_size < 8 or image_size % 8:
        raise InputError(f"image_size must be a positive multiple of 8, got {image_size}")
    if threads:
        torch.set_num_threads(int(threads))
    rank, world = _dist_env()
    if batch_size % world:
        raise InputError(f"batch_size {batch_size} is not divisible by WORLD_SIZE {world}")
    created_pg = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
        created_pg = True
    try:
        return _train(
            name=name,
            out_dir=out_dir,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            seed=seed,
            resume=resume,
            data=data,
            model_kw=model_kw,
            image_size=image_size,
            schedule=schedule,
            warmup=warmup,
            label_smoothing=label_smoothing,
            aux_weight=aux_weight,
            grad_clip=grad_clip,
            ckpt_every=ckpt_every,
            eval_n=eval_n,
            eval_split=eval_split,
            eval_data=eval_data,
            quiet=quiet,
            log_every=log_every,
            stop_after=stop_after,
            augment=augment,
            rank=rank,
            world=world,
        )
    finally:
        if created_pg:
            dist.destroy_process_group()


def _train(
    *,
    name: str,
    out_dir: Any,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    resume: bool,
    data: Any,
    model_kw: dict[str, Any] | None,
    image_size: int,
    schedule: str,
    warmup: float,
    label_smoothing: float,
    aux_weight: float,
    grad_clip: float | None,
    ckpt_every: int,
    eval_n: int,
    eval_split: str,
    eval_data: Any,
    quiet: bool,
    log_every: int,
    stop_after: int | None,
    augment: bool,
    rank: int,
    world: int,
) -> TrainResult:
    t_start = time.time()
    out = Path(out_dir)
    is_main = rank == 0
    if is_main:
        out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(int(seed))
    model = create_model(name, **(model_kw or {}))
    task = getattr(model, "task", None)
    if task not in ("classify", "segment"):
        raise InputError(f"model {name!r} has no trainable task (model.task = {task!r})")
    model.train()
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
    )
    n_warm = int(round(warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(schedule, steps, n_warm))

    run_args = {
        "model": name,
        "model_kw": model.config,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "seed": seed,
        "image_size": image_size,
        "schedule": schedule,
        "warmup": warmup,
        "label_smoothing": label_smoothing,
        "grad_clip": grad_clip,
        "aux_weight": aux_weight,
        "data": "synthetic" if data is None else type(data).__name__,
        "augment": bool(augment and data is not None and task == "classify"),
    }
    start = 0
    last_w, last_s = out / "last.safetensors", out / "last_state.pt"
    if resume and last_w.is_file() and last_s.is_file():
        start = _resume(model, opt, sched, last_w, last_s, run_args)

    source: Any = (
        SyntheticSource(task, seed=seed, image_size=image_size)
        if data is None
        else DatasetSource(data, seed=seed)
    )
    use_aux = task == "classify" and bool(aux_weight) and bool(getattr(model, "has_aux", False))
    if use_aux and data is not None:
        use_aux = False  # datasets carry no masks
    if not use_aux:
        aux_weight = 0.0
    net: nn.Module = model
    if world > 1:
        unused = bool(getattr(model, "has_aux", False)) and not use_aux
        net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=unused)

    def step_loss(step: int, x: torch.Tensor, y: torch.Tensor, masks: Any) -> torch.Tensor:
        if run_args["augment"]:
            gen = torch.Generator().manual_seed(_step_seed(seed, step) + 7919)
            x = augment_batch(x, gen, torch.arange(batch_size)[rank::world], batch_size)
        return _loss(net, task, x, y, masks, label_smoothing, aux_weight)

    progress = _Progress(steps, start, is_main and not quiet, log_every, name)
    losses, end = run_steps(
        model,
        opt,
        sched,
        source,
        step_loss,
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
            metrics = evaluate(
                model,
                split=eval_split,
                n=eval_n if eval_data is None else (eval_n or None),
                image_size=image_size,
                data=eval_data,
            )
        final = _write_final(model, out, name, steps, metrics, start, t_start, world, run_args)
    return _finish(model, metrics, end, final, start, t_start, world, losses)


def run_steps(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    source: Any,
    step_loss: Any,
    progress: Any,
    *,
    start: int,
    steps: int,
    stop_after: int | None,
    seed: int,
    batch_size: int,
    grad_clip: float | None,
    ckpt_every: int,
    run_args: dict[str, Any],
    last_w: Path,
    last_s: Path,
    rank: int,
    world: int,
) -> tuple[list[float], int]:
    """The optimisation loop every recipe shares; returns ``(losses, last step run)``.

    Step ``s`` seeds torch with the step seed, takes this rank's shard of
    ``source.batch(s, ...)``, and minimises ``step_loss(s, x, y, masks)``. Resume state
    goes to ``last_w`` / ``last_s`` every ``ckpt_every`` steps and at the end (rank 0);
    under DDP the buffers (BN running stats) are then taken from rank 0.
    """
    is_main = rank == 0
    losses: list[float] = []
    end = steps if stop_after is None else max(start, min(steps, int(stop_after)))
    try:
        for step in range(start, end):
            torch.manual_seed(_step_seed(seed, step) + rank)
            x, y, masks = source.batch(step, batch_size, rank, world)
            loss = step_loss(step, x, y, masks)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            progress.update(step + 1, losses[-1], sched.get_last_lr()[0])
            done = step + 1
            if is_main and ckpt_every and done % ckpt_every == 0 and done < steps:
                _save_state(model, opt, sched, done, run_args, last_w, last_s)
    finally:
        progress.close()

    if world > 1:  # BN running stats were updated locally in the last forward: take rank 0's
        with torch.no_grad():
            for buf in model.buffers():
                dist.broadcast(buf, 0)
    if is_main:  # stopped early (end < steps) or done: keep the state either way
        _save_state(model, opt, sched, end, run_args, last_w, last_s)
    return losses, end


def _save_state(model, opt, sched, step: int, args: dict, w_path: Path, s_path: Path) -> None:
    import io

    buf = io.BytesIO()
    state = {
        "step": step,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "args": json.dumps(args, sort_keys=True),
    }
    torch.save(state, buf)
    _atomic_write(s_path, buf.getvalue())
    save_checkpoint(model, w_path, step=step)


def _resume(model, opt, sched, w_path: Path, s_path: Path, args: dict) -> int:
    """Load ``last.*`` into model/optimizer/scheduler; returns the step to continue from.

    Both files are read as untrusted input: the training state with
    :func:`~semcom.models.checkpoint.load_torch_file` (bounded size, torch's zip format
    only, ``weights_only``), the weights with ``load_state_dict_file(like=model)``, which
    checks keys, shapes and dtypes against ``model`` from the safetensors header before
    a tensor is read. The saved settings are compared first, so a run with another model
    or ``model_kw`` is told so (``InputError``) rather than shown a shape mismatch.
    """
    from semcom.errors import BitstreamError

    state = load_torch_file(s_path)
    try:
        step = int(state["step"])
        saved_args = json.loads(state["args"])
        if not isinstance(saved_args, dict):
            raise TypeError(f"args is {type(saved_args).__name__}, not a dict")
    except Exception as exc:
        raise BitstreamError(f"{s_path}: unreadable training state: {exc}") from None
    if saved_args.get("model") != args["model"]:
        raise InputError(
            f"{s_path} holds a run of model {saved_args.get('model')!r}, not "
            f"{args['model']!r}; use another out_dir or resume=False"
        )
    differ = sorted(k for k in args if k != "data" and saved_args.get(k) != args[k])
    if differ:
        raise InputError(f"cannot resume from {s_path}: settings changed: {differ}")
    sd, meta = load_state_dict_file(w_path, like=model)
    if meta.get("model") != args["model"]:
        raise InputError(
            f"{w_path} holds model {meta.get('model')!r}, not {args['model']!r}; "
            "use another out_dir or resume=False"
        )
    if str(step) != meta.get("step"):
        raise InputError(
            f"{w_path} (step {meta.get('step')}) and {s_path} (step {step}) disagree; "
            "use resume=False"
        )
    state_dict_into(model, sd, str(w_path))
    try:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    except Exception as exc:
        raise BitstreamError(f"{s_path}: optimizer/scheduler state does not fit: {exc}") from None
    return step


def train_classifier(out_dir: str | os.PathLike[str], **kw: Any) -> TrainResult:
    """``train_task_model("shape-classifier", out_dir, **kw)``."""
    return train_task_model("shape-classifier", out_dir, **kw)


def train_segmenter(out_dir: str | os.PathLike[str], **kw: Any) -> TrainResult:
    """``train_task_model("shape-segmenter", out_dir, **kw)``."""
    return train_task_model("shape-segmenter", out_dir, **kw)


def _write_final(
    model: nn.Module,
    out: Path,
    name: str,
    steps: int,
    metrics: dict[str, Any],
    start: int,
    t_start: float,
    world: int,
    run_args: dict[str, Any],
) -> Path:
    """Rank 0 at the end of a run: the final checkpoint and ``metrics.json``."""
    wall = time.time() - t_start
    final = save_checkpoint(
        model, out / f"{name}.safetensors", step=steps, extra={"metrics": metrics}
    )
    facts = {
        "metrics": metrics,
        "step": steps,
        "resumed_from": start,
        "wall_s": round(wall, 2),
        "world_size": world,
        "semcom_version": semcom.__version__,
        "args": run_args,
    }
    _atomic_write(out / "metrics.json", (json.dumps(facts, indent=2) + "\n").encode())
    return final


def _finish(
    model: nn.Module,
    metrics: dict[str, Any],
    end: int,
    final: Path | None,
    start: int,
    t_start: float,
    world: int,
    losses: list[float],
) -> TrainResult:
    """Every rank at the end of a run: wait for rank 0, return the result."""
    if world > 1:
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
