"""Model checkpoints: safetensors with metadata; robust loading of untrusted files.

File format: a safetensors file whose tensors are ``model.state_dict()`` (stable key
names, documented in each model file) and whose ``__metadata__`` (all strings) holds::

    format          "semcom-checkpoint"
    format_version  "1"
    model           registry name, e.g. "shape-classifier"
    config          JSON object of constructor kwargs (``model.config``)
    semcom_version  version that wrote the file
    step            training step (decimal string)
    extra.*         optional free-form strings (e.g. metrics JSON)

A checkpoint is untrusted input. ``load_checkpoint`` never lets a malformed file crash
the caller, nor makes it allocate more than the limits below: a missing file is an
``InputError``; anything wrong with the bytes is a one-line ``BitstreamError`` naming the
file and what does not match. In order, before any tensor is materialised:

1. the safetensors header (length, JSON, every tensor's dtype / shape / offsets, the
   data section exactly covered, at most :data:`MAX_MODEL_BYTES` of tensor data) is
   read and checked on its own -- the tensor data is not read yet;
2. the metadata is parsed; the config must be a JSON object of plain values, integers
   within :data:`MAX_CONFIG_INT`, at most :data:`MAX_CONFIG_ITEMS` values;
3. the model the metadata names is built on the ``meta`` device (no memory; tensors of
   at most ``_SMALL_NUMEL`` elements are made for real so that fixed buffers computed
   at init work), under a guard that stops the constructor as soon as it registers
   more parameters / buffers / submodules than the file's tensor count can account
   for, or holds real tensors beyond the budget of step 5; any exception of the
   constructor (``TypeError``, ``ZeroDivisionError``, ``OverflowError``,
   ``MemoryError``, ...) is reported, in one line, as the file's problem;
4. its state-dict keys, shapes and dtype kinds are compared with the file's tensor
   headers (e.g. ``ckpt.safetensors: config embed_dim=65536 implies tensor 'cls_token'
   of shape (1, 1, 65536), the file has (1, 1, 96)``);
5. the bytes of parameters + buffers the config implies must not exceed
   ``min(MAX_MODEL_BYTES, MODEL_BYTES_PER_FILE_BYTE * file size + MODEL_BYTES_SLACK)``;

only then are the tensors read, the model built for real on the CPU (the same
constructor call, same RNG use, as without these checks) and the weights copied in
(after a finiteness check). Torch ``.pt``/``.pth`` files are accepted only in
torch's zip format, only through ``torch.load(weights_only=True)``, and only when the
zip directory declares at most :data:`MAX_MODEL_BYTES` of records; steps 2-5 then run
on the loaded tensors before the model is built.

Steps 1 and 4 and the tensor reading are :mod:`semcom.models.tensor_files` (which
knows files, not models); step 3 is :mod:`semcom.models.build_guard`. This module is
the checkpoint format itself: its metadata, the config checks and the order of the steps.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

import semcom
from semcom.errors import BitstreamError, InputError, SemcomError
from semcom.models.build_guard import BuildGuard, model_bytes
from semcom.models.tensor_files import (
    MAX_MODEL_BYTES,
    atomic_write,
    compare_specs,
    error_text,
    json_text,
    load_pt,
    load_state_dict_file,
    load_torch_file,
    probe,
    read_bytes,
    read_header_file,
    read_safetensors,
    serialize_safetensors,
    specs_of,
    state_dict_into,
)

# The tensor-file functions (semcom.models.tensor_files) are named here too: callers
# have always found them here.
__all__ = [
    "MAX_CONFIG_INT",
    "MAX_MODEL_BYTES",
    "CheckpointMeta",
    "load_checkpoint",
    "load_state_dict_file",
    "load_torch_file",
    "model_budget",
    "read_safetensors",
    "save_checkpoint",
    "serialize_safetensors",
    "state_dict_into",
]

FORMAT = "semcom-checkpoint"
FORMAT_VERSION = "1"
#: A config may imply at most ``MAX_MODEL_BYTES`` (the most tensor data a file may hold)
#: of parameters + buffers, and at most this many bytes of model per byte of the file ...
MODEL_BYTES_PER_FILE_BYTE = 4
#: ... plus this allowance (non-persistent buffers; float16 files of float32 models).
MODEL_BYTES_SLACK = 64 * 2**20
#: Largest integer (in absolute value) allowed anywhere in a checkpoint's config. The
#: sizes, depths and counts of every registered model are far below it; it bounds the
#: Python-level work a constructor can be made to do before it registers any tensor.
MAX_CONFIG_INT = 2**20
#: Most values (numbers, strings, list items, ...) in a config, and its deepest nesting.
MAX_CONFIG_ITEMS = 4096
MAX_CONFIG_DEPTH = 16


@dataclass
class CheckpointMeta:
    """What a checkpoint says about itself."""

    name: str
    config: dict[str, Any]
    step: int = 0
    semcom_version: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    step: int = 0,
    extra: dict[str, str] | None = None,
    half: bool = False,
) -> Path:
    """Write ``model``'s weights + metadata to ``path`` (safetensors, atomically).

    ``name``/``config`` default to ``model.semcom_name``/``model.config`` (set by
    ``create_model``). A DDP-wrapped model is unwrapped. ``half``: floating-point tensors
    are stored as float16 (half the file; :func:`load_checkpoint` copies them into the
    model's float32 parameters, so the loaded model computes with the rounded weights).
    Returns the path.
    """
    model = getattr(model, "module", model)
    name = name or getattr(model, "semcom_name", None)
    if not name:
        raise InputError("save_checkpoint needs a model name (build it with create_model)")
    config = dict(getattr(model, "config", {}) if config is None else config)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": str(name),
        "config": json.dumps(config, sort_keys=True),
        "semcom_version": semcom.__version__,
        "step": str(int(step)),
    }
    for k, v in (extra or {}).items():
        meta[f"extra.{k}"] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    path = Path(path)
    atomic_write(path, serialize_safetensors(tensors, meta))
    return path


# ------------------------------------------------------------------- metadata / config


def _parse_meta(meta: dict[str, Any], expected_name: str | None, where: str) -> CheckpointMeta:
    name = meta.get("model") or meta.get("name") or expected_name
    if not name or not isinstance(name, str):
        raise BitstreamError(f"{where}: no model name in the metadata (not a semcom checkpoint)")
    cfg = meta.get("config", {})
    if isinstance(cfg, str):
        try:
            cfg = json.loads(cfg)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, int digit limit
            raise BitstreamError(
                f"{where}: config metadata is not valid JSON: {error_text(exc, 160)}"
            ) from None
    if not isinstance(cfg, dict):
        raise BitstreamError(f"{where}: config metadata is not a JSON object")
    try:
        step = int(meta.get("step", 0))
    except (TypeError, ValueError, OverflowError, RuntimeError):
        raise BitstreamError(
            f"{where}: step metadata {json_text(meta.get('step'), 40)} is not an integer"
        ) from None
    extra = {
        k[6:]: str(v) for k, v in meta.items() if isinstance(k, str) and k.startswith("extra.")
    }
    return CheckpointMeta(
        name=name,
        config=cfg,
        step=step,
        semcom_version=str(meta.get("semcom_version", "")),
        extra=extra,
    )


def _check_config(config: dict[str, Any], where: str) -> None:
    """The config must be plain JSON values: str-keyed objects, lists, strings, bools,
    None, finite floats and integers within ``MAX_CONFIG_INT``; at most
    ``MAX_CONFIG_ITEMS`` values nested at most ``MAX_CONFIG_DEPTH`` deep; no
    ``pretrained`` key (``create_model`` would load the zoo instead)."""
    if "pretrained" in config:
        raise BitstreamError(f"{where}: config key 'pretrained' is not a model setting")
    stack: list[tuple[Any, int, str]] = [(v, 1, str(k)) for k, v in config.items()]
    count = 0
    while stack:
        value, depth, label = stack.pop()
        count += 1
        if count > MAX_CONFIG_ITEMS:
            raise BitstreamError(f"{where}: config holds more than {MAX_CONFIG_ITEMS} values")
        if depth > MAX_CONFIG_DEPTH:
            raise BitstreamError(f"{where}: config nests deeper than {MAX_CONFIG_DEPTH} at {label}")
        if value is None or isinstance(value, (bool, str)):
            continue
        if isinstance(value, int):
            if abs(value) > MAX_CONFIG_INT:
                raise BitstreamError(
                    f"{where}: config {label}={json_text(value, 40)} is out of range "
                    f"(integers in a checkpoint config are limited to +-{MAX_CONFIG_INT})"
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise BitstreamError(f"{where}: config {label}={value} is not finite")
        elif isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise BitstreamError(f"{where}: config {label} has a non-string key")
                stack.append((v, depth + 1, f"{label}.{k}"))
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1, f"{label}[{i}]") for i, v in enumerate(value))
        else:
            raise BitstreamError(
                f"{where}: config {label} holds a {type(value).__name__}, not a JSON value"
            )


# ---------------------------------------------------------------- building, bounded


def _describe(name: str, config: dict[str, Any]) -> str:
    return (
        f"config {json_text(config)}" if config else f"the default config of {json_text(name, 80)}"
    )


def _build(
    name: str, config: dict[str, Any], where: str, guard: BuildGuard | None = None
) -> nn.Module:
    """``create_model(name, **config)``; whatever it raises becomes one ``BitstreamError``.

    With ``guard`` the model is built "on meta" under it (see :class:`BuildGuard`);
    without, for real on the CPU.
    """
    from semcom.models.registry import create_model

    subject = _describe(name, config)
    error: BaseException | None = None
    model = None
    try:
        if guard is not None:
            with guard:
                model = create_model(name, **config)
        else:
            model = create_model(name, **config)
    except Exception as exc:  # TypeError, ZeroDivisionError, MemoryError, RuntimeError, ...
        error = exc
    if guard is not None and guard.problem:
        raise BitstreamError(f"{where}: {subject} {guard.problem}")
    if isinstance(error, SemcomError):
        raise BitstreamError(
            f"{where}: cannot build model {json_text(name, 80)} from its metadata: "
            f"{error_text(error)}"
        )
    if error is not None:
        raise BitstreamError(
            f"{where}: {subject} cannot be built: {type(error).__name__}: {error_text(error, 200)}"
        )
    if not isinstance(model, nn.Module):
        raise BitstreamError(f"{where}: model {json_text(name, 80)} did not build an nn.Module")
    return model


def model_budget(file_bytes: int) -> int:
    """Most bytes of parameters + buffers a ``file_bytes``-byte checkpoint may imply."""
    return min(MAX_MODEL_BYTES, MODEL_BYTES_PER_FILE_BYTE * file_bytes + MODEL_BYTES_SLACK)


def load_checkpoint(
    path: str | os.PathLike[str], expected_name: str | None = None
) -> tuple[nn.Module, CheckpointMeta]:
    """Build the model a checkpoint describes and load its weights; returns ``(model, meta)``.

    ``expected_name`` (if given) must match the stored model name; files without a
    name (plain state dicts) are built as ``expected_name`` with its stored or default
    config. The model is returned in ``eval()`` mode on the CPU.

    Checked before anything is allocated (see the module docstring): the file's header
    and size; the config's values; the model the config describes, built on the
    ``meta`` device under a guard, against the file's tensor keys / shapes / dtype
    kinds; and its bytes against :func:`model_budget`. Any problem is a one-line
    ``BitstreamError`` (a missing file an ``InputError``).
    """
    path = Path(path)
    where = str(path)
    kind, size = probe(path)
    sd: dict[str, Tensor] | None = None
    if kind == "pt":
        sd, raw = load_pt(read_bytes(path, size), where)
        specs = specs_of(sd)
    else:
        specs, raw = read_header_file(path, size, where)
    if raw.get("format", FORMAT) != FORMAT:
        raise BitstreamError(
            f"{where}: metadata format {json_text(raw.get('format'), 60)} is not {FORMAT!r}"
        )
    meta = _parse_meta(raw, expected_name, where)
    if expected_name is not None and meta.name != expected_name:
        raise BitstreamError(
            f"{where}: checkpoint holds model {json_text(meta.name, 80)}, "
            f"expected {expected_name!r}"
        )
    _check_config(meta.config, where)
    budget = model_budget(size)
    shell = _build(meta.name, meta.config, where, BuildGuard(len(specs), budget))
    subject = _describe(meta.name, meta.config)
    compare_specs(specs_of(shell.state_dict()), specs, where, meta.config, subject)
    need = model_bytes(shell)
    del shell
    if need > budget:
        why = (
            "semcom.models.checkpoint.MAX_MODEL_BYTES"
            if budget == MAX_MODEL_BYTES
            else f"{MODEL_BYTES_PER_FILE_BYTE} x the file's {size} bytes + {MODEL_BYTES_SLACK}"
        )
        raise BitstreamError(
            f"{where}: {subject} implies {need} bytes of parameters and buffers, more than "
            f"the limit of {budget} ({why})"
        )
    if sd is None:
        sd, _ = read_safetensors(read_bytes(path, size), where)
    model = _build(meta.name, meta.config, where)
    state_dict_into(model, sd, where)
    model.eval()
    return model, meta
