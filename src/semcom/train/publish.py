"""Publishing into the pretrained zoo: the one writer of ``src/semcom/zoo/zoo.json``.

Maintenance helpers (used to build the shipped zoo); :mod:`semcom.models.zoo` reads and
verifies what they write.

* :func:`add_to_zoo` copies a trained checkpoint into the zoo, scores it with its
  recipe's evaluation and records the entry;
* :func:`refit_zoo_domain` fits a judge's domain check (:mod:`semcom.models.domain`)
  and records it (``python -m semcom.train.publish``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from semcom.models.tensor_files import atomic_write

__all__ = ["add_to_zoo", "refit_zoo_domain", "write_zoo_index"]


def add_to_zoo(
    checkpoint: str | Path,
    *,
    name: str | None = None,
    command: str,
    tolerance: dict[str, float],
    test_n: int = 2048,
    check_n: int = 256,
    train_facts: dict[str, Any] | None = None,
    directory: str | Path | None = None,
    half: bool = False,
) -> dict[str, Any]:
    """Copy a trained checkpoint into the zoo as ``<name>.safetensors``, score it on the
    test split, update ``zoo.json``; returns the entry (other entries are kept as they are).

    ``name``: the zoo name -- a patch-transmission recipe's (``"vit-synth"``, ...) or, by
    default, the checkpoint's model (a task model). The model is scored with the recipe's
    :meth:`~semcom.train.recipes.base.Recipe.score` on the first ``test_n`` synthetic
    test images (``metrics``, rounded) and on the first ``check_n`` (``check``: what the
    test-suite re-scores); a task model records its ``zoo_metrics``, a patch recipe
    every figure. The entry also records ``command`` (the exact
    ``python -m semcom.train ...`` line), ``train_facts`` (seed, steps, wall time, ...),
    the weights' fingerprint (``weights_sha256``) and ``tolerance`` (absolute, per
    metric; a metric without one gets the headline metric's, else 0.02). An entry whose
    name is not its architecture's (the recipes) records the architecture (``arch``),
    the zoo models its evaluation uses (``depends``) and their files' hashes at scoring
    time (``depends_sha256``: figures that involve a dependency are only reproducible
    while it is unchanged). ``half``: the zoo file holds the weights as float16 (for a
    model that would not fit the zoo's size budget otherwise); the figures are those of
    the rounded weights, as loaded from the zoo file.
    """
    from semcom.models.checkpoint import load_checkpoint
    from semcom.models.fingerprint import weights_sha256
    from semcom.models.zoo import file_sha256, zoo_dir, zoo_entry
    from semcom.train.recipes import zoo_recipe

    src = Path(checkpoint)
    model, meta = load_checkpoint(src)
    name = name or meta.name
    recipe = zoo_recipe(name, model)
    out_dir = Path(directory) if directory is not None else zoo_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    fname = f"{name}.safetensors"
    if half:
        from semcom.models.checkpoint import save_checkpoint

        save_checkpoint(model, out_dir / fname, name=meta.name, config=meta.config,
                        step=meta.step, extra=meta.extra, half=True)  # fmt: skip
        model, meta = load_checkpoint(out_dir / fname)  # scored as shipped: rounded
    elif src.resolve() != (out_dir / fname).resolve():
        shutil.copyfile(src, out_dir / fname)
    full = recipe.score(model, split="test", n=test_n, **recipe.depends)
    check = recipe.score(model, split="test", n=check_n, **recipe.depends)
    keys = [k for k in recipe.zoo_metrics or full if k in full and k not in ("split", "n")]
    named_as_arch = name == meta.name
    entry: dict[str, Any] = {"name": name, **({} if named_as_arch else {"arch": meta.name})}
    entry.update(
        file=fname,
        sha256=file_sha256(out_dir / fname),
        weights_sha256=weights_sha256(model),
        bytes=(out_dir / fname).stat().st_size,
        task=recipe.task,
        config=meta.config,
    )
    if not named_as_arch:
        entry["depends"] = dict(recipe.depends)
        entry["depends_sha256"] = {d: zoo_entry(z)["sha256"] for d, z in recipe.depends.items()}
    default_tol = tolerance.get(recipe.metric, 0.02)
    entry.update(
        train={"command": command, **(train_facts or {}), "step": meta.step},
        metrics={"split": "test", "n": full["n"], **{k: round(full[k], 4) for k in keys}},
        check={"split": "test", "n": check["n"], **{k: check[k] for k in keys}},
        tolerance={k: float(tolerance.get(k, default_tol)) for k in keys},
    )
    index = out_dir / "zoo.json"
    doc = json.loads(index.read_text("utf-8")) if index.is_file() else {"format_version": 1}
    models = [e for e in doc.get("models", []) if e.get("name") != name] + [entry]
    doc["models"] = sorted(models, key=lambda e: e["name"])
    write_zoo_index(index, doc)
    return entry


def write_zoo_index(index: Path, doc: dict[str, Any]) -> None:
    """Write ``zoo.json`` (``doc``) atomically and forget the cached index."""
    from semcom.models.zoo import forget_index

    atomic_write(index, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))
    forget_index()


def refit_zoo_domain(judge: str = "shape-classifier", n_fit: int = 4096, n_heldout: int = 2048):
    """Fit ``judge``'s domain check on the synthetic world and record it in the zoo
    (``<judge>.domain.safetensors`` + the ``domain_check`` entry of ``zoo.json``).
    A maintenance step: ``python -m semcom.train.publish``. Deterministic."""
    import torch

    from semcom.data.synthetic import SyntheticWorld
    from semcom.models.domain import QUANTILE, fit_domain, load_domain_check
    from semcom.models.zoo import file_sha256, load_pretrained, zoo_dir

    torch.set_num_threads(1)
    world = SyntheticWorld()
    model = load_pretrained(judge).eval()
    fit = world.generate(world.split_seeds("train", n_fit)).images
    held = world.generate(world.split_seeds("val", n_heldout)).images
    check = fit_domain(model, fit, held)
    path = check.save(zoo_dir() / f"{judge}.domain.safetensors")
    check = load_domain_check(path)  # as stored (float16 whitening)
    index = zoo_dir() / "zoo.json"
    doc = json.loads(index.read_text("utf-8"))
    for entry in doc["models"]:
        if entry["name"] == judge:
            entry["domain_check"] = {
                "file": path.name,
                "sha256": file_sha256(path),
                "threshold": round(check.threshold, 4),
                "fit": f"python -m semcom.train.publish: synthetic train (n={n_fit}), threshold"
                f" = {QUANTILE:.1%} quantile on val (n={n_heldout})",
                "measured": "python benchmarks/bench_domain.py --photos DIR ...",
            }
    write_zoo_index(index, doc)
    return check


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m semcom.train.publish",
        description="Refit the zoo classifier's domain check on the synthetic world and "
        "record it in the zoo (writes shape-classifier.domain.safetensors and zoo.json).",
    )
    parser.parse_args()
    print(f"threshold {refit_zoo_domain().threshold:.4f}")
