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
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import tempfile
import threading
import zipfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor, nn

import semcom
from semcom.errors import BitstreamError, InputError, SemcomError, one_line

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
MAX_HEADER_BYTES = 16 * 1024 * 1024

#: The most bytes of parameters + buffers a checkpoint's config may make
#: ``load_checkpoint`` build (``numel * element_size`` over the model, computed on the
#: ``meta`` device before anything is allocated), and the most bytes of tensor data a
#: checkpoint file may hold. 512 MiB fits every registered architecture in float32
#: (the largest, ``vit-base-patch16-224``, is 346 MB).
MAX_MODEL_BYTES = 512 * 2**20
#: A config may also imply at most this many bytes of model per byte of the file ...
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
#: While a config's model is built on ``meta``, it may register at most
#: ``_TENSOR_FACTOR * n + _TENSOR_EXTRA`` parameters and buffers and
#: ``_MODULE_FACTOR * n + _MODULE_EXTRA`` submodules, ``n`` = the file's tensor count.
_TENSOR_FACTOR, _TENSOR_EXTRA = 2, 64
_MODULE_FACTOR, _MODULE_EXTRA = 8, 256
_MAX_ZIP_ENTRIES = 100_000

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


@dataclass(frozen=True)
class _Spec:
    """A state-dict entry as far as loading cares: shape and dtype."""

    shape: tuple[int, ...]
    dtype: torch.dtype


def _spec_of(t: Tensor) -> _Spec:
    return _Spec(tuple(int(s) for s in t.shape), t.dtype)


def _specs(tensors: Mapping[str, Tensor]) -> dict[str, _Spec]:
    return {k: _spec_of(v) for k, v in tensors.items()}


def _one_line(text: object, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters (torch's C++ trace cut off)."""
    return one_line(str(text).split("Exception raised from ")[0], limit)


def _json_text(value: Any, limit: int = 200) -> str:
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return _one_line(text, limit)


def _some(keys: list[str]) -> str:
    return f"{keys[:5]}{' ...' if len(keys) > 5 else ''}"


def _check_length(n: int, size: int, where: str) -> None:
    """The header length field ``n`` of a ``size``-byte safetensors file is plausible."""
    if n > size - 8:
        raise BitstreamError(
            f"{where}: truncated or corrupt: header length field (offset 0) declares "
            f"{n} bytes but only {size - 8} follow"
        )
    if n > MAX_HEADER_BYTES:
        raise BitstreamError(f"{where}: header of {n} bytes exceeds the {MAX_HEADER_BYTES} limit")
    if size - 8 - n > MAX_MODEL_BYTES:
        raise BitstreamError(
            f"{where}: {size - 8 - n} bytes of tensor data exceed the limit of "
            f"{MAX_MODEL_BYTES} (semcom.models.checkpoint.MAX_MODEL_BYTES)"
        )


def _parse_header(head: bytes, body: int, where: str) -> tuple[dict[str, _Spec], dict[str, str]]:
    """Tensor specs and metadata of a safetensors header; nothing of the data is read.

    Checks every entry's dtype, shape and offsets, and that the tensors cover the
    ``body``-byte data section exactly (in order, no gap, no overlap), as ``safetensors``
    itself requires.
    """
    try:
        header = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BitstreamError(
            f"{where}: header (offset 8) is not valid JSON: {_one_line(exc, 160)}"
        ) from None
    if not isinstance(header, dict):
        raise BitstreamError(f"{where}: header (offset 8) is not a JSON object")
    meta = header.get("__metadata__", {}) or {}
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise BitstreamError(f"{where}: __metadata__ must map strings to strings")
    specs: dict[str, _Spec] = {}
    spans: list[tuple[int, int, str]] = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise BitstreamError(f"{where}: tensor {key!r}: entry is not an object")
        dtype, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _DTYPES:
            raise BitstreamError(
                f"{where}: tensor {key!r}: unsupported dtype {_json_text(dtype, 40)}"
            )
        if not (
            isinstance(shape, list)
            and len(shape) <= 64
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
        ):
            raise BitstreamError(f"{where}: tensor {key!r}: bad shape {_json_text(shape, 80)}")
        if not (
            isinstance(offs, list)
            and len(offs) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
            and 0 <= offs[0] <= offs[1] <= body
        ):
            raise BitstreamError(
                f"{where}: tensor {key!r}: data offsets {_json_text(offs, 80)} outside the "
                f"{body}-byte data section"
            )
        if math.prod(shape) * _DTYPES[dtype][1] != offs[1] - offs[0]:
            raise BitstreamError(
                f"{where}: tensor {key!r}: shape {shape} {dtype} does not match "
                f"{offs[1] - offs[0]} bytes"
            )
        specs[key] = _Spec(tuple(shape), _DTYPES[dtype][0])
        spans.append((offs[0], offs[1], key))
    pos = 0
    for start, end, key in sorted(spans):
        if start != pos:
            how = "overlap the previous tensor" if start < pos else f"leave a gap after byte {pos}"
            raise BitstreamError(
                f"{where}: tensor {key!r}: data offsets [{start}, {end}] {how} of the data section"
            )
        pos = end
    if pos != body:
        raise BitstreamError(
            f"{where}: the tensors cover {pos} of the {body} bytes of the data section"
        )
    return specs, dict(meta)


def _read_header(fh: BinaryIO, size: int, where: str) -> tuple[dict[str, _Spec], dict[str, str]]:
    """Read and check the header of the ``size``-byte safetensors file open as ``fh``."""
    if size < 8:
        raise BitstreamError(
            f"{where}: truncated: {size} bytes, shorter than the 8-byte header length"
        )
    (n,) = struct.unpack("<Q", fh.read(8))
    _check_length(n, size, where)
    head = fh.read(n)
    if len(head) != n:
        raise BitstreamError(f"{where}: truncated while reading its {n}-byte header")
    return _parse_header(head, size - 8 - n, where)


def read_safetensors(
    data: bytes, where: str = "checkpoint"
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Parse safetensors ``data`` into ``(tensors, metadata)``; ``BitstreamError`` if malformed.

    The declared header length is checked against the file size, and the data section
    against :data:`MAX_MODEL_BYTES`, before anything is parsed; every tensor's dtype /
    shape / offsets are validated (the tensors must cover the data section exactly),
    then the bytes are handed to ``safetensors`` (whose own errors are wrapped too).
    """
    from safetensors.torch import load as st_load

    _, meta = _read_header(io.BytesIO(data), len(data), where)
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError / others
        raise BitstreamError(
            f"{where}: safetensors could not parse the file: {_one_line(exc, 160)}"
        ) from None
    return tensors, meta


_MAX_FILE_BYTES = 8 + MAX_HEADER_BYTES + MAX_MODEL_BYTES


def _probe(path: Path) -> tuple[str, int]:
    """``("pt" | "safetensors", size)`` of a checkpoint file; ``InputError`` if unreadable."""
    if not path.exists():
        raise InputError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise InputError(f"checkpoint is not a file: {path}")
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise InputError(f"cannot read checkpoint {path}: {exc}") from None
    return ("pt" if path.suffix in (".pt", ".pth") or magic == _ZIP_MAGIC else "safetensors"), size


def _read_bytes(path: Path, size: int | None = None) -> bytes:
    """The file's bytes, refusing (before reading) more than a checkpoint may hold."""
    if size is None:
        size = _probe(path)[1]
    if size > _MAX_FILE_BYTES:
        raise BitstreamError(
            f"{path}: {size} bytes, more than a checkpoint may hold ({_MAX_FILE_BYTES}; "
            "semcom.models.checkpoint.MAX_MODEL_BYTES of tensors + header)"
        )
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read checkpoint {path}: {exc}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise BitstreamError(f"{path}: grew past {_MAX_FILE_BYTES} bytes while being read")
    return data


def _read_header_file(path: Path, size: int, where: str) -> tuple[dict[str, _Spec], dict[str, str]]:
    try:
        with path.open("rb") as fh:
            return _read_header(fh, size, where)
    except OSError as exc:
        raise InputError(f"cannot read checkpoint {path}: {exc}") from None


def _check_torch_zip(data: bytes, where: str) -> None:
    """A torch file must be torch's zip format, its records declaring a bounded size.

    ``torch.load`` allocates each record at the size the zip directory declares (and the
    legacy non-zip format at sizes its pickle declares, before reading them), so the
    directory is read first and the legacy format is refused.
    """
    if data[:4] != _ZIP_MAGIC:
        raise BitstreamError(
            f"{where}: not a torch zip file (only the zip format torch.save writes is "
            "accepted, loaded with weights_only=True)"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except Exception as exc:  # BadZipFile, LargeZipFile, struct/EOF errors of damaged files
        raise BitstreamError(
            f"{where}: not a loadable weights-only torch file: bad zip: {_one_line(exc, 160)}"
        ) from None
    if len(infos) > _MAX_ZIP_ENTRIES:
        raise BitstreamError(f"{where}: {len(infos)} zip records, more than {_MAX_ZIP_ENTRIES}")
    total = sum(max(int(i.file_size), 0) for i in infos)
    if total > MAX_MODEL_BYTES + MAX_HEADER_BYTES:
        raise BitstreamError(
            f"{where}: its zip records declare {total} bytes, more than the limit of "
            f"{MAX_MODEL_BYTES + MAX_HEADER_BYTES} (semcom.models.checkpoint.MAX_MODEL_BYTES)"
        )


def _torch_load(data: bytes, where: str) -> Any:
    """``torch.load(weights_only=True)`` of ``data`` after :func:`_check_torch_zip`."""
    _check_torch_zip(data, where)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip/unsafe-global errors of any kind
        raise BitstreamError(
            f"{where}: not a loadable weights-only torch file: {_one_line(exc, 200)}"
        ) from None


def load_torch_file(path: str | os.PathLike[str]) -> Any:
    """Whatever a torch file holds (e.g. a training state), loaded as untrusted input.

    ``torch.load(map_location="cpu", weights_only=True)``, but only of torch's zip
    format, of a file of bounded size whose zip directory declares at most
    :data:`MAX_MODEL_BYTES` of records (checked before ``torch.load`` allocates them).
    A missing file is an ``InputError``; anything else wrong a one-line ``BitstreamError``.
    """
    path = Path(path)
    _, size = _probe(path)
    return _torch_load(_read_bytes(path, size), str(path))


def _load_pt(data: bytes, where: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    obj = _torch_load(data, where)
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


def load_state_dict_file(
    path: str | os.PathLike[str], like: nn.Module | Mapping[str, Tensor] | None = None
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Raw ``(state_dict, metadata)`` of a safetensors or weights-only ``.pt`` file.

    The file may hold at most :data:`MAX_MODEL_BYTES` of tensors (checked from the
    safetensors header / the zip directory, before the tensors are read). With ``like``
    (a model or a state dict), the file's keys, shapes and dtype kinds must match it --
    for safetensors this is checked on the header, before any tensor is materialised;
    a mismatch is a ``BitstreamError`` naming the first differing tensor.
    """
    path = Path(path)
    where = str(path)
    kind, size = _probe(path)
    own = None
    if like is not None:
        own = _specs(like.state_dict() if isinstance(like, nn.Module) else like)
    if kind == "pt":
        sd, info = _load_pt(_read_bytes(path, size), where)
        if own is not None:
            _compare(own, _specs(sd), where)
        return sd, info
    if own is not None:
        specs, _ = _read_header_file(path, size, where)
        _compare(own, specs, where)
    return read_safetensors(_read_bytes(path, size), where)


def _compare(
    own: Mapping[str, _Spec],
    theirs: Mapping[str, _Spec],
    where: str,
    config: dict[str, Any] | None = None,
    subject: str = "",
) -> None:
    """``BitstreamError`` naming the first difference of a model's state dict (``own``)
    and a file's tensors (``theirs``): keys, then shapes, then dtype kind (float or not).

    With ``config`` (the checkpoint's), the message blames the config values that
    produce the expected shape (``config embed_dim=65536 implies tensor ...``).
    """
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_some(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_some(unexpected)}")
        what = (
            "state dict does not fit the model"
            if config is None
            else f"{subject} does not fit the file's tensors"
        )
        raise BitstreamError(f"{where}: {what}: {'; '.join(parts)}")
    for k, ref in own.items():
        t = theirs[k]
        if t.shape != ref.shape:
            if config is None:
                raise BitstreamError(
                    f"{where}: tensor {k!r} has shape {t.shape}, model expects {ref.shape}"
                )
            raise BitstreamError(
                f"{where}: {_blame(config, ref.shape, t.shape, subject)} implies tensor "
                f"{k!r} of shape {ref.shape}, the file has {t.shape}"
            )
        if t.dtype.is_floating_point != ref.dtype.is_floating_point:
            raise BitstreamError(
                f"{where}: tensor {k!r} has dtype {t.dtype}, model expects {ref.dtype}"
            )


def _blame(
    config: dict[str, Any], expected: tuple[int, ...], found: tuple[int, ...], subject: str
) -> str:
    """``"config k=v, ..."`` for the config values that appear in ``expected`` but not in
    ``found`` (the likely culprits of a shape mismatch), else ``subject``."""
    extra = set(expected) - set(found)
    hits = []
    for key in sorted(config):
        value = config[key]
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(x, int) and not isinstance(x, bool) and x in extra for x in values):
            hits.append(f"{key}={_json_text(value, 60)}")
    return f"config {', '.join(hits)}" if hits else subject


def _describe(name: str, config: dict[str, Any]) -> str:
    return (
        f"config {_json_text(config)}"
        if config
        else f"the default config of {_json_text(name, 80)}"
    )


def state_dict_into(model: nn.Module, sd: dict[str, Tensor], where: str = "checkpoint") -> None:
    """Copy ``sd`` into ``model`` after checking keys, shapes, dtypes and finiteness.

    Raises ``BitstreamError`` naming the offending keys; the model is untouched then.
    Nothing is allocated before the checks pass (beyond one tensor's finiteness mask
    and dtype conversion at a time).
    """
    own = model.state_dict()
    _compare(_specs(own), _specs(sd), where)
    for k in own:
        t = sd[k]
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise BitstreamError(f"{where}: tensor {k!r} holds NaN or infinite values")
    with torch.no_grad():
        for k, ref in own.items():
            ref.copy_(sd[k].to(ref.dtype))


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
                f"{where}: config metadata is not valid JSON: {_one_line(exc, 160)}"
            ) from None
    if not isinstance(cfg, dict):
        raise BitstreamError(f"{where}: config metadata is not a JSON object")
    try:
        step = int(meta.get("step", 0))
    except (TypeError, ValueError, OverflowError, RuntimeError):
        raise BitstreamError(
            f"{where}: step metadata {_json_text(meta.get('step'), 40)} is not an integer"
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
                    f"{where}: config {label}={_json_text(value, 40)} is out of range "
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


class _Refused(Exception):
    """Raised by :class:`_BuildGuard` from inside a model constructor to stop it."""


# In-place ops that only change values (weight init, scaling, fills): on a meta tensor
# they are no-ops, but some (``normal_``, ``erfinv_``, ...) have Python meta kernels
# whose first use imports torch's compiler stack (about 75 MB and 2 s).
_VALUE_ONLY_INPLACE = frozenset(
    {
        # torch.nn.init
        "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
        "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
        "kaiming_normal_", "orthogonal_", "sparse_",
        # Tensor methods
        "erfinv_", "mul_", "add_", "sub_", "div_", "clamp_", "clamp_min_", "clamp_max_",
        "fill_", "zero_", "copy_", "exp_", "log_", "sqrt_", "neg_", "abs_", "pow_",
        "bernoulli_", "random_", "exponential_", "log_normal_", "cauchy_", "geometric_",
        "fill_diagonal_", "masked_fill_", "addcmul_", "addcdiv_", "lerp_", "tanh_",
    }
)  # fmt: skip
_NEW_FACTORIES = frozenset({"new_empty", "new_zeros", "new_ones", "new_full", "new_tensor"})
#: Tensors of at most this many elements are made for real (on the CPU) while a config's
#: model is built "on meta": fixed buffers computed at init (``EdgeFeatures``' kernel)
#: then run on real kernels, and only the large tensors live on the ``meta`` device.
_SMALL_NUMEL = 4096


def _constructors() -> frozenset[Any]:
    try:
        from torch.utils._device import _device_constructors

        return frozenset(_device_constructors())
    except (ImportError, AttributeError):  # pragma: no cover - other torch versions
        return frozenset()


class _BuildGuard(torch.overrides.TorchFunctionMode):
    """Builds a model "on meta", counting what its constructor does and stopping it early.

    Inside ``with guard:`` (this thread only):

    * tensor factories without an explicit device (``torch.zeros``, ``torch.tensor``,
      ``x.new_zeros``, ...) make their tensor on ``meta``, or for real on the CPU when
      it has at most ``_SMALL_NUMEL`` elements (so fixed buffers computed at init run
      on real kernels); value-only in-place ops on meta tensors (weight init, fills:
      ``_VALUE_ONLY_INPLACE``) are skipped;
    * torch's global parameter / buffer / module registration hooks count what the
      constructor registers; it is interrupted (``_Refused``) once it registers more
      parameters and buffers, or submodules, than a file of ``file_tensors`` tensors
      can account for (``_TENSOR_FACTOR``, ``_MODULE_FACTOR``), or once real tensors
      (registered, or any op's result) exceed ``max_real_bytes``; ``problem`` then
      says which;
    * the CPU RNG is left as it was.
    """

    def __init__(self, file_tensors: int, max_real_bytes: int) -> None:
        super().__init__()
        self.file_tensors = file_tensors
        self.max_tensors = _TENSOR_FACTOR * file_tensors + _TENSOR_EXTRA
        self.max_modules = _MODULE_FACTOR * file_tensors + _MODULE_EXTRA
        self.max_real_bytes = max_real_bytes
        self.tensors = self.modules = self.real_bytes = 0
        self.problem: str | None = None
        self._thread = threading.get_ident()
        self._factories = _constructors()
        self._handles: list[Any] = []
        self._stack: ExitStack | None = None

    # ----------------------------------------------------------------- refusing
    def _refuse(self, problem: str) -> None:
        if self.problem is None:
            self.problem = problem
        raise _Refused(problem)

    def _too_many_bytes(self) -> None:
        self._refuse(f"allocates more than {self.max_real_bytes} bytes while being built")

    # -------------------------------------------------------- registration hooks
    def _on_tensor(self, module: nn.Module, name: str, t: Tensor | None) -> None:
        if t is None or threading.get_ident() != self._thread:
            return
        self.tensors += 1
        if t.device.type != "meta":
            self.real_bytes += t.numel() * t.element_size()
        if self.tensors > self.max_tensors:
            self._refuse(
                f"implies more than {self.max_tensors} parameters and buffers, the file "
                f"has {self.file_tensors} tensors"
            )
        if self.real_bytes > self.max_real_bytes:
            self._too_many_bytes()

    def _on_module(self, parent: nn.Module, name: str, sub: nn.Module | None) -> None:
        if sub is None or threading.get_ident() != self._thread:
            return
        self.modules += 1
        if self.modules > self.max_modules:
            self._refuse(
                f"implies more than {self.max_modules} submodules, the file has "
                f"{self.file_tensors} tensors"
            )

    # ------------------------------------------------------------ torch function
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, D105
        kwargs = kwargs or {}
        name = getattr(func, "__name__", None)
        if name in _VALUE_ONLY_INPLACE:
            # torch.nn.init passes its tensor by keyword (``tensor=``).
            target = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
            if isinstance(target, Tensor) and target.device.type == "meta":
                return target
        if kwargs.get("device") is None and (
            func in self._factories
            or (name in _NEW_FACTORIES and args and isinstance(args[0], Tensor))
        ):
            out = func(*args, **{**kwargs, "device": "meta"})
            if not (isinstance(out, Tensor) and out.numel() <= _SMALL_NUMEL):
                return out
            if func in self._factories:
                kwargs = {**kwargs, "device": "cpu"}
        out = func(*args, **kwargs)
        if (
            isinstance(out, Tensor)
            and out.device.type != "meta"
            and out.untyped_storage().nbytes() > self.max_real_bytes
        ):
            self._too_many_bytes()
        return out

    # ------------------------------------------------------------------- context
    def __enter__(self) -> _BuildGuard:
        from torch.nn.modules import module as mod

        stack = ExitStack()
        stack.enter_context(torch.random.fork_rng(devices=[]))
        stack.enter_context(torch.device("meta"))
        self._handles = [
            mod.register_module_parameter_registration_hook(self._on_tensor),
            mod.register_module_buffer_registration_hook(self._on_tensor),
            mod.register_module_module_registration_hook(self._on_module),
        ]
        self._stack = stack
        try:
            super().__enter__()
        except BaseException:
            self._exit_rest()
            raise
        return self

    def _exit_rest(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self._exit_rest()


def _build(
    name: str, config: dict[str, Any], where: str, guard: _BuildGuard | None = None
) -> nn.Module:
    """``create_model(name, **config)``; whatever it raises becomes one ``BitstreamError``.

    With ``guard`` the model is built "on meta" under it (see :class:`_BuildGuard`);
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
            f"{where}: cannot build model {_json_text(name, 80)} from its metadata: "
            f"{_one_line(error)}"
        )
    if error is not None:
        raise BitstreamError(
            f"{where}: {subject} cannot be built: {type(error).__name__}: {_one_line(error, 200)}"
        )
    if not isinstance(model, nn.Module):
        raise BitstreamError(f"{where}: model {_json_text(name, 80)} did not build an nn.Module")
    return model


def _model_bytes(model: nn.Module) -> int:
    """``numel * element_size`` over the model's parameters and buffers (works on meta)."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


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
    kind, size = _probe(path)
    sd: dict[str, Tensor] | None = None
    if kind == "pt":
        sd, raw = _load_pt(_read_bytes(path, size), where)
        specs = _specs(sd)
    else:
        specs, raw = _read_header_file(path, size, where)
    if raw.get("format", FORMAT) != FORMAT:
        raise BitstreamError(
            f"{where}: metadata format {_json_text(raw.get('format'), 60)} is not {FORMAT!r}"
        )
    meta = _parse_meta(raw, expected_name, where)
    if expected_name is not None and meta.name != expected_name:
        raise BitstreamError(
            f"{where}: checkpoint holds model {_json_text(meta.name, 80)}, "
            f"expected {expected_name!r}"
        )
    _check_config(meta.config, where)
    budget = model_budget(size)
    shell = _build(meta.name, meta.config, where, _BuildGuard(len(specs), budget))
    subject = _describe(meta.name, meta.config)
    _compare(_specs(shell.state_dict()), specs, where, meta.config, subject)
    need = _model_bytes(shell)
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
        sd, _ = read_safetensors(_read_bytes(path, size), where)
    model = _build(meta.name, meta.config, where)
    state_dict_into(model, sd, where)
    model.eval()
    return model, meta
