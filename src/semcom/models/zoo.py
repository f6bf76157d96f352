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
    "add_to_zoo",
    "is_checkpoint_path",
    "load_model",
    "file_sha256",
    "list_zoo",
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


def add_to_zoo(
    checkpoint: str | Path,
    *,
    command: str,
    tolerance: dict[str, float],
    test_n: int = 2048,
    check_n: int = 256,
    train_facts: dict[str, Any] | None = None,
    directory: str | Path | None = None,
) -> dict[str, Any]:
    """Copy a trained checkpoint into the zoo, score it on the test split, update ``zoo.json``.

    A maintenance helper (used to build the shipped zoo). The entry records ``command``
    (the exact ``python -m semcom.train ...`` line), ``train_facts`` (seed, steps, wall
    time, ...), the test metrics on ``test_n`` images, the ``check_n``-image figures the
    test-suite re-scores, and ``tolerance`` (absolute, per metric). Returns the entry.
    """
    import shutil

    from semcom.models.checkpoint import load_checkpoint
    from semcom.models.fingerprint import weights_sha256
    from semcom.train.evaluate import evaluate

    src = Path(checkpoint)
    model, meta = load_checkpoint(src)
    task = getattr(model, "task", None)
    keys = {"classify": ["accuracy"], "segment": ["miou", "pixel_accuracy"]}[task]
    full = evaluate(model, split="test", n=test_n)
    check = evaluate(model, split="test", n=check_n)
    out_dir = Path(directory) if directory is not None else zoo_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    fname = f"{meta.name}.safetensors"
    if src.resolve() != (out_dir / fname).resolve():
        shutil.copyfile(src, out_dir / fname)
    entry = {
        "name": meta.name,
        "file": fname,
        "sha256": file_sha256(out_dir / fname),
        "weights_sha256": weights_sha256(model),
        "bytes": (out_dir / fname).stat().st_size,
        "task": task,
        "config": meta.config,
        "train": {"command": command, **(train_facts or {}), "step": meta.step},
        "metrics": {"split": "test", "n": full["n"], **{k: round(full[k], 4) for k in keys}},
        "check": {"split": "test", "n": check["n"], **{k: check[k] for k in keys}},
        "tolerance": {k: float(tolerance.get(k, 0.02)) for k in keys},
    }
    index = out_dir / "zoo.json"
    doc = json.loads(index.read_text("utf-8")) if index.is_file() else {"format_version": 1}
    models = [e for e in doc.get("models", []) if e.get("name") != meta.name] + [entry]
    doc["models"] = sorted(models, key=lambda e: e["name"])
    write_zoo_index(index, doc)
    return entry


def write_zoo_index(index: Path, doc: dict[str, Any]) -> None:
    """Write ``zoo.json`` (``doc``) atomically and forget the cached index."""
    from semcom.models.checkpoint import _atomic_write

    _atomic_write(index, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))
    _index.cache_clear()
