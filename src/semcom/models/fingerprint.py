"""Fingerprints of model weights: which trained models a message was made for.

A receiver that needs trained weights (the patch decoder, later VQ-VAE decoders and server
models) can only rebuild a message made for *those* weights; other weights decode it
without complaint into a wrong result. So a transmitter writes a short fingerprint of the
receiver's weights into the message header (field ``fp``, :data:`FINGERPRINT_BYTES`
bytes), and a receiver holding other weights refuses the message
(:class:`ModelMismatchError`).

The fingerprint is the start of :func:`weights_sha256`: the sha256 of the weights alone
(the canonical safetensors serialisation of the state dict with no metadata: keys sorted,
dtype, shape and raw bytes), so the same weights give the same fingerprint whether they
come from the zoo, a checkpoint file (whatever its metadata: step, training notes) or a
model in memory. ``zoo.json`` records it per entry (``weights_sha256``), so ``semcom
inspect`` can name the zoo model a message needs without loading any weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from semcom.errors import BitstreamError

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = [
    "FINGERPRINT_BYTES",
    "ModelMismatchError",
    "combine",
    "describe_fingerprint",
    "mismatch_error",
    "spec_fingerprint",
    "weights_sha256",
    "zoo_name_of",
]

#: Bytes of the weights' sha256 a message carries (field ``fp``).
FINGERPRINT_BYTES = 4


class ModelMismatchError(BitstreamError):
    """A message was made for other model weights than the receiver holds."""


def weights_sha256(weights: nn.Module | Mapping[str, Tensor]) -> str:
    """Hex sha256 of a model's weights (its state dict), independent of file metadata.

    Half-precision tensors (float16 / bfloat16: a zoo file stored at half size) are
    hashed as the float32 values they load as, so a file and the model loaded from it
    have one digest."""
    import torch

    from semcom.models.tensor_files import serialize_safetensors

    sd = weights.state_dict() if hasattr(weights, "state_dict") else dict(weights)
    half = (torch.float16, torch.bfloat16)
    sd = {k: v.float() if v.dtype in half else v for k, v in sd.items()}
    return hashlib.sha256(serialize_safetensors(sd, {})).hexdigest()


def combine(digests: list[str]) -> bytes:
    """The fingerprint of a receiver needing several models: the first
    :data:`FINGERPRINT_BYTES` of the sha256 of their hex digests joined by commas (one
    model: the first bytes of its own digest)."""
    if len(digests) == 1:
        return bytes.fromhex(digests[0])[:FINGERPRINT_BYTES]
    joined = ",".join(digests).encode("ascii")
    return hashlib.sha256(joined).digest()[:FINGERPRINT_BYTES]


def spec_fingerprint(spec: str | Path | nn.Module) -> str:
    """:func:`weights_sha256` of a model given as a zoo name, checkpoint path or instance.

    A zoo name reads the digest recorded in ``zoo.json`` (no weights are loaded when it
    is there); a path reads the file's tensors.
    """
    if hasattr(spec, "state_dict"):
        return weights_sha256(spec)  # type: ignore[arg-type]
    from semcom.models.zoo import is_checkpoint_path, zoo_entry

    if is_checkpoint_path(spec):
        from semcom.errors import InputError
        from semcom.models.tensor_files import load_state_dict_file

        if not Path(spec).is_file():
            raise InputError(f"checkpoint {str(spec)!r} does not exist")
        sd, _ = load_state_dict_file(spec)
        return weights_sha256(sd)
    entry = zoo_entry(str(spec))
    recorded = entry.get("weights_sha256")
    if isinstance(recorded, str) and len(recorded) == 64:
        return recorded
    from semcom.models.zoo import load_pretrained

    return weights_sha256(load_pretrained(str(spec)))


def zoo_name_of(fingerprint: bytes) -> str | None:
    """The zoo entry whose recorded weights start with ``fingerprint``, or None."""
    from semcom.models.zoo import list_zoo, zoo_entry

    hex_fp = fingerprint.hex()
    for name in list_zoo():
        digest = zoo_entry(name).get("weights_sha256")
        if isinstance(digest, str) and hex_fp and digest.startswith(hex_fp):
            return name
    return None


def describe_fingerprint(fingerprint: bytes, source: str | None = None) -> str:
    """``"1a2b3c4d (zoo: patch-decoder-synth)"``: a fingerprint and what it names."""
    name = zoo_name_of(fingerprint)
    where = source or (f"zoo: {name}" if name else "not in the zoo")
    return f"{fingerprint.hex()} ({where})"


def mismatch_error(
    sent: bytes, own: bytes, own_source: str, what: str, spec_hint: str
) -> ModelMismatchError:
    """The error a receiver raises when a message's fingerprint ``sent`` is not its own
    ``own``: both described, and how to decode it (``spec_hint``, e.g.
    ``"patch-mean[decoder=PATH]"``)."""
    mine = describe_fingerprint(own, own_source)
    return ModelMismatchError(
        f"message was made for {what} weights {describe_fingerprint(sent)}, this receiver "
        f"holds {mine}; decode it with the sender's model (--scheme '{spec_hint}') or "
        "check_models=false"
    )
