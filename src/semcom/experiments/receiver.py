"""The receiver end of ``semcom receive``: decode a message file and run the task models."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semcom.errors import InputError

if TYPE_CHECKING:
    import torch

    from semcom.models.domain import DomainCheck

MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def read_message(path: Path) -> bytes:
    """Bytes of a message file; InputError when missing or absurdly large."""
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    if path.stat().st_size > MAX_MESSAGE_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes is larger than any message")
    return path.read_bytes()


def _judge_info(name: str) -> dict[str, str]:
    from semcom.models.zoo import zoo_entry

    entry = zoo_entry(name)
    return {"name": name, "source": "zoo", "trained on": entry.get("domain", "not recorded")}


@lru_cache(maxsize=8)
def _verified_domain_check(path: str, mtime_ns: int, size: int, sha256: str) -> DomainCheck | None:
    """The domain check stored at ``path`` if its sha256 is ``sha256``, else None.

    Cached by path, modification time and size, so the file is read and hashed once
    per process rather than on every :func:`describe_task` call.
    """
    from semcom.models.domain import load_domain_check
    from semcom.models.zoo import file_sha256

    if file_sha256(path) != sha256:
        return None
    return load_domain_check(path)


def _domain_check(model: Any, x: torch.Tensor) -> dict[str, Any] | None:
    """The zoo judge's domain check on float ``(1, 3, H, W)``, or None if it has none."""
    from semcom.models.zoo import zoo_dir, zoo_entry

    info = zoo_entry(model.zoo_name).get("domain_check")
    if not info:
        return None
    path = zoo_dir() / info["file"]
    if not path.is_file():
        return None
    st = path.stat()
    dom = _verified_domain_check(str(path), st.st_mtime_ns, st.st_size, info["sha256"])
    if dom is None:
        return None
    ((distance, inside),) = dom.check(model, x)
    threshold = float(info["threshold"])
    out: dict[str, Any] = {
        "distance": round(distance, 3),
        "threshold": threshold,
        "in_domain": inside,
    }
    out["verdict"] = (
        "inside the judge's training domain"
        if inside
        else "FAR FROM the judge's training domain: its answers say little about this image"
    )
    return out


def describe_task(x_hat: torch.Tensor, model_size: int = 64) -> dict[str, Any]:
    """Run the zoo's judges on ``x_hat`` uint8 ``(3, H, W)``; every answer names its judge
    and the data it was trained on, and the classifier's domain check says whether the
    image is like that data (:mod:`semcom.models.domain`).

    The judges were trained on ``model_size`` x ``model_size`` images: other sizes are
    resized (bilinear) before classification/segmentation.
    """
    import torch
    import torch.nn.functional as F

    from semcom.data import to_float
    from semcom.data.synthetic import CLASS_NAMES
    from semcom.models.zoo import list_zoo, load_pretrained

    x = to_float(x_hat[None])
    out: dict[str, Any] = {}
    if x.shape[-2:] != (model_size, model_size):
        out["judged at"] = f"{model_size}x{model_size} (resized from {x.shape[-1]}x{x.shape[-2]})"
        x = F.interpolate(x, size=(model_size, model_size), mode="bilinear", align_corners=False)
    zoo = set(list_zoo())
    with torch.no_grad():
        if "shape-classifier" in zoo:
            clf = load_pretrained("shape-classifier").eval()
            probs = clf(x).softmax(1)[0]
            top = int(probs.argmax())
            out["class"] = CLASS_NAMES[top]
            out["confidence"] = round(float(probs[top]), 4)
            out["classifier"] = _judge_info("shape-classifier")
            check = _domain_check(clf, x)
            if check is not None:
                out["domain"] = check
        if "shape-segmenter" in zoo:
            seg = load_pretrained("shape-segmenter").eval()(x).argmax(1)[0]
            counts = torch.bincount(seg.flatten(), minlength=len(CLASS_NAMES) + 1)
            out["segmentation (fraction of pixels)"] = {
                CLASS_NAMES[c - 1]: round(float(counts[c]) / seg.numel(), 4)
                for c in range(1, len(counts))
                if counts[c] > 0
            }
            out["segmenter"] = _judge_info("shape-segmenter")
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
        if out.get("coded_size"):
            result["coded at"] = f"{out['coded_size']} (upsampled by the receiver)"
        if out.get("lost_patches"):
            result["lost patches"] = out["lost_patches"]
        if output is not None:
            save_image(x_hat, output)
            result["reconstruction"] = str(output)
        result.update(describe_task(x_hat))
    return result
