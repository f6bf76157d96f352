"""Codec recipes on a real dataset at a non-square size, trained on random crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semcom.errors import InputError
from semcom.train.sources import CroppedSource, DatasetSource, parse_image_size

VQ_KW = {"r": 2, "K": 64, "widths": [8], "code_dim": 8, "depth": 0}


def test_image_sizes_parse_and_refuse() -> None:
    assert parse_image_size("64") == 64
    assert parse_image_size("240x320") == (240, 320)
    assert parse_image_size("16X24") == (16, 24)
    assert parse_image_size((8, 16)) == (8, 16)
    for bad in ("", "x", "12x16", "64x", "8x8x8", "0", "5000", "ax8", (8, 12)):
        with pytest.raises(InputError):
            parse_image_size(bad)  # type: ignore[arg-type]


class _Items:
    """Images whose pixel (row i, col j) holds 100 * item + row and col as channels."""

    def __init__(self, n: int, h: int, w: int) -> None:
        self.n, self.h, self.w = n, h, w

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.arange(self.h).view(-1, 1).expand(self.h, self.w)
        cols = torch.arange(self.w).view(1, -1).expand(self.h, self.w)
        img = torch.stack([torch.full_like(rows, i), rows, cols]).to(torch.uint8)
        return img, (rows * 1000 + cols).long()


def test_crops_are_windows_cut_with_their_masks_and_stateless() -> None:
    data = _Items(5, 24, 40)
    src = CroppedSource(DatasetSource(data, seed=3), 16, seed=3)
    x, y, m = src.batch(7, 4)
    assert x.shape == (4, 3, 16, 16) and y.shape == (4, 16, 16) and m is None
    for img, mask in zip(x, y, strict=True):
        rows = (img[1] * 255).round().long()
        cols = (img[2] * 255).round().long()
        assert torch.equal(mask, rows * 1000 + cols)  # the mask is cut and mirrored alike
        top, left = int(rows.min()), int(cols.min())
        assert 0 <= top <= 24 - 16 and 0 <= left <= 40 - 16
        step = int(cols[0, 1] - cols[0, 0])
        assert step in (1, -1) and (rows[:, 0] == torch.arange(top, top + 16)).all()
    again = CroppedSource(DatasetSource(data, seed=3), 16, seed=3).batch(7, 4)
    assert torch.equal(again[0], x)  # a function of (seed, step)
    shard = CroppedSource(DatasetSource(data, seed=3), 16, seed=3).batch(7, 4, rank=1, world=2)
    assert torch.equal(shard[0], x[1::2])  # ranks cut the global batch's windows
    flips = [CroppedSource(DatasetSource(data), 16, seed=s).batch(0, 8)[0] for s in range(4)]
    signs = {int(torch.sign(f[i, 2, 0, 1] - f[i, 2, 0, 0])) for f in flips for i in range(8)}
    assert signs == {1, -1}
    plain = CroppedSource(DatasetSource(data), 16, flip=False).batch(0, 8)[0]
    assert (plain[:, 2, 0, 1] > plain[:, 2, 0, 0]).all()
    with pytest.raises(InputError, match="larger than the images"):
        CroppedSource(DatasetSource(data), 32).batch(0, 2)
    for bad in (0, 12, -8, True):
        with pytest.raises(InputError):
            CroppedSource(DatasetSource(data), bad)


def _camvid(root: Path, n: int = 4, hw: tuple[int, int] = (36, 52)) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 255, (*hw, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / split / f"f{i}.png")
            lab = rng.integers(0, 12, hw, dtype=np.uint8)
            Image.fromarray(lab).save(root / f"{split}annot" / f"f{i}.png")
    return root


def test_vqvae_trains_on_crops_of_a_non_square_dataset_and_codes_whole_images(
    tmp_path: Path,
) -> None:
    from semcom.train.loop import train_patch_model

    root = _camvid(tmp_path / "camvid")
    res = train_patch_model(
        "vqvae-synth", tmp_path / "run", arch="vqvae", model_kw=VQ_KW, dataset="camvid",
        data_root=root, image_size=(24, 40), crop=16, steps=2, batch_size=4, eval_n=3,
        prior_images=8, quiet=True, ckpt_every=0,
    )  # fmt: skip
    assert res.metrics["n"] == 3 and res.metrics["split"] == "dataset"
    # the evaluation codes the whole 24 x 40 val images: (24/2) x (40/2) indices each
    assert res.metrics["bytes_fixed"] > (12 * 20 * 6) / 8
    assert res.model.prior.fitted


def test_train_cli_takes_hxw_and_refuses_bad_sizes_and_crops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from semcom.train.cli import main

    root = _camvid(tmp_path / "camvid")
    base = ["--model", "vqvae-synth", "--model-kw", '{"r": 2, "K": 64, "widths": [8], '
            '"code_dim": 8, "depth": 0}', "--steps", "1", "--batch-size", "2", "--eval-n", "2",
            "--quiet", "--out", str(tmp_path / "o")]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main([*base, "--image-size", "24x30"])
    assert exc.value.code == 2 and "multiples of 8" in capsys.readouterr().err
    assert main([*base, "--image-size", "24x32"]) == 2  # the synthetic world is square
    assert "square" in capsys.readouterr().err
    real = [*base, "--dataset", "camvid", "--data-root", str(root), "--image-size", "24x32"]
    assert main([*real, "--crop", "12"]) == 2
    assert "crop" in capsys.readouterr().err
    assert main([*real, "--crop", "40"]) == 2
    assert "larger than the images" in capsys.readouterr().err
    assert main([*real, "--crop", "16"]) == 0


def test_bench_takes_hxw_for_a_real_dataset_and_refuses_it_for_the_world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from semcom.cli.app import main

    root = _camvid(tmp_path / "camvid", n=3, hw=(30, 44))
    out = tmp_path / "rep"
    assert main(["bench", "--dataset", "camvid", "--data-root", str(root), "--split", "val",
                 "--n-images", "2", "--size", "24x32", "--channels", "ideal",
                 "--schemes", "jpeg[rates=400]", "--no-progress", "-o", str(out)]) == 0  # fmt: skip
    data = json.loads((out / "results.json").read_text())
    rec = (data if isinstance(data, list) else data["records"])[0]
    assert rec["bpp"] == pytest.approx(8 * rec["mean_bytes"] / (24 * 32))  # at 24 x 32
    capsys.readouterr()
    assert main(["bench", "--size", "24x32", "--n-images", "2", "--no-progress",
                 "--schemes", "jpeg", "-o", str(tmp_path / "r2")]) == 2  # fmt: skip
    assert "square" in capsys.readouterr().err
    assert main(["bench", "--size", "24x30", "--no-progress", "-o", str(out)]) == 2
    assert "multiples of 8" in capsys.readouterr().err


def test_an_hxw_run_resumes_and_balle_scores_sizes_its_stride_does_not_divide(
    tmp_path: Path,
) -> None:
    from semcom.train.loop import train_patch_model

    root = _camvid(tmp_path / "camvid", n=2, hw=(40, 56))
    kw = dict(arch="vqvae", model_kw=VQ_KW, dataset="camvid", data_root=root,
              image_size=(24, 40), crop=16, batch_size=2, eval_n=2, prior_images=4,
              quiet=True, ckpt_every=1)  # fmt: skip
    train_patch_model("vqvae-synth", tmp_path / "run", steps=3, stop_after=2, **kw)
    res = train_patch_model("vqvae-synth", tmp_path / "run", steps=3, **kw)  # resumes
    assert res.step == 3
    balle = train_patch_model(
        "balle-synth", tmp_path / "b", arch="balle-factorized", model_kw={"N": 8, "M": 8},
        dataset="camvid", data_root=root, image_size=(24, 40), crop=16, batch_size=2,
        eval_n=2, steps=1, quiet=True, ckpt_every=0, task_loss="none", mse_weight=1.0,
    )  # fmt: skip
    assert balle.metrics["n"] == 2 and balle.metrics["bytes_per_image"] > 0
