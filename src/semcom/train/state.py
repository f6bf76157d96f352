"""The files a training run keeps in its ``out_dir`` (written by rank 0 only).

* ``last.safetensors`` -- model weights (semcom checkpoint) every ``ckpt_every`` steps
  and when the run stops,
* ``last_state.pt`` -- ``{"step", "optimizer", "scheduler", "args"}`` (torch.save; read
  back as untrusted input, ``weights_only``),
* ``<name>.safetensors`` -- the final weights with the evaluation metrics in metadata,
* ``metrics.json`` -- final metrics and run facts.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import semcom
from semcom.errors import BitstreamError, InputError
from semcom.models.checkpoint import save_checkpoint
from semcom.models.tensor_files import (
    atomic_write,
    load_state_dict_file,
    load_torch_file,
    state_dict_into,
)

__all__ = ["resume_state", "save_state", "write_final"]


def save_state(model, opt, sched, step: int, args: dict, w_path: Path, s_path: Path) -> None:
    """Write the resume files: the training state to ``s_path``, the weights to ``w_path``."""
    buf = io.BytesIO()
    state = {
        "step": step,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "args": json.dumps(args, sort_keys=True),
    }
    torch.save(state, buf)
    atomic_write(s_path, buf.getvalue())
    save_checkpoint(model, w_path, step=step)


def resume_state(model, opt, sched, w_path: Path, s_path: Path, args: dict) -> int:
    """Load ``last.*`` into model/optimizer/scheduler; returns the step to continue from.

    Both files are read as untrusted input: the training state with
    :func:`~semcom.models.tensor_files.load_torch_file` (bounded size, torch's zip format
    only, ``weights_only``), the weights with ``load_state_dict_file(like=model)``, which
    checks keys, shapes and dtypes against ``model`` from the safetensors header before
    a tensor is read. The saved settings are compared first, so a run with another model
    or ``model_kw`` is told so (``InputError``) rather than shown a shape mismatch.
    """
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


def write_final(
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
    atomic_write(out / "metrics.json", (json.dumps(facts, indent=2) + "\n").encode())
    return final
