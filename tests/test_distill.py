"""Distillation of the patch-ranking ViT: views, the teacher cache, the vit-distill recipe
(a tiny TFLite teacher the suite builds; never the real model files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from semcom.errors import InputError
from semcom.train.teacher import TeacherCache, dataset_logits, render_views, view_boxes


def test_view_boxes_stay_inside_and_view_zero_is_the_image() -> None:
    b = view_boxes(50, 5, 64, seed=3)
    assert b.shape == (50, 5, 5) and b.dtype == torch.int64
    assert (b[:, 0] == torch.tensor([0, 0, 64, 64, 0])).all()
    x0, y0, w, h, flip = b.unbind(-1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + w <= 64).all() and (y0 + h <= 64).all()
    assert (w >= 8).all() and (h >= 8).all() and set(flip.unique().tolist()) <= {0, 1}
    assert torch.equal(b, view_boxes(50, 5, 64, seed=3)) and not torch.equal(
        b, view_boxes(50, 5, 64, 4)
    )


def test_render_views_crops_and_mirrors() -> None:
    img = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).expand(1, 3, 4, 4).contiguous()
    whole = render_views(img, torch.tensor([[0, 0, 4, 4, 0]]))
    assert torch.equal(whole, img)
    mirrored = render_views(img, torch.tensor([[0, 0, 4, 4, 1]]))
    assert torch.equal(mirrored, img.flip(-1))
    crop = render_views(img, torch.tensor([[2, 2, 2, 2, 0]]))  # bottom-right quarter, x2
    assert crop.shape == img.shape and int(crop[0, 0, 0, 0]) == 10 and int(crop[0, 0, 3, 3]) == 15


def test_dataset_logits_group_the_judge_classes() -> None:
    scores = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
    cmap = torch.tensor([-1, 1, 0, 1])
    out = dataset_logits(scores, cmap, 3)
    assert torch.allclose(out[0, :2].exp(), torch.tensor([0.3, 0.6]))
    assert out[0, 2] == float("-inf")  # no judge class means dataset class 2
    assert torch.equal(dataset_logits(scores, None, 4), scores)
    with pytest.raises(InputError):
        dataset_logits(scores, None, 3)


class _Colours(torch.utils.data.Dataset):
    """Toy dataset: 24 images 16x16 of a dominant colour (label = channel)."""

    def __init__(self, classes: list[str], n: int = 24) -> None:
        g = torch.Generator().manual_seed(0)
        self.classes, self.num_classes = classes, len(classes)
        self.items = []
        for i in range(n):
            x = torch.randint(0, 60, (3, 16, 16), generator=g, dtype=torch.uint8)
            x[i % 3] += 180
            self.items.append((x, i % 3))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def test_vit_distill_trains_caches_and_reuses_the_teacher(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("ai_edge_litert.interpreter")
    pytest.importorskip("tflite")
    import tests.tflite_models as tfm
    from semcom.train.loop import fit
    from semcom.train.recipes import DistillRecipe

    wnids = [f"n{i:08d}" for i in range(1000)]
    tfm.write_classifier(tmp_path / "t.tflite", size=16)  # brightest channel c -> output c + 1
    (tmp_path / "imagenet_synsets.txt").write_text("\n".join(wnids))
    data = _Colours(wnids[:3])
    out = tmp_path / "run"

    def recipe() -> DistillRecipe:
        return DistillRecipe(
            teacher=f"tflite-classifier={tmp_path / 't.tflite'}", views=3, data=data,
            eval_data=data, dataset="colours", cache_dir=out, image_size=16,
            model_kw={"img_size": 16, "embed_dim": 32, "depth": 1, "num_heads": 2},
        )  # fmt: skip

    r = recipe()
    res = fit(r, out, steps=3, batch_size=8, eval_n=8, quiet=True, resume=False)
    cache = r.cache
    assert cache is not None and cache.logits.shape == (24, 3, 3)
    # the teacher's answer on the whole image is the dominant colour
    labels = torch.tensor([y for _, y in data.items])
    assert torch.equal(cache.logits[:, 0].float().argmax(1), labels)
    assert (out / "teacher.safetensors").is_file()
    assert {"accuracy", "accuracy_attn_r0.25"} <= set(res.metrics)
    meta = json.loads((out / "metrics.json").read_text())
    assert json.dumps(meta)  # the run's settings are recorded as JSON

    def no_build(*a, **k):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(TeacherCache, "build", classmethod(no_build))
    r2 = recipe()
    fit(r2, tmp_path / "run2", steps=1, batch_size=8, eval_n=0, quiet=True, resume=False)
    assert torch.equal(r2.cache.logits, cache.logits)


def test_vit_distill_refuses_bad_settings(tmp_path: Path) -> None:
    from semcom.train.cli import main

    base = ["--model", "vit-distill", "--out", str(tmp_path / "o"), "--steps", "1"]
    assert main(base) == 2  # no teacher, synthetic data
    assert main([*base, "--teacher", "psnr", "--views", "0"]) == 2


def test_vit_distill_with_a_pretrained_frozen_stem(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert.interpreter")
    pytest.importorskip("tflite")
    import tests.tflite_models as tfm
    from semcom.models.checkpoint import save_checkpoint
    from semcom.models.mobilenet_v2 import MobileNetV2
    from semcom.train.loop import fit
    from semcom.train.recipes import DistillRecipe

    wnids = [f"n{i:08d}" for i in range(1000)]
    tfm.write_classifier(tmp_path / "t.tflite", size=16)
    (tmp_path / "imagenet_synsets.txt").write_text("\n".join(wnids))
    data = _Colours(wnids[:3])
    torch.manual_seed(3)
    src = MobileNetV2(num_classes=3, width=0.35)
    save_checkpoint(src, tmp_path / "mnv2.safetensors", name="mobilenet-v2")
    kw = dict(
        teacher=f"tflite-classifier={tmp_path / 't.tflite'}", views=2, data=data,
        eval_data=data, dataset="colours", image_size=16, arch="vit-hybrid-mnv2",
        model_kw={"embed_dim": 16, "depth": 1, "num_heads": 2, "stem_width": 0.35,
                  "stem_blocks": 6, "stem_input_size": 16},
    )  # fmt: skip
    r = DistillRecipe(stem=str(tmp_path / "mnv2.safetensors"), cache_dir=tmp_path / "a", **kw)
    res = fit(r, tmp_path / "a", steps=2, batch_size=8, eval_n=8, quiet=True, resume=False)
    sd = res.model.state_dict()
    # the stem kept the MobileNetV2's weights (frozen), the rest trained
    assert torch.equal(sd["patch_embed.blocks.3.expand.weight"], src.blocks[3].expand.weight)
    assert torch.equal(sd["patch_embed.stem.weight"], src.stem.weight)
    with pytest.raises(InputError, match="hybrid"):  # a stem for a plain ViT
        kw2 = {
            **kw,
            "arch": "vit-edge-synth",
            "model_kw": {"img_size": 16, "embed_dim": 16, "num_heads": 2},
        }
        r2 = DistillRecipe(stem=str(tmp_path / "mnv2.safetensors"), cache_dir=tmp_path / "b", **kw2)
        fit(r2, tmp_path / "b", steps=1, batch_size=8, eval_n=0, quiet=True, resume=False)
    with pytest.raises(InputError, match="no checkpoint"):
        r3 = DistillRecipe(stem=str(tmp_path / "none.safetensors"), cache_dir=tmp_path / "c", **kw)
        fit(r3, tmp_path / "c", steps=1, batch_size=8, eval_n=0, quiet=True, resume=False)
