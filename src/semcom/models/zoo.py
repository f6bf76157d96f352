"""The pretrained zoo: ``src/semcom/zoo/zoo.json`` + ``*.safetensors`` shipped in the package.

``zoo.json`` layout::

    {"format_version": 1,
     "models": [{"name": ..., "file": ..., "sha256": ..., "bytes": ..., "task": ...,
                 "weights_sha256": ...,  # of the weights alone (models.fingerprint)
                 "arch": ...,  # optional: registry name to build (default: name)
                 "config": {...},
                 "train": {"command": "python -m semcom.train ...", "seed": ..., "steps": ...,
                           "batch_size": ..., "lr": ..., "wall_s": ..., "host": ...},
                 "metrics": {"split": "test", "n": ..., <metric>: ...},
                 "check": {"split": "test", "n": 256, <metric>: ...},
                 "tolerance": {<metric>: ...}}]}

``metrics`` are scored on the synthetic *test* split; ``tolerance`` is the absolute
margin within which retraining with ``train.command`` reproduces them; ``check`` is the
same evaluation on the first 256 test images (what the test-suite re-scores).

This module only reads and verifies the zoo; models are published into it (files
copied, scored, ``zoo.json`` written) by :mod:`semcom.train.publish`.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

from semcom.errors import BitstreamError, InputError

__all__ = [
    "file_sha256",
    "forget_index",
    "is_checkpoint_path",
    "list_zoo",
    "load_model",
    "load_pretrained",
    "zoo_dir",
    "zoo_entry",
    "zoo_path",
]


def zoo_dir() -> Path:
    """Directory holding ``zoo.json`` and the checkpoint files."""
    return Path(__file__).resolve().parent.parent / "zoo"


@lru_cache(maxsize=1)
def _index() -> dict[str, dict[str, Any]]:
    path = zoo_dir() / "zoo.json"
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text("utf-8"))
        entries = doc["models"]
        return {e["name"]: e for e in entries}
    except (ValueError, KeyError, TypeError) as exc:
        raise BitstreamError(f"{path}: malformed zoo index: {exc}") from None


def forget_index() -> None:
    """Drop the cached ``zoo.json`` (call after rewriting it); the next read loads it anew."""
    _index.cache_clear()


def list_zoo() -> list[str]:
    """Names of the models with pretrained weights, sorted."""
    return sorted(_index())


def zoo_entry(name: str) -> dict[str, Any]:
    """The ``zoo.json`` entry for ``name`` (a copy); ``InputError`` if there is none."""
    idx = _index()
    if name not in idx:
        known = ", ".join(sorted(idx)) or "(none)"
        raise InputError(f"no pretrained weights for {name!r}; the zoo has: {known}")
    return json.loads(json.dumps(idx[name]))


def zoo_path(name: str) -> Path:
    """Path of the checkpoint file of zoo entry ``name``."""
    return zoo_dir() / zoo_entry(name)["file"]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_pretrained(name: str) -> nn.Module:
    """Load zoo model ``name`` in eval mode after verifying its sha256.

    The model is built as the entry's ``arch`` (default: ``name``) with the checkpoint's
    config; ``model.zoo_name`` is set to ``name``, and ``model.task`` to the entry's
    ``task`` when the architecture has none (e.g. a ViT judged as a classifier).

    Raises ``InputError`` for an unknown name or a missing file and ``BitstreamError``
    for a hash mismatch or a malformed file.
    """
    from semcom.models.checkpoint import load_checkpoint

    entry = zoo_entry(name)
    path = zoo_dir() / entry["file"]
    if not path.is_file():
        raise InputError(f"zoo file for {name!r} is missing: {path}")
    digest = file_sha256(path)
    if digest != entry["sha256"]:
        raise BitstreamError(
            f"{path}: sha256 {digest} does not match the zoo's {entry['sha256']} "
            "(file corrupted or replaced)"
        )
    # An entry may name the registered architecture it was built from ("arch", e.g. the
    # zoo's "vit-synth" is a "vit-edge-synth"); by default the zoo name is the registry name.
    model, _ = load_checkpoint(path, expected_name=entry.get("arch", name))
    model.zoo_name = name  # type: ignore[assignment]
    if getattr(model, "task", None) is None and entry.get("task"):
        model.task = entry["task"]  # type: ignore[assignment]
    return model


def is_checkpoint_path(spec: str | Path) -> bool:
    """True when ``spec`` names a checkpoint file rather than a zoo entry (a path with a
    checkpoint suffix or a separator, or an existing file)."""
    text = str(spec)
    return (
        text.endswith((".safetensors", ".pt", ".pth"))
        or "/" in text
        or "\\" in text
        or Path(text).is_file()
    )


def load_model(spec: str | Path) -> nn.Module:
    """A model in eval mode from a zoo name or a semcom checkpoint path.

    Checkpoints load through :func:`semcom.models.checkpoint.load_checkpoint`
    (safetensors, no pickle). A missing file or zoo entry raises InputError.
    """
    if is_checkpoint_path(spec):
        from semcom.models.checkpoint import load_checkpoint

        if not Path(spec).is_file():
            raise InputError(f"checkpoint {str(spec)!r} does not exist")
        model, _ = load_checkpoint(spec)
        return model.eval()
    return load_pretrained(str(spec))
