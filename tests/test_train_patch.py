"""Training recipes of attention-guided patch transmission (``semcom.train.recipes``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import semcom.data
from semcom.errors import InputError
from semcom.models import create_model, load_checkpoint, save_checkpoint
from semcom.train import main, train_patch_model
from semcom.train.patch import apply_keep, attention_coverage, main_object_share, select_patches
from semcom.train.recipes import PATCH_MODELS

SIZE = 32
VIT_KW = {"img_size": SIZE, "embed_dim": 32, "depth": 1, "num_heads": 2}
DEC_KW = {"widths": [8, 8, 16], "bottleneck_dilations": [1, 2]}
CLF_KW = {"num_classes": 3, "widths": [8, 8, 16, 16]}


pytestmark = pytest.mark.usefixtures("one_thread")


def _toy(n: int = 48, seed: int = 0) -> TensorDataset:
    """Class = the brightest colour channel; a bright square marks the object."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randint(0, 90, (n, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    for i in range(n):
        x[i, y[i], 8:24, 8:24] += 150
    return TensorDataset(x, y)


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Tiny random ViT, decoder and classifier checkpoints (paths)."""
    d = tmp_path_factory.mktemp("frozen")
    torch.manual_seed(0)
    vit = create_model("vit-edge-synth", num_classes=3, **VIT_KW)
    dec = create_model("patch-decoder", **DEC_KW)
    clf = create_model("shape-classifier", **CLF_KW)
    return {
        "vit": str(save_checkpoint(vit, d / "vit.safetensors")),
        "decoder": str(save_checkpoint(dec, d / "dec.safetensors")),
        "classifier": str(save_checkpoint(clf, d / "clf.safetensors")),
    }


def _smooth(n: int = 48, seed: int = 0) -> TensorDataset:
    """Flat backgrounds with one coloured square: easy to inpaint."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = (torch.rand(n, 3, 1, 1, generator=g) * 120).to(torch.uint8).expand(-1, -1, SIZE, SIZE)
    x = x.clone()
    for i in range(n):
        x[i, y[i], 8:24, 8:24] = 240
    return TensorDataset(x, y)


def _common(frozen: dict[str, str]) -> dict:
    return dict(image_size=SIZE, quiet=True, eval_n=0, ckpt_every=0, **frozen)


# --------------------------------------------------------------------------- helpers


def test_select_patches_counts_and_order() -> None:
    scores = torch.tensor([[0.1, 0.4, 0.2, 0.3], [0.25, 0.25, 0.25, 0.25]])
    keep = select_patches(torch.tensor([2, 3]), scores)
    assert keep.tolist() == [[False, True, False, True], [True, True, True, False]]
    torch.manual_seed(0)
    counts = torch.tensor([1, 5, 16, 64, 0])
    k = select_patches(counts, torch.rand(5, 16), torch.tensor([True, False] * 2 + [False]))
    assert k.sum(1).tolist() == [1, 5, 16, 16, 1]  # clamped to [1, P]
    # random rows ignore the scores: with all-equal scores they still vary
    eq = torch.ones(64, 16)
    r = select_patches(torch.full((64,), 4), eq, torch.zeros(64, dtype=torch.bool))
    assert r.sum(1).eq(4).all() and r.float().mean(0).std() < 0.2 and r[:, 4:].any()


def test_apply_keep_and_coverage() -> None:
    x = torch.rand(2, 3, 16, 16)
    keep = torch.tensor([[True, False, False, True], [False, False, False, True]])
    sparse, m = apply_keep(x, keep, 8)
    assert m.shape == (2, 1, 16, 16)
    assert torch.equal(sparse[0, :, :8, :8], x[0, :, :8, :8])
    assert sparse[0, :, :8, 8:].abs().sum() == 0 and sparse[1, :, :8, :8].abs().sum() == 0
    masks = torch.zeros(2, 16, 16, dtype=torch.int64)
    masks[:, 4:12, 4:12] = 3  # class 2 object across all four patches
    masks[:, 0, 0] = 5  # a distractor pixel (other class): not counted
    share = main_object_share(masks, torch.tensor([2, 2]), 8)
    assert share.tolist() == [[16.0] * 4] * 2
    cov = attention_coverage(keep, share)
    assert cov.tolist() == pytest.approx([0.5, 0.25])


def test_unknown_recipe_and_bad_args(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        train_patch_model("nope", tmp_path)
    with pytest.raises(InputError):
        train_patch_model("vit-synth", tmp_path, min_rate=0.0)
    with pytest.raises(InputError, match="data_root"):
        train_patch_model("vit-synth", tmp_path, dataset="tiny-imagenet")
    assert set(PATCH_MODELS) == {
        "vit-synth",
        "vit-distill",
        "server-synth",
        "patch-decoder-synth",
        "shape-classifier-ft",
        "vqvae-synth",
        "gos-vae-synth",
        "balle-synth",
        "text-diffusion-synth",
        "captioner-synth",
    }


# --------------------------------------------------------------------------- training


def _mean(v: list[float]) -> float:
    return sum(v) / len(v)


def test_vit_learns_on_dataset(tmp_path: Path) -> None:
    res = train_patch_model(
        "vit-synth", tmp_path, steps=40, batch_size=16, lr=3e-3, data=_toy(),
        eval_data=_toy(24, seed=1), model_kw=VIT_KW, image_size=SIZE, quiet=True, ckpt_every=0,
    )  # fmt: skip
    assert _mean(res.losses[-5:]) < 0.7 * _mean(res.losses[:5])
    assert res.metrics["accuracy"] > 0.6 and res.metrics["n"] == 24
    assert "accuracy_attn_r0.25" in res.metrics
    model, meta = load_checkpoint(tmp_path / "vit-synth.safetensors")
    assert meta.name == "vit-edge-synth" and model.config["num_classes"] == 3
    facts = json.loads((tmp_path / "metrics.json").read_text())
    assert facts["args"]["recipe"] == "vit-synth" and facts["step"] == 40


def test_decoder_learns(tmp_path: Path, frozen: dict[str, str]) -> None:
    res = train_patch_model(
        "patch-decoder-synth", tmp_path, steps=30, batch_size=8, lr=1e-2, data=_smooth(),
        model_kw=DEC_KW, **_common(frozen),
    )  # fmt: skip
    assert _mean(res.losses[-5:]) < 0.6 * _mean(res.losses[:5])


def test_decoder_resumes_bit_exactly(tmp_path: Path, frozen: dict[str, str]) -> None:
    kw = dict(steps=8, batch_size=8, lr=1e-2, data=_smooth(), model_kw=DEC_KW, **_common(frozen))
    full = train_patch_model("patch-decoder-synth", tmp_path / "a", **kw)
    part = train_patch_model("patch-decoder-synth", tmp_path / "b", **kw, stop_after=3)
    assert part.step == 3 and part.checkpoint is None
    assert (tmp_path / "b" / "last.safetensors").is_file()
    rest = train_patch_model("patch-decoder-synth", tmp_path / "b", **kw)
    assert rest.resumed_from == 3 and rest.step == 8
    assert rest.losses == full.losses[3:]
    a, b = full.model.state_dict(), rest.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a changed setting refuses to resume into the same directory
    with pytest.raises(InputError, match="settings changed"):
        train_patch_model("patch-decoder-synth", tmp_path / "b", **{**kw, "lr": 5e-3})


def test_decoder_eval_on_dataset(tmp_path: Path, frozen: dict[str, str]) -> None:
    res = train_patch_model(
        "patch-decoder-synth", tmp_path, steps=2, batch_size=8, lr=1e-3, data=_smooth(16),
        eval_data=_smooth(8, seed=2), model_kw=DEC_KW, perceptual_weight=0.5,
        perceptual_net=frozen["classifier"], **{**_common(frozen), "eval_n": 8},
    )  # fmt: skip
    assert res.losses[0] > 0
    m = res.metrics
    assert m["n"] == 8 and m["psnr"] == m["psnr_rand_r0.5"]
    assert m["psnr_paste_attn_r0.25"] >= m["psnr_attn_r0.25"]
    assert m["psnr_rand_r1.0"] > m["psnr_rand_r0.25"] - 1.0


def test_finetune_classifier_starts_from_given_weights(
    tmp_path: Path, frozen: dict[str, str]
) -> None:
    init, _ = load_checkpoint(frozen["classifier"])
    res = train_patch_model(
        "shape-classifier-ft", tmp_path, steps=25, batch_size=16, lr=5e-3, data=_toy(),
        eval_data=_toy(16, seed=3), **{**_common(frozen), "eval_n": 16},
    )  # fmt: skip
    assert res.model.config == init.config
    assert _mean(res.losses[-5:]) < _mean(res.losses[:5])
    assert {"accuracy", "acc_recon_attn_r0.25", "acc_recon_rand_r0.5"} <= set(res.metrics)
    _, meta = load_checkpoint(tmp_path / "shape-classifier-ft.safetensors")
    assert meta.name == "shape-classifier"
    # step 0 started from the given classifier: with lr tiny, weights barely move
    res0 = train_patch_model(
        "shape-classifier-ft", tmp_path / "z", steps=1, batch_size=4, lr=1e-9, data=_toy(8),
        **_common(frozen),
    )  # fmt: skip
    w0, w1 = init.state_dict()["head.fc.weight"], res0.model.state_dict()["head.fc.weight"]
    assert torch.allclose(w0, w1, atol=1e-6)


# --------------------------------------------------------------------------- synthetic / CLI


def test_vit_synthetic_attention_guidance(tmp_path: Path) -> None:
    guided = dict(attn_weight=5.0, aux_weight=1.0, eval_n=32, quiet=True, ckpt_every=0)
    res = train_patch_model(
        "vit-synth", tmp_path, steps=40, batch_size=16, lr=3e-3, model_kw=VIT_KW,
        image_size=SIZE, **guided,
    )  # fmt: skip
    m = res.metrics
    assert m["n"] == 32 and {"cover_attn_r0.25", "cover_rand_r0.25"} <= set(m)
    # attention guidance alone pulls the CLS attention onto the main object quickly
    assert m["cover_attn_r0.25"] > m["cover_rand_r0.25"] + 0.1


def test_cli_runs_decoder_recipe(
    tmp_path: Path, frozen: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--model", "patch-decoder-synth", "--out", str(tmp_path), "--steps", "3",
        "--batch-size", "4", "--lr", "1e-3", "--image-size", str(SIZE),
        "--model-kw", json.dumps(DEC_KW), "--vit", frozen["vit"], "--eval-n", "4", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["step"] == 3 and out["n"] == 4 and "psnr_attn_r0.25" in out
    assert out["split"] == "val"
    bad = ["--model", "vit-synth", "--out", str(tmp_path / "x"), "--dataset", "tiny-imagenet"]
    assert main(bad) == 2  # --data-root missing


# --------------------------------------------------------------------------- Tiny-ImageNet


def _write_tiny_imagenet(root: Path, wnids: list[str], per_class: int = 4) -> Path:
    """A miniature Tiny-ImageNet-200 tree (standard layout, 64x64 JPEGs)."""
    from PIL import Image

    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("".join(f"{w}\tthing {i}\n" for i, w in enumerate(wnids)))
    g = torch.Generator().manual_seed(0)
    ann = []
    for c, w in enumerate(wnids):
        d = base / "train" / w / "images"
        d.mkdir(parents=True)
        boxes = []
        for i in range(per_class + 1):
            arr = torch.randint(0, 80, (64, 64, 3), generator=g, dtype=torch.uint8)
            arr[16:48, 16:48, c % 3] = 230
            img = Image.fromarray(arr.numpy())
            if i < per_class:
                img.save(d / f"{w}_{i}.JPEG", quality=95)
                boxes.append(f"{w}_{i}.JPEG\t16\t16\t48\t48\n")
            else:
                name = f"val_{c}.JPEG"
                img.save(base / "val" / "images" / name, quality=95)
                ann.append(f"{name}\t{w}\t16\t16\t48\t48\n")
        (base / "train" / w / f"{w}_boxes.txt").write_text("".join(boxes))
    (base / "val" / "val_annotations.txt").write_text("".join(ann))
    return base


def test_tiny_imagenet_code_path(tmp_path: Path, frozen: dict[str, str]) -> None:
    base = _write_tiny_imagenet(tmp_path, ["n001", "n002", "n003"])
    ds = semcom.data.load_dataset("tiny-imagenet", root=base, split="train", size=64)
    assert len(ds) == 12
    tiny = dict(steps=2, batch_size=4, lr=1e-3, dataset="tiny-imagenet", data_root=base)
    tiny.update(quiet=True, ckpt_every=0)
    vit_kw = {"embed_dim": 32, "depth": 1, "num_heads": 2}
    res = train_patch_model(
        "vit-synth", tmp_path / "vit", **tiny | dict(steps=3, eval_n=0), model_kw=vit_kw
    )
    assert res.model.config["num_classes"] == 3 and res.model.config["img_size"] == 64
    assert res.metrics["split"] == "dataset" and res.metrics["n"] == 3
    vit_path = str(res.checkpoint)
    dec = train_patch_model(
        "patch-decoder-synth", tmp_path / "dec", **tiny, model_kw=DEC_KW, vit=vit_path
    )
    assert dec.metrics["n"] == 3 and "psnr_attn_r0.25" in dec.metrics
    clf = create_model("shape-classifier", **CLF_KW)
    clf_path = str(save_checkpoint(clf, tmp_path / "clf.safetensors"))
    frozen = dict(vit=vit_path, decoder=str(dec.checkpoint), classifier=clf_path)
    ft = train_patch_model("shape-classifier-ft", tmp_path / "ft", **tiny, **frozen)
    assert ft.metrics["n"] == 3 and "acc_recon_rand_r0.25" in ft.metrics


def test_task_model_trains_on_tiny_imagenet_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from semcom.models.checkpoint import load_checkpoint
    from semcom.train import main

    base = _write_tiny_imagenet(tmp_path, ["n001", "n002", "n003"])
    argv = ["--model", "shape-classifier", "--out", str(tmp_path / "c"), "--steps", "3"]
    argv += ["--batch-size", "4", "--dataset", "tiny-imagenet", "--data-root", str(base)]
    argv += ["--threads", "1", "--quiet"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["split"] == "dataset" and res["n"] == 3  # the 3 val images
    model, meta = load_checkpoint(res["checkpoint"])
    assert model.config["num_classes"] == 3
    # a missing data root is a one-line error, exit 2
    bad = [str(tmp_path / "none") if a == str(base) else a for a in argv]
    assert main(bad) == 2
    assert "error:" in capsys.readouterr().err


def test_augment_batch_flips_and_shifts() -> None:
    from semcom.train.recipes.classifier import augment_batch

    x = torch.rand(16, 3, 32, 32)
    torch.manual_seed(0)
    a = augment_batch(x)
    torch.manual_seed(0)
    assert torch.equal(a, augment_batch(x))  # deterministic under the step seed
    # two DDP-style shards (rows r::2 of the global batch) augment like the whole batch
    g = torch.Generator().manual_seed(5)
    whole = augment_batch(x, g)
    for r in (0, 1):
        rows = torch.arange(16)[r::2]
        part = augment_batch(x[r::2], torch.Generator().manual_seed(5), rows, 16)
        assert torch.equal(part, whole[r::2])
    assert a.shape == x.shape and not torch.equal(a, x)
    # every output is the input (or its mirror image) moved by at most 2 px
    for i in range(16):
        ok = False
        for src in (x[i], x[i].flip(-1)):
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    c = src[:, 2 + dy : 30 + dy, 2 + dx : 30 + dx]
                    ok |= torch.equal(a[i, :, 2:30, 2:30], c)
        assert ok
