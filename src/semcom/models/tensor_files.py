"""Tensor files as untrusted input: safetensors and weights-only torch zip files.

The layer below :mod:`semcom.models.checkpoint` (and the zoo, the fingerprints and the
domain statistics, which store plain tensors): it knows files and tensors, not models.

* writing: :func:`serialize_safetensors` (byte-reproducible) and :func:`atomic_write`;
* reading: :func:`read_safetensors` checks the header (length, JSON, every tensor's
  dtype / shape / offsets, the data section exactly covered, at most
  :data:`MAX_MODEL_BYTES` of tensor data) before the bytes reach ``safetensors``;
  :func:`load_torch_file` accepts only torch's zip format, through
  ``torch.load(weights_only=True)``, after its zip directory is bounded;
  :func:`load_state_dict_file` reads either kind and can check keys, shapes and dtype
  kinds against a model from the header, before any tensor is materialised;
* :func:`state_dict_into` copies checked, finite tensors into a model.

A missing file is an ``InputError``; anything wrong with the bytes a one-line
``BitstreamError`` naming the file and what does not match.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor, nn

from semcom.errors import BitstreamError, InputError, one_line

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_MODEL_BYTES",
    "atomic_write",
    "compare_specs",
    "key_mismatch",
    "load_state_dict_file",
    "load_torch_file",
    "read_safetensors",
    "serialize_safetensors",
    "specs_of",
    "state_dict_into",
]

MAX_HEADER_BYTES = 16 * 1024 * 1024
#: The most bytes of tensor data a file may hold, and the most bytes of parameters +
#: buffers a checkpoint's config may make ``load_checkpoint`` build (``numel *
#: element_size`` over the model, computed on the ``meta`` device before anything is
#: allocated). 512 MiB fits every registered architecture in float32 (the largest,
#: ``vit-base-patch16-224``, is 346 MB).
MAX_MODEL_BYTES = 512 * 2**20
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


# --------------------------------------------------------------------------- writing

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


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (parents made, mode 0644) through a temporary file and
    ``os.replace``: a reader sees the old file or the new one, never a part."""
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


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Spec:
    """A state-dict entry as far as loading cares: shape and dtype."""

    shape: tuple[int, ...]
    dtype: torch.dtype


def _spec_of(t: Tensor) -> _Spec:
    return _Spec(tuple(int(s) for s in t.shape), t.dtype)


def specs_of(tensors: Mapping[str, Tensor]) -> dict[str, _Spec]:
    """Shape and dtype of each tensor (what :func:`compare_specs` compares)."""
    return {k: _spec_of(v) for k, v in tensors.items()}


def error_text(text: object, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters (torch's C++ trace cut off)."""
    return one_line(str(text).split("Exception raised from ")[0], limit)


def json_text(value: Any, limit: int = 200) -> str:
    """``value`` as compact JSON (``repr`` if it is none) on one line, for messages."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return error_text(text, limit)


def key_mismatch(missing: list[str], unexpected: list[str], show: int | None = None) -> str:
    """``"missing keys [...]; unexpected keys [...]"`` (the empty side left out), each
    list cut to its first ``show`` keys and ``" ..."`` when longer."""

    def listed(keys: list[str]) -> str:
        if show is None:
            return f"{keys}"
        return f"{keys[:show]}{' ...' if len(keys) > show else ''}"

    parts = []
    if missing:
        parts.append(f"missing keys {listed(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {listed(unexpected)}")
    return "; ".join(parts)


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
            f"{where}: header (offset 8) is not valid JSON: {error_text(exc, 160)}"
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
                f"{where}: tensor {key!r}: unsupported dtype {json_text(dtype, 40)}"
            )
        if not (
            isinstance(shape, list)
            and len(shape) <= 64
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
        ):
            raise BitstreamError(f"{where}: tensor {key!r}: bad shape {json_text(shape, 80)}")
        if not (
            isinstance(offs, list)
            and len(offs) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
            and 0 <= offs[0] <= offs[1] <= body
        ):
            raise BitstreamError(
                f"{where}: tensor {key!r}: data offsets {json_text(offs, 80)} outside the "
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
            f"{where}: safetensors could not parse the file: {error_text(exc, 160)}"
        ) from None
    return tensors, meta


_MAX_FILE_BYTES = 8 + MAX_HEADER_BYTES + MAX_MODEL_BYTES


def probe(path: Path) -> tuple[str, int]:
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


def read_bytes(path: Path, size: int | None = None) -> bytes:
    """The file's bytes, refusing (before reading) more than a checkpoint may hold."""
    if size is None:
        size = probe(path)[1]
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


def read_header_file(path: Path, size: int, where: str) -> tuple[dict[str, _Spec], dict[str, str]]:
    """Tensor specs and metadata from a safetensors file's checked header alone."""
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
            f"{where}: not a loadable weights-only torch file: bad zip: {error_text(exc, 160)}"
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
            f"{where}: not a loadable weights-only torch file: {error_text(exc, 200)}"
        ) from None


def load_torch_file(path: str | os.PathLike[str]) -> Any:
    """Whatever a torch file holds (e.g. a training state), loaded as untrusted input.

    ``torch.load(map_location="cpu", weights_only=True)``, but only of torch's zip
    format, of a file of bounded size whose zip directory declares at most
    :data:`MAX_MODEL_BYTES` of records (checked before ``torch.load`` allocates them).
    A missing file is an ``InputError``; anything else wrong a one-line ``BitstreamError``.
    """
    path = Path(path)
    _, size = probe(path)
    return _torch_load(read_bytes(path, size), str(path))


def load_pt(data: bytes, where: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state_dict, other entries)`` of a weights-only torch file's bytes (a bare state
    dict, or ``{"state_dict": ..., ...}``)."""
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
    kind, size = probe(path)
    own = None
    if like is not None:
        own = specs_of(like.state_dict() if isinstance(like, nn.Module) else like)
    if kind == "pt":
        sd, info = load_pt(read_bytes(path, size), where)
        if own is not None:
            compare_specs(own, specs_of(sd), where)
        return sd, info
    if own is not None:
        specs, _ = read_header_file(path, size, where)
        compare_specs(own, specs, where)
    return read_safetensors(read_bytes(path, size), where)


def compare_specs(
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
        what = (
            "state dict does not fit the model"
            if config is None
            else f"{subject} does not fit the file's tensors"
        )
        raise BitstreamError(f"{where}: {what}: {key_mismatch(missing, unexpected, show=5)}")
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
            hits.append(f"{key}={json_text(value, 60)}")
    return f"config {', '.join(hits)}" if hits else subject


def state_dict_into(model: nn.Module, sd: dict[str, Tensor], where: str = "checkpoint") -> None:
    """Copy ``sd`` into ``model`` after checking keys, shapes, dtypes and finiteness.

    Raises ``BitstreamError`` naming the offending keys; the model is untouched then.
    Nothing is allocated before the checks pass (beyond one tensor's finiteness mask
    and dtype conversion at a time).
    """
    own = model.state_dict()
    compare_specs(specs_of(own), specs_of(sd), where)
    for k in own:
        t = sd[k]
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise BitstreamError(f"{where}: tensor {k!r} holds NaN or infinite values")
    with torch.no_grad():
        for k, ref in own.items():
            ref.copy_(sd[k].to(ref.dtype))
