"""Training loop: determinism, resume, datasets, evaluation helpers (no synthetic world)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from semcom.errors import BitstreamError, InputError
from semcom.models import load_checkpoint
from semcom.train import (
    DatasetSource,
    collate_items,
    evaluate,
    main,
    train_task_model,
)

TINY = {"num_classes": 3, "widths": [8, 8, 16, 16]}


pytestmark = pytest.mark.usefixtures("one_thread")


def _toy_classification(n: int = 48, size: int = 16) -> TensorDataset:
    """Class = which colour channel is brightest (learnable in a few steps)."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = torch.randint(0, 90, (n, 3, size, size), generator=g, dtype=torch.uint8)
    for i in range(n):
        x[i, y[i]] += 150
    return TensorDataset(x, y)


def _toy_segmentation(n: int = 16, size: int = 16) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, size, size, generator=g) * 0.2
    m = torch.zeros(n, size, size, dtype=torch.int64)
    for i in range(n):
        c = i % 3
        m[i, 4:12, 4:12] = c + 1
        x[i, c, 4:12, 4:12] += 0.7
    m[:, 0, 0] = 255  # ignored pixels
    return TensorDataset(x, m)


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _train_on(name: str, out: Path, ds: TensorDataset, **kw):
    """``name`` trained on ``ds`` and evaluated on it (lr 1e-2, the TINY config)."""
    return train_task_model(
        name, out, lr=1e-2, data=ds, model_kw=TINY, eval_data=ds, quiet=True, **kw
    )


def test_classifier_learns_from_dataset(tmp_path: Path) -> None:
    res = _train_on(
        "shape-classifier", tmp_path, _toy_classification(), steps=40, batch_size=16, eval_n=0
    )
    assert res.step == 40 and len(res.losses) == 40
    assert sum(res.losses[-5:]) / 5 < sum(res.losses[:5]) / 5
    assert res.metrics["accuracy"] >= 0.9
    facts = json.loads((tmp_path / "metrics.json").read_text())
    assert facts["step"] == 40 and facts["metrics"]["accuracy"] == res.metrics["accuracy"]
    model, meta = load_checkpoint(tmp_path / "shape-classifier.safetensors")
    assert (
        meta.step == 40 and json.loads(meta.extra["metrics"])["accuracy"] == res.metrics["accuracy"]
    )


def test_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    ds = _toy_classification()
    kw = dict(batch_size=8, lr=5e-3, data=ds, model_kw=TINY, eval_n=0, quiet=True, seed=3)
    full = train_task_model("shape-classifier", tmp_path / "a", steps=6, **kw)
    part = train_task_model("shape-classifier", tmp_path / "b", steps=6, stop_after=3, **kw)
    assert part.step == 3 and part.checkpoint is None and part.losses == full.losses[:3]
    res = train_task_model("shape-classifier", tmp_path / "b", steps=6, **kw)
    assert res.resumed_from == 3 and len(res.losses) == 3
    assert res.losses == full.losses[3:]
    pa, pb = _params(full.model), _params(res.model)
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    # Same seed, fresh dir: bit-identical; other seed: different.
    again = train_task_model("shape-classifier", tmp_path / "c", steps=6, **kw)
    assert again.losses == full.losses
    other = train_task_model("shape-classifier", tmp_path / "d", steps=6, **{**kw, "seed": 4})
    assert other.losses != full.losses


def test_resume_refuses_changed_settings(tmp_path: Path) -> None:
    ds = _toy_classification()
    kw = dict(batch_size=8, data=ds, model_kw=TINY, eval_n=0, quiet=True)
    train_task_model("shape-classifier", tmp_path, steps=2, **kw)
    with pytest.raises(InputError, match="lr"):
        train_task_model("shape-classifier", tmp_path, steps=4, lr=1e-4, **kw)
    with pytest.raises(InputError):
        train_task_model("shape-segmenter", tmp_path, steps=4, **kw)
    res = train_task_model("shape-classifier", tmp_path, steps=3, resume=False, lr=1e-4, **kw)
    assert res.resumed_from == 0


def test_resume_reads_its_files_as_untrusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``last_state.pt`` goes through ``load_torch_file`` (torch's zip format only) and
    ``last.safetensors`` is checked against the model from its header, before a tensor
    is read."""
    import semcom.models.tensor_files as tf

    ds = _toy_classification()
    kw = dict(batch_size=8, data=ds, model_kw=TINY, eval_n=0, quiet=True)
    train_task_model("shape-classifier", tmp_path, steps=4, stop_after=2, **kw)
    w_path, s_path = tmp_path / "last.safetensors", tmp_path / "last_state.pt"
    good_w, good_s = w_path.read_bytes(), s_path.read_bytes()
    # the legacy (non-zip) torch format: torch.load(weights_only=True) would read it
    state = torch.load(s_path, map_location="cpu", weights_only=True)
    torch.save(state, s_path, _use_new_zipfile_serialization=False)
    with pytest.raises(BitstreamError, match="not a torch zip file"):
        train_task_model("shape-classifier", tmp_path, steps=4, **kw)
    s_path.write_bytes(good_s)
    # weights of the wrong shape under the right metadata: refused from the header
    tensors, meta = tf.read_safetensors(good_w)
    tensors["head.fc.weight"] = torch.zeros(1000, *tensors["head.fc.weight"].shape[1:])
    w_path.write_bytes(tf.serialize_safetensors(tensors, meta))
    reads: list[str] = []
    real = tf.read_safetensors
    monkeypatch.setattr(tf, "read_safetensors", lambda *a, **k: reads.append("x") or real(*a, **k))
    with pytest.raises(BitstreamError, match="'head.fc.weight' has shape"):
        train_task_model("shape-classifier", tmp_path, steps=4, **kw)
    assert reads == []
    w_path.write_bytes(good_w)
    res = train_task_model("shape-classifier", tmp_path, steps=4, **kw)
    assert res.resumed_from == 2 and res.step == 4 and reads  # good files still resume


def test_segmenter_trains_on_dataset(tmp_path: Path) -> None:
    ds = _toy_segmentation()
    res = _train_on("shape-segmenter", tmp_path, ds, steps=25, batch_size=8)
    assert sum(res.losses[-3:]) < sum(res.losses[:3])
    m = res.metrics
    assert set(m) >= {"miou", "pixel_accuracy", "iou"} and m["n"] == len(ds)
    assert 0.0 <= m["miou"] <= 1.0 and m["pixel_accuracy"] > 0.6


def test_bad_arguments(tmp_path: Path) -> None:
    ds = _toy_classification()
    for kw in [dict(steps=0), dict(lr=-1.0), dict(schedule="linear"), dict(image_size=30)]:
        with pytest.raises(InputError):
            train_task_model("shape-classifier", tmp_path, data=ds, model_kw=TINY, **kw)
    with pytest.raises(InputError):
        train_task_model("nope", tmp_path, data=ds)
    with pytest.raises(InputError):
        train_task_model("shape-classifier", tmp_path, data=[], model_kw=TINY, steps=1)


def test_dataset_source_is_an_epoch_permutation() -> None:
    src = DatasetSource(list(range(10)), seed=0)
    first = src.global_indices(0, 5) + src.global_indices(1, 5)
    assert sorted(first) == list(range(10))
    assert src.global_indices(2, 5) != src.global_indices(0, 5) or True
    assert DatasetSource(list(range(10)), seed=0).global_indices(3, 4) == src.global_indices(3, 4)
    assert DatasetSource(list(range(10)), seed=1).global_indices(0, 10) != first


def test_collate_items_formats() -> None:
    img = torch.zeros(3, 4, 4, dtype=torch.uint8) + 255
    x, y = collate_items([(img, 1), {"image": img.permute(1, 2, 0).numpy(), "label": 2}])
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32 and float(x.max()) == 1.0
    assert y.tolist() == [1, 2]
    with pytest.raises(InputError):
        collate_items([(torch.zeros(3, 4, 4), 0), (torch.zeros(3, 5, 5), 0)])
    with pytest.raises(InputError):
        collate_items([42])


def test_evaluate_restores_mode() -> None:
    from semcom.models import create_model

    m = create_model("shape-classifier", **TINY).train()
    ds = _toy_classification(9)
    out = evaluate(m, data=ds, n=None)
    assert m.training and out["n"] == 9 and 0.0 <= out["accuracy"] <= 1.0


def test_cli_bad_model_kw(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--model", "shape-classifier", "--out", str(tmp_path), "--model-kw", "[1]"]) == 2
    assert main(["--model", "nope", "--out", str(tmp_path), "--steps", "1"]) == 2
    assert "unknown model" in capsys.readouterr().err
