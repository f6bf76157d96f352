"""The pretrained zoo: every entry's file exists, matches its sha256, loads and scores
within tolerance of its recorded metrics on the synthetic test split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from semcom.errors import BitstreamError, InputError
from semcom.models import create_model, list_models
from semcom.models import zoo as zoo_mod
from semcom.models.zoo import file_sha256, list_zoo, load_pretrained, zoo_dir, zoo_entry

ENTRIES = list_zoo()
MAIN_METRIC = {
    "classify": "accuracy",
    "segment": "miou",
    "reconstruct": "psnr",
    "codec": "psnr",
    "caption": "exact_match",
    "generate": "shape_accuracy",
}


def test_zoo_index_is_complete() -> None:
    assert {"shape-classifier", "shape-segmenter"} <= set(ENTRIES)
    doc = json.loads((zoo_dir() / "zoo.json").read_text())
    total = 0
    for e in doc["models"]:
        assert e.get("arch", e["name"]) in list_models()
        for key in ("file", "sha256", "config", "train", "metrics", "check", "tolerance", "task"):
            assert key in e, (e["name"], key)
        assert e["train"]["command"].startswith("python -m semcom.train ")
        assert e["metrics"]["split"] == "test" and e["metrics"]["n"] >= 256
        total += (zoo_dir() / e["file"]).stat().st_size
        assert (zoo_dir() / e["file"]).stat().st_size <= 3_500_000
    assert total <= 20_000_000


@pytest.mark.parametrize("name", ENTRIES)
def test_zoo_entry_loads_and_scores(name: str) -> None:
    from semcom.train import evaluate

    e = zoo_entry(name)
    path = zoo_dir() / e["file"]
    assert path.is_file()
    assert file_sha256(path) == e["sha256"]
    model = create_model(name, pretrained=True)
    assert not model.training and model.config == e["config"]
    metric = MAIN_METRIC[e["task"]]
    n = e["check"]["n"]
    # the generator draws three images per test image (about 0.2 s each): 64 of them
    assert n == (64 if e["task"] == "generate" else 256)
    got = evaluate(model, split="test", n=n)[metric]
    # Same weights, same images: the 256-image score is reproduced (to float noise) ...
    assert got == pytest.approx(e["check"][metric], abs=1.5 / n)
    # ... and lies within the retraining tolerance (plus sampling error) of the headline.
    assert abs(got - e["metrics"][metric]) <= e["tolerance"][metric] + 3 * (0.25 / n) ** 0.5


def test_unknown_zoo_entry() -> None:
    with pytest.raises(InputError, match="shape-classifier"):
        zoo_entry("nope")


def test_pretrained_rejects_conflicting_config() -> None:
    with pytest.raises(InputError):
        create_model("shape-classifier", pretrained=True, widths=[8, 8, 8, 8])


def test_sha_mismatch_is_bitstream_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "shape-classifier"
    e = zoo_entry(name)
    fake = tmp_path / "zoo"
    fake.mkdir()
    shutil.copy(zoo_dir() / "zoo.json", fake / "zoo.json")
    data = bytearray((zoo_dir() / e["file"]).read_bytes())
    data[-1] ^= 0x01  # one flipped bit in the last weight
    (fake / e["file"]).write_bytes(bytes(data))
    monkeypatch.setattr(zoo_mod, "zoo_dir", lambda: fake)
    zoo_mod.forget_index()
    try:
        with pytest.raises(BitstreamError, match="sha256"):
            load_pretrained(name)
        (fake / e["file"]).unlink()
        with pytest.raises(InputError, match="missing"):
            load_pretrained(name)
    finally:
        zoo_mod.forget_index()


def test_pretrained_features_are_deterministic() -> None:
    m = load_pretrained("shape-classifier")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    f1 = m.features(x)
    f2 = m.features(x)
    assert all(torch.equal(a, b) for a, b in zip(f1, f2, strict=True))
