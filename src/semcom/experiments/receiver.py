"""The receiver end of ``semcom receive``: decode a message file and run the task models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from semcom.errors import InputError

MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def read_message(path: Path) -> bytes:
    """Bytes of a message file; InputError when missing or absurdly large."""
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    if path.stat().st_size > MAX_MESSAGE_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes is larger than any message")
    return path.read_bytes()


@torch.no_grad()
def describe_task(x_hat: torch.Tensor, model_size: int = 64) -> dict[str, Any]:
    """Run the zoo's judges on ``x_hat`` uint8 ``(3, H, W)``.

    The judges were trained on ``model_size`` x ``model_size`` images: other sizes are
    resized (bilinear) before classification/segmentation.
    """
    from semcom.data import to_float
    from semcom.data.synthetic import CLASS_NAMES
    from semcom.models.zoo import list_zoo, load_pretrained

    x = to_float(x_hat[None])
    if x.shape[-2:] != (model_size, model_size):
        x = F.interpolate(x, size=(model_size, model_size), mode="bilinear", align_corners=False)
    zoo = set(list_zoo())
    out: dict[str, Any] = {}
    if "shape-classifier" in zoo:
        probs = load_pretrained("shape-classifier").eval()(x).softmax(1)[0]
        top = int(probs.argmax())
        out["class"] = CLASS_NAMES[top]
        out["confidence"] = round(float(probs[top]), 4)
    if "shape-segmenter" in zoo:
        seg = load_pretrained("shape-segmenter").eval()(x).argmax(1)[0]
        counts = torch.bincount(seg.flatten(), minlength=len(CLASS_NAMES) + 1)
        out["segmentation (fraction of pixels)"] = {
            CLASS_NAMES[c - 1]: round(float(counts[c]) / seg.numel(), 4)
            for c in range(1, len(counts))
            if counts[c] > 0
        }
    return out


def receive_file(
    path: Path, output: Path | None = None, scheme_spec: str | None = None
) -> dict[str, Any]:
    """Decode the message at ``path``, optionally save the reconstruction, return the result.

    ``scheme_spec`` (e.g. ``"patch-mean[decoder=runs/dec.safetensors]"``) decodes with
    that scheme instead of the receiver registered for the message's wire name.
    """
    from semcom.codec.container import unpack
    from semcom.imageio import save_image
    from semcom.schemes import create_receiver, create_scheme

    data = read_message(path)
    msg = unpack(data)
    scheme = create_scheme(scheme_spec) if scheme_spec else create_receiver(msg.scheme_name)
    out = scheme.decompress(data)
    result: dict[str, Any] = {"scheme": msg.scheme_name, "bytes": len(data)}
    x_hat = out.get("x_hat")
    if x_hat is not None:
        result["image"] = f"{x_hat.shape[2]}x{x_hat.shape[1]}"
        if output is not None:
            save_image(x_hat, output)
            result["reconstruction"] = str(output)
        result.update(describe_task(x_hat))
    return result
