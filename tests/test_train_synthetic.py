"""Training on the synthetic world: batch seeds, aux mask loss, CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from semcom.data import CLASS_NAMES, SPLITS
from semcom.models import create_model, load_checkpoint
from semcom.train import SyntheticSource, evaluate, main, train_task_model
from semcom.train.recipes.base import mask_at

TINY = {"widths": [8, 8, 16, 16]}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_default_num_classes_come_from_the_world() -> None:
    assert create_model("shape-classifier").num_classes == len(CLASS_NAMES)
    assert create_model("shape-segmenter").config["num_classes"] == len(CLASS_NAMES)


def test_synthetic_source_seeds() -> None:
    src = SyntheticSource("classify", seed=0, image_size=16)
    lo, hi = SPLITS["train"]
    s0, s1 = src.global_seeds(0, 8), src.global_seeds(1, 8)
    assert s0.dtype == torch.int64 and len(set(s0.tolist()) | set(s1.tolist())) == 16
    assert all(lo <= int(s) < hi for s in torch.cat([s0, s1]))
    assert torch.equal(
        SyntheticSource("classify", seed=0).global_seeds(5, 8), src.global_seeds(5, 8)
    )
    assert not torch.equal(SyntheticSource("classify", seed=1).global_seeds(0, 8), s0)
    # Ranks shard the global batch by seed: together they see exactly the global batch.
    x, y, m = src.batch(0, 8)
    x0, y0, _ = src.batch(0, 8, rank=0, world=2)
    x1, y1, _ = src.batch(0, 8, rank=1, world=2)
    assert x.shape == (8, 3, 16, 16) and x.dtype == torch.float32 and m.shape == (8, 16, 16)
    assert torch.equal(y[0::2], y0) and torch.equal(y[1::2], y1)
    assert torch.equal(x[1::2], x1)


def test_mask_at_samples_cell_centres() -> None:
    masks = torch.arange(64).view(1, 8, 8)
    out = mask_at(masks, (2, 2))
    assert out.tolist() == [[[2 * 8 + 2, 2 * 8 + 6], [6 * 8 + 2, 6 * 8 + 6]]]


def test_train_classifier_with_aux_and_resume(tmp_path: Path) -> None:
    kw = dict(batch_size=8, image_size=16, model_kw=TINY, eval_n=16, quiet=True, lr=3e-3)
    full = train_task_model("shape-classifier", tmp_path / "a", steps=4, **kw)
    part = train_task_model("shape-classifier", tmp_path / "b", steps=4, stop_after=2, **kw)
    rest = train_task_model("shape-classifier", tmp_path / "b", steps=4, **kw)
    assert part.losses + rest.losses == full.losses
    assert full.metrics["split"] == "val" and full.metrics["n"] == 16
    assert rest.metrics == full.metrics
    # The aux loss is part of the objective: without it the losses differ.
    noaux = train_task_model("shape-classifier", tmp_path / "c", steps=2, aux_weight=0.0, **kw)
    assert noaux.losses[0] < full.losses[0]


def test_evaluate_segmenter_on_synthetic() -> None:
    m = create_model("shape-segmenter", **TINY)
    out = evaluate(m, split="test", n=4, image_size=16)
    assert out["n"] == 4 and 0.0 <= out["miou"] <= 1.0 and 0.0 <= out["pixel_accuracy"] <= 1.0
    assert len(out["iou"]) == len(CLASS_NAMES) + 1


def test_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["--model", "shape-segmenter", "--out", str(out), "--steps", "2", "--batch-size", "4"]
    argv += ["--image-size", "16", "--eval-n", "4", "--quiet", "--model-kw", json.dumps(TINY)]
    assert main(argv) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["step"] == 2 and "miou" in line
    model, meta = load_checkpoint(out / "shape-segmenter.safetensors")
    assert meta.step == 2 and meta.config["widths"] == TINY["widths"]
    assert json.loads((out / "metrics.json").read_text())["args"]["batch_size"] == 4
    # Running again resumes at the end: no new steps, same metrics.
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["miou"] == line["miou"]
