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

``load_checkpoint`` never lets a malformed file crash the caller: a missing file is an
``InputError``; anything wrong with the bytes (truncated, bad header, offsets out of
range, wrong keys or shapes, non-finite values, unknown model) is a ``BitstreamError``.
Torch ``.pt``/``.pth`` files are accepted only through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import semcom
from semcom.errors import BitstreamError, InputError, SemcomError

__all__ = [
    "CheckpointMeta",
    "load_checkpoint",
    "load_state_dict_file",
    "read_safetensors",
    "save_checkpoint",
    "serialize_safetensors",
    "state_dict_into",
]

FORMAT = "semcom-checkpoint"
FORMAT_VERSION = "1"
MAX_HEADER_BYTES = 16 * 1024 * 1024
_DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class CheckpointMeta:
    """What a checkpoint says about itself."""

    name: str
    config: dict[str, Any]
    step: int = 0
    semcom_version: str = ""
    extra: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- saving

_DTYPE_NAMES = {dt: name for name, (dt, _) in _DTYPES.items()}


def serialize_safetensors(tensors: dict[str, Tensor], metadata: dict[str, str]) -> bytes:
    """Byte-reproducible safetensors serialisation of ``tensors`` (CPU) + string metadata.

    The same tensors and metadata always give the same bytes (keys sorted, compact JSON
    header padded with spaces to a multiple of 8, tensor data in key order), so a
    bit-identical retraining reproduces the checkpoint's sha256 -- which the
    ``safetensors`` writer does not promise (its metadata order varies between runs).
    """
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks: list[bytes] = []
    offset = 0
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        if t.dtype not in _DTYPE_NAMES:
            raise InputError(f"tensor {key!r}: dtype {t.dtype} cannot be saved")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[key] = {
            "dtype": _DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(chunks)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    step: int = 0,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write ``model``'s weights + metadata to ``path`` (safetensors, atomically).

    ``name``/``config`` default to ``model.semcom_name``/``model.config`` (set by
    ``create_model``). A DDP-wrapped model is unwrapped. Returns the path.
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
    path = Path(path)
    _atomic_write(path, serialize_safetensors(tensors, meta))
    return path


# --------------------------------------------------------------------------- reading


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise InputError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise InputError(f"checkpoint is not a file: {path}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read checkpoint {path}: {exc}") from None


def read_safetensors(
    data: bytes, where: str = "checkpoint"
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Parse safetensors ``data`` into ``(tensors, metadata)``; ``BitstreamError`` if malformed.

    The declared header length is checked against the file size before anything is
    read, every tensor's dtype/shape/offsets are validated, then the bytes are handed to
    ``safetensors`` (whose own errors are wrapped too).
    """
    from safetensors.torch import load as st_load

    size = len(data)
    if size < 8:
        raise BitstreamError(
            f"{where}: truncated: {size} bytes, shorter than the 8-byte header length"
        )
    (n,) = struct.unpack("<Q", data[:8])
    if n > size - 8:
        raise BitstreamError(
            f"{where}: truncated or corrupt: header length field (offset 0) declares "
            f"{n} bytes but only {size - 8} follow"
        )
    if n > MAX_HEADER_BYTES:
        raise BitstreamError(f"{where}: header of {n} bytes exceeds the {MAX_HEADER_BYTES} limit")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BitstreamError(f"{where}: header (offset 8) is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise BitstreamError(f"{where}: header (offset 8) is not a JSON object")
    meta = header.get("__metadata__", {}) or {}
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise BitstreamError(f"{where}: __metadata__ must map strings to strings")
    body = size - 8 - n
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise BitstreamError(f"{where}: tensor {key!r}: entry is not an object")
        dtype, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _DTYPES:
            raise BitstreamError(f"{where}: tensor {key!r}: unsupported dtype {dtype!r}")
        if not (
            isinstance(shape, list)
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
        ):
            raise BitstreamError(f"{where}: tensor {key!r}: bad shape {shape!r}")
        if not (
            isinstance(offs, list)
            and len(offs) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
            and 0 <= offs[0] <= offs[1] <= body
        ):
            raise BitstreamError(
                f"{where}: tensor {key!r}: data offsets {offs!r} outside the "
                f"{body}-byte data section"
            )
        if math.prod(shape) * _DTYPES[dtype][1] != offs[1] - offs[0]:
            raise BitstreamError(
                f"{where}: tensor {key!r}: shape {shape} {dtype} does not match "
                f"{offs[1] - offs[0]} bytes"
            )
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError / others
        raise BitstreamError(f"{where}: safetensors could not parse the file: {exc}") from None
    return tensors, dict(meta)


def _load_pt(data: bytes, where: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    import io

    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip/unsafe-global errors of any kind
        raise BitstreamError(f"{where}: not a loadable weights-only torch file: {exc}") from None
    if not isinstance(obj, dict):
        raise BitstreamError(f"{where}: torch file holds {type(obj).__name__}, not a dict")
    info: dict[str, Any] = {}
    if "state_dict" in obj:
        sd = obj["state_dict"]
        info = {k: v for k, v in obj.items() if k != "state_dict"}
    else:
        sd = obj
    if not isinstance(sd, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in sd.items()
    ):
        raise BitstreamError(f"{where}: state dict must map strings to tensors")
    return sd, info


def load_state_dict_file(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Raw ``(state_dict, metadata)`` of a safetensors or weights-only ``.pt`` file."""
    path = Path(path)
    data = _read_bytes(path)
    if path.suffix in (".pt", ".pth") or data[:4] == _ZIP_MAGIC:
        return _load_pt(data, str(path))
    return read_safetensors(data, str(path))


def state_dict_into(model: nn.Module, sd: dict[str, Tensor], where: str = "checkpoint") -> None:
    """Copy ``sd`` into ``model`` after checking keys, shapes, dtypes and finiteness.

    Raises ``BitstreamError`` naming the offending keys; the model is untouched then.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        raise BitstreamError(f"{where}: state dict does not fit the model: {'; '.join(parts)}")
    for k, ref in own.items():
        t = sd[k]
        if tuple(t.shape) != tuple(ref.shape):
            raise BitstreamError(
                f"{where}: tensor {k!r} has shape {tuple(t.shape)}, "
                f"model expects {tuple(ref.shape)}"
            )
        if t.is_floating_point() != ref.is_floating_point():
            raise BitstreamError(
                f"{where}: tensor {k!r} has dtype {t.dtype}, model expects {ref.dtype}"
            )
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise BitstreamError(f"{where}: tensor {k!r} holds NaN or infinite values")
    with torch.no_grad():
        for k, ref in own.items():
            ref.copy_(sd[k].to(ref.dtype))


def _parse_meta(meta: dict[str, Any], expected_name: str | None, where: str) -> CheckpointMeta:
    name = meta.get("model") or meta.get("name") or expected_name
    if not name or not isinstance(name, str):
        raise BitstreamError(f"{where}: no model name in the metadata (not a semcom checkpoint)")
    cfg = meta.get("config", {})
    if isinstance(cfg, str):
        try:
            cfg = json.loads(cfg)
        except json.JSONDecodeError as exc:
            raise BitstreamError(f"{where}: config metadata is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise BitstreamError(f"{where}: config metadata is not a JSON object")
    try:
        step = int(meta.get("step", 0))
    except (TypeError, ValueError):
        raise BitstreamError(
            f"{where}: step metadata {meta.get('step')!r} is not an integer"
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


def load_checkpoint(
    path: str | os.PathLike[str], expected_name: str | None = None
) -> tuple[nn.Module, CheckpointMeta]:
    """Build the model a checkpoint describes and load its weights; returns ``(model, meta)``.

    ``expected_name`` (if given) must match the stored model name; files without a
    name (plain state dicts) are built as ``expected_name`` with its stored or default
    config. The model is returned in ``eval()`` mode on the CPU.
    """
    from semcom.models.registry import create_model

    path = Path(path)
    where = str(path)
    sd, raw = load_state_dict_file(path)
    if raw.get("format", FORMAT) != FORMAT:
        raise BitstreamError(f"{where}: metadata format {raw.get('format')!r} is not {FORMAT!r}")
    meta = _parse_meta(raw, expected_name, where)
    if expected_name is not None and meta.name != expected_name:
        raise BitstreamError(
            f"{where}: checkpoint holds model {meta.name!r}, expected {expected_name!r}"
        )
    try:
        model = create_model(meta.name, **meta.config)
    except SemcomError as exc:
        raise BitstreamError(f"{where}: cannot build model from its metadata: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise BitstreamError(f"{where}: bad model config {meta.config}: {exc}") from None
    state_dict_into(model, sd, where)
    model.eval()
    return model, meta
