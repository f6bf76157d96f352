"""The hybrid ViT (MobileNetV2 blocks as the patch embedding): token grid, the keep
contract, pretrained stems, checkpoints and the vit-distill recipe's --stem."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from semcom.errors import InputError
from semcom.models.mobilenet_v2 import MobileNetV2
from semcom.models.registry import create_model
from semcom.models.vit_hybrid import HybridVisionTransformer, load_stem, stem_flops


def _tiny(**kw) -> HybridVisionTransformer:
    torch.manual_seed(0)
    cfg = dict(
        num_classes=5, embed_dim=32, depth=2, num_heads=2, stem_width=0.35,
        stem_blocks=6, stem_input_size=64,
    )  # fmt: skip
    cfg.update(kw)
    return create_model("vit-hybrid-mnv2", **cfg).eval()


def test_tokens_follow_the_patch_grid_and_the_outputs_are_those_of_a_vit() -> None:
    m = _tiny()
    assert m.grid_size == 8 and m.num_patches == 64 and m.num_prefix_tokens == 2
    x = torch.rand(3, 3, 64, 64)
    assert m.patch_embed(x).shape == (3, 64, 32)
    out = m(x, return_attention="rollout")
    assert out["logits"].shape == (3, 5) and out["attention"].shape == (3, 64)
    assert torch.allclose(out["attention"].sum(1), torch.ones(3))


def test_keep_blanks_the_dropped_patches_before_the_stem() -> None:
    m = _tiny()
    x = torch.rand(2, 3, 64, 64)
    keep = torch.tensor([[0, 9, 63], [5, 6, 7]])
    a = m(x, keep=keep)["logits"]
    y = x.clone()
    y[:, :, 24:40, 24:40] = torch.rand(2, 3, 16, 16)  # patches 27/28/35/36: none kept
    assert torch.allclose(m(y, keep=keep)["logits"], a, atol=1e-6)
    y[0, :, 0:8, 0:8] = 0  # patch 0 of image 0 is kept: its pixels matter
    assert not torch.allclose(m(y, keep=keep)["logits"][0], a[0], atol=1e-6)
    att = m(x, keep=keep, return_attention="mean")["attention"]
    assert (att[0, [1, 2, 3]] == 0).all() and torch.allclose(att.sum(1), torch.ones(2))


def test_a_grid_that_does_not_match_is_refused() -> None:
    with pytest.raises(InputError, match="stem_input_size 128"):
        _tiny(stem_input_size=96, stem_blocks=13)  # stride 16: 6 cells, not 8
    with pytest.raises(InputError, match="stem_blocks"):
        _tiny(stem_blocks=0)
    with pytest.raises(InputError, match="stem_width"):
        _tiny(stem_width=-1.0)


def test_load_stem_copies_and_freezes_the_mobilenet_blocks() -> None:
    m = _tiny()
    torch.manual_seed(1)
    src = MobileNetV2(num_classes=7, width=0.35)
    frozen = load_stem(m, src)
    assert "patch_embed.stem.weight" in frozen and "patch_embed.blocks.5.project.bias" in frozen
    assert not any(n.startswith("patch_embed.proj") for n in frozen)
    sd = m.state_dict()
    assert torch.equal(sd["patch_embed.blocks.5.depthwise.weight"], src.blocks[5].depthwise.weight)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert "patch_embed.proj.weight" in trainable and "head.weight" in trainable
    assert not any(n.startswith(("patch_embed.stem", "patch_embed.blocks")) for n in trainable)
    # the frozen stem's features equal the MobileNetV2's own
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        y = torch.nn.functional.relu6(src.stem(x * 2 - 1))
        for b in src.blocks[:6]:
            y = b(y)
        assert torch.allclose(m.patch_embed.features(x), y, atol=1e-5)
    with pytest.raises(InputError, match="do not fit"):
        load_stem(m, MobileNetV2(num_classes=7, width=1.0))
    with pytest.raises(InputError, match="mobilenet-v2"):
        load_stem(m, torch.nn.Linear(2, 2))


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    from semcom.models.checkpoint import save_checkpoint
    from semcom.models.zoo import load_model

    m = _tiny()
    path = tmp_path / "h.safetensors"
    save_checkpoint(m, path, name="vit-hybrid-mnv2")
    back = load_model(path)
    assert isinstance(back, HybridVisionTransformer) and back.config == m.config
    x = torch.rand(2, 3, 64, 64)
    assert torch.allclose(back(x)["logits"], m(x)["logits"], atol=1e-6)


def test_stem_flops_counts_the_convs() -> None:
    m = _tiny()
    flops = stem_flops(m.config)
    assert flops > 2 * 64 * 3 * 64 * 32  # more than a pixel projection of the same tokens
    assert stem_flops({"embed_dim": 8}) == 0
    from semcom.models.vit import count_flops

    with pytest.raises(InputError, match="stem_flops"):
        count_flops(m, 1)


def test_conv_stem_hybrid_trains_from_scratch_shapes_and_keep() -> None:
    torch.manual_seed(0)
    m = create_model("vit-hybrid-synth", num_classes=4, embed_dim=16, depth=1, num_heads=2)
    assert m.config["stem"] == "conv" and m.grid_size == 8
    names = set(m.state_dict())
    assert {"patch_embed.convs.2.conv.weight", "patch_embed.convs.2.bn.running_var"} <= names
    m.train()
    x = torch.rand(4, 3, 64, 64)
    loss = m(x, keep=torch.arange(10).expand(4, 10))["logits"].sum()
    loss.backward()
    assert m.patch_embed.convs[0].conv.weight.grad is not None
    m.eval()
    keep = torch.tensor([[0, 1], [62, 63]])
    y = x.clone()
    y[:, :, 24:40, 24:40] = 0.5  # none of those patches kept
    assert torch.allclose(m(x[:2], keep=keep)["logits"], m(y[:2], keep=keep)["logits"], atol=1e-6)
    assert stem_flops(m.config) > 0
    with pytest.raises(InputError, match="stem_input_size"):
        create_model("vit-hybrid-synth", num_classes=4, stem_input_size=32)
    with pytest.raises(InputError, match="stem must be"):
        create_model("vit-hybrid-synth", num_classes=4, stem="resnet")


def test_shape_cnn_stem_is_the_classifiers_start_frozen_in_eval_mode() -> None:
    """vit-hybrid-shape: load_stem copies a shape-classifier's stem and first two stages
    (weights and running statistics); its features equal the classifier's; in train mode
    the frozen batch norms stay in eval mode (the running statistics do not move)."""
    from semcom.models.classifier import ShapeClassifier

    torch.manual_seed(0)
    src = ShapeClassifier(num_classes=4).eval()
    with torch.no_grad():  # non-trivial running statistics
        for mod in src.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    m = create_model("vit-hybrid-shape", num_classes=4, embed_dim=16, depth=1, num_heads=2)
    frozen = load_stem(m, src)
    assert "patch_embed.stages.1.block.conv.weight" in frozen
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        want = src.features(x)[2]
    assert torch.allclose(m.patch_embed.features(x), want, atol=1e-5)
    m.train()
    assert not m.patch_embed.stem.training and m.patch_embed.proj.training
    before = m.patch_embed.stages[0].down.norm.running_mean.clone()
    out = m(x, keep=torch.arange(12).expand(3, 12))["logits"]
    out.sum().backward()
    assert torch.equal(m.patch_embed.stages[0].down.norm.running_mean, before)
    assert m.patch_embed.proj.weight.grad is not None
    assert m.patch_embed.stem.conv.weight.grad is None
    with pytest.raises(InputError, match="shape-classifier"):
        load_stem(m, MobileNetV2(num_classes=7, width=0.35))
    with pytest.raises(InputError, match="do not fit"):
        load_stem(m, ShapeClassifier(num_classes=4, widths=[8, 8, 8, 8]))
    with pytest.raises(InputError, match="stem_widths"):
        create_model("vit-hybrid-shape", num_classes=4, stem_widths=[24, 32])
    assert stem_flops(m.config) > 0
