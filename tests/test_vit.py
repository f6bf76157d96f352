"""Tests for semcom.models.vit: shapes, attention outputs, token subsets, timm key names."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from semcom.errors import BitstreamError, InputError
from semcom.models.registry import list_models
from semcom.models.vit import VisionTransformer, count_flops, create_vit
from semcom.models.vit_timm import load_timm_state_dict, resample_pos_embed

SMALL = dict(img_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=3, num_classes=5)
VARIANTS = {
    "cls": {},
    "distilled": {"distilled": True},
    "no_cls": {"class_token": False},
}


def make(seed: int = 0, dtype: torch.dtype = torch.float64, **kw) -> VisionTransformer:
    """A small random model; larger-than-default weights so attention is far from uniform."""
    torch.manual_seed(seed)
    m = VisionTransformer(**{**SMALL, **kw}).to(dtype).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if not name.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
                p.normal_(0.0, 0.3)
    return m


def images(n: int, seed: int = 1, size: int = 32, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g, dtype=dtype)


# ------------------------------------------------------------ naive reference
def _ln(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-6) * w + b


def naive_forward(m: VisionTransformer, x: torch.Tensor, keep=None):
    """Forward written directly from the parameters (no module code): logits and every
    layer's attention (N, H, T, T), all layers stored."""
    sd = m.state_dict()
    n, c, _, _ = x.shape
    p, g, d, h = m.patch_size, m.grid_size, m.embed_dim, m.num_heads
    pre = m.num_prefix_tokens
    patches = x.reshape(n, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(n, g * g, -1)
    w = sd["patch_embed.proj.weight"].reshape(d, -1)
    tok = patches @ w.T + sd["patch_embed.proj.bias"] + sd["pos_embed"][:, pre:]
    if keep is not None:
        tok = tok[torch.arange(n)[:, None], keep]
    prefix = []
    if m.class_token:
        prefix.append(sd["cls_token"].expand(n, 1, d))
    if m.distilled:
        prefix.append(sd["dist_token"].expand(n, 1, d))
    if prefix:
        tok = torch.cat([torch.cat(prefix, 1) + sd["pos_embed"][:, :pre], tok], 1)
    attns = []
    t = tok.shape[1]
    for i in range(m.depth):
        b = f"blocks.{i}."
        y = _ln(tok, sd[b + "norm1.weight"], sd[b + "norm1.bias"])
        qkv = y @ sd[b + "attn.qkv.weight"].T + sd[b + "attn.qkv.bias"]
        q, k, v = qkv.reshape(n, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), dim=-1)
        attns.append(a)
        o = (a @ v).transpose(1, 2).reshape(n, t, d)
        tok = tok + o @ sd[b + "attn.proj.weight"].T + sd[b + "attn.proj.bias"]
        y = _ln(tok, sd[b + "norm2.weight"], sd[b + "norm2.bias"])
        y = y @ sd[b + "mlp.fc1.weight"].T + sd[b + "mlp.fc1.bias"]
        y = 0.5 * y * (1 + torch.erf(y / math.sqrt(2)))
        tok = tok + y @ sd[b + "mlp.fc2.weight"].T + sd[b + "mlp.fc2.bias"]
    if not m.class_token:
        logits = _ln(tok.mean(1), sd["fc_norm.weight"], sd["fc_norm.bias"])
        return logits @ sd["head.weight"].T + sd["head.bias"], attns
    tok = _ln(tok, sd["norm.weight"], sd["norm.bias"])
    logits = tok[:, 0] @ sd["head.weight"].T + sd["head.bias"]
    if m.distilled:
        logits = (logits + tok[:, 1] @ sd["head_dist.weight"].T + sd["head_dist.bias"]) / 2
    return logits, attns


def naive_scores(m: VisionTransformer, attns, mode: str) -> torch.Tensor:
    """Reference patch scores over the token sequence (N, T - prefix)."""
    if mode == "mean":
        mat = attns[-1].mean(1)
    elif mode == "rollout-ref":  # Im et al.'s code: per head (A + I), product, head mean
        eye = torch.eye(attns[0].shape[-1], dtype=attns[0].dtype)
        mat = attns[0] + eye
        for a in attns[1:]:
            mat = (a + eye) @ mat
        mat = mat.mean(1)
    else:  # rollout: store every layer, then multiply R = A'_L ... A'_1
        eye = torch.eye(attns[0].shape[-1], dtype=attns[0].dtype)
        factors = []
        for a in attns:
            f = 0.5 * a.mean(1) + 0.5 * eye
            factors.append(f / f.sum(-1, keepdim=True))
        mat = factors[0]
        for f in factors[1:]:
            mat = f @ mat
    row = mat[:, 0] if m.class_token else mat.mean(1)
    row = row[:, m.num_prefix_tokens :]
    return row / row.sum(1, keepdim=True)


# ------------------------------------------------------------------- tests
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", [None, "mean", "rollout", "rollout-ref"])
def test_shapes_and_attention_normalised(variant, mode):
    m = make(**VARIANTS[variant], dtype=torch.float32)
    with torch.no_grad():
        out = m(images(4, dtype=torch.float32), return_attention=mode)
    assert out["logits"].shape == (4, 5) and out["logits"].dtype == torch.float32
    if mode is None:
        assert set(out) == {"logits"}
        return
    a = out["attention"]
    assert a.shape == (4, m.num_patches) and a.dtype == torch.float32
    assert bool((a >= 0).all())
    torch.testing.assert_close(a.sum(1), torch.ones(4), atol=1e-5, rtol=0)
    # the scores are informative (not uniform) for this random model
    assert float(a.std(1).min()) > 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_naive_reference(variant):
    m = make(**VARIANTS[variant])
    x = images(3)
    ref_logits, ref_attn = naive_forward(m, x)
    with torch.no_grad():
        for mode in (None, "mean", "rollout", "rollout-ref"):
            out = m(x, return_attention=mode)
            torch.testing.assert_close(out["logits"], ref_logits, rtol=1e-9, atol=1e-9)
            if mode is not None:
                ref = naive_scores(m, ref_attn, mode).float()
                torch.testing.assert_close(out["attention"], ref, rtol=1e-5, atol=1e-7)
        maps = m.attention_maps(x)
    assert len(maps) == m.depth
    for got, ref in zip(maps, ref_attn, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12)


def test_rollout_differs_from_mean_and_from_last_layer_only():
    m = make()
    x = images(2)
    with torch.no_grad():
        mean = m(x, return_attention="mean")["attention"]
        roll = m(x, return_attention="rollout")["attention"]
    assert float((mean - roll).abs().max()) > 1e-3


def test_sdpa_and_explicit_paths_agree_float32(monkeypatch):
    """The fast path (SDPA everywhere) and the explicit-softmax paths give the same logits;
    SDPA is really used exactly in the layers whose attention is not requested."""
    m = make(dtype=torch.float32, depth=4)
    x = images(6, dtype=torch.float32)
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    logits = {}
    with torch.no_grad():
        for mode, expected_calls in ((None, 4), ("mean", 3), ("rollout", 0)):
            calls.clear()
            logits[mode] = m(x, return_attention=mode)["logits"]
            assert len(calls) == expected_calls, mode
    torch.testing.assert_close(logits["mean"], logits[None], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits["rollout"], logits[None], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_keep_all_equals_no_keep_in_any_order(variant):
    m = make(**VARIANTS[variant])
    x = images(3)
    p = m.num_patches
    with torch.no_grad():
        full = m(x, return_attention="rollout")
        ident = m(x, keep=torch.arange(p).repeat(3, 1), return_attention="rollout")
        g = torch.Generator().manual_seed(0)
        perm = torch.stack([torch.randperm(p, generator=g) for _ in range(3)])
        shuffled = m(x, keep=perm, return_attention="rollout")
        mean_full = m(x, return_attention="mean")["attention"]
        mean_shuf = m(x, keep=perm, return_attention="mean")["attention"]
    for out in (ident, shuffled):
        torch.testing.assert_close(out["logits"], full["logits"], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(out["attention"], full["attention"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(mean_shuf, mean_full, rtol=1e-5, atol=1e-7)


def test_keep_subset_semantics():
    m = make()
    x = images(2)
    keep = torch.tensor([[0, 5, 6, 15], [3, 9, 10, 12]])
    with torch.no_grad():
        out = m(x, keep=keep, return_attention="mean")
        ref_logits, ref_attn = naive_forward(m, x, keep=keep)
        # the kept subset is a real change of input
        assert float((out["logits"] - m(x)["logits"]).abs().max()) > 1e-3
        torch.testing.assert_close(out["logits"], ref_logits, rtol=1e-9, atol=1e-9)
        # attention scattered back to patch positions, zeros elsewhere
        a = out["attention"]
        dropped = torch.ones_like(a, dtype=torch.bool).scatter_(1, keep, False)
        assert bool((a[dropped] == 0).all())
        torch.testing.assert_close(a.sum(1), torch.ones(2), atol=1e-6, rtol=0)
        ref_rows = naive_scores(m, ref_attn, "mean").float()
        torch.testing.assert_close(torch.gather(a, 1, keep), ref_rows, rtol=1e-5, atol=1e-7)
        # pixels of dropped patches are never used
        noisy = x.clone()
        pix = dropped.reshape(2, 1, 4, 1, 4, 1).expand(2, 3, 4, 8, 4, 8).reshape(2, 3, 32, 32)
        noisy[pix] = torch.rand(int(pix.sum()), dtype=x.dtype)
        torch.testing.assert_close(m(noisy, keep=keep)["logits"], out["logits"])


def _move_patches(x: torch.Tensor, src: list[int], dst: list[int], g: int = 4, p: int = 8):
    """Copy of x with patch src[i] moved to position dst[i] (other pixels zero)."""
    y = torch.zeros_like(x)
    for s, d in zip(src, dst, strict=True):
        sr, sc, dr, dc = (s // g) * p, (s % g) * p, (d // g) * p, (d % g) * p
        y[:, :, dr : dr + p, dc : dc + p] = x[:, :, sr : sr + p, sc : sc + p]
    return y


def test_keep_positions_matter_and_only_positions():
    m = make()
    x = images(1)
    src, dst = [0, 5, 7], [3, 10, 14]
    moved = _move_patches(x, src, dst)
    with torch.no_grad():
        a = m(x, keep=torch.tensor([src]))["logits"]
        b = m(moved, keep=torch.tensor([dst]))["logits"]
        assert float((a - b).abs().max()) > 1e-3  # same pixels, other positions
        m.pos_embed.zero_()  # without position embeddings the two are identical
        a0 = m(x, keep=torch.tensor([src]))["logits"]
        b0 = m(moved, keep=torch.tensor([dst]))["logits"]
    torch.testing.assert_close(a0, b0, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "keep",
    [
        torch.tensor([[0, 0]]),  # duplicate
        torch.tensor([[0, 16]]),  # out of range
        torch.tensor([[-1, 2]]),
        torch.tensor([[0.0, 1.0]]),  # float
        torch.tensor([[True, False]]),
        torch.tensor([0, 1]),  # 1-D
        torch.tensor([[0, 1], [2, 3]]),  # wrong N
        torch.zeros(1, 0, dtype=torch.long),  # empty
        torch.arange(17).reshape(1, 17),  # more than P
        [[0, 1]],  # not a tensor
    ],
)
def test_keep_validation(keep):
    m = make()
    with pytest.raises(InputError):
        m(images(1), keep=keep)


def test_input_validation():
    m = make(dtype=torch.float32)
    with pytest.raises(InputError):
        m(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(InputError):
        m(torch.zeros(1, 3, 64, 64))
    with pytest.raises(InputError):
        m(torch.zeros(3, 32, 32))
    with pytest.raises(InputError):
        m(torch.zeros(1, 3, 32, 32), return_attention="max")
    for bad in (
        dict(img_size=30),
        dict(embed_dim=25),
        dict(num_classes=0),
        dict(depth=0),
        dict(distilled=True, class_token=False),
        dict(mlp_ratio=float("nan")),
    ):
        with pytest.raises(InputError):
            VisionTransformer(**{**SMALL, **bad})


def expected_timm_keys(depth: int, distilled: bool = False, class_token: bool = True):
    keys = (["cls_token"] if class_token else []) + ["pos_embed"]
    keys += ["dist_token"] if distilled else []
    keys += ["patch_embed.proj.weight", "patch_embed.proj.bias"]
    for i in range(depth):
        for part in (
            "norm1.weight",
            "norm1.bias",
            "attn.qkv.weight",
            "attn.qkv.bias",
            "attn.proj.weight",
            "attn.proj.bias",
            "norm2.weight",
            "norm2.bias",
            "mlp.fc1.weight",
            "mlp.fc1.bias",
            "mlp.fc2.weight",
            "mlp.fc2.bias",
        ):
            keys.append(f"blocks.{i}.{part}")
    keys += ["norm.weight", "norm.bias"] if class_token else ["fc_norm.weight", "fc_norm.bias"]
    keys += ["head.weight", "head.bias"]
    keys += ["head_dist.weight", "head_dist.bias"] if distilled else []
    return keys


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_keys_follow_timm(variant):
    kw = VARIANTS[variant]
    m = make(**kw)
    assert list(m.state_dict()) == expected_timm_keys(3, **kw)
    sd = m.state_dict()
    d, prefix = 24, m.num_prefix_tokens
    assert sd["pos_embed"].shape == (1, prefix + 16, d)
    assert sd["patch_embed.proj.weight"].shape == (d, 3, 8, 8)
    assert sd["blocks.0.attn.qkv.weight"].shape == (3 * d, d)
    assert sd["blocks.0.mlp.fc1.weight"].shape == (4 * d, d)
    assert sd["head.weight"].shape == (5, d)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("deit-tiny-patch16-224", 5_717_416),
        ("deit-small-patch16-224", 22_050_664),
        ("vit-base-patch16-224", 86_567_656),
    ],
)
def test_registered_imagenet_architectures_have_published_sizes(name, params):
    with torch.device("meta"):
        m = create_vit(name)
    assert sum(p.numel() for p in m.parameters()) == params
    assert m.num_patches == 196 and m.num_classes == 1000


def test_synth_architectures_build_and_run():
    for name in ("vit-tiny-synth", "vit-edge-synth"):
        m = create_vit(name, num_classes=7).eval()
        assert m.img_size == 64 and m.num_patches == 64
        out = m(torch.rand(2, 3, 64, 64), return_attention="mean")
        assert out["logits"].shape == (2, 7) and out["attention"].shape == (2, 64)
    with torch.device("meta"):
        assert create_vit("vit-edge-synth").embed_dim < create_vit("vit-tiny-synth").embed_dim
    import semcom.data.shapes as shapes

    with torch.device("meta"):
        assert create_vit("vit-edge-synth").num_classes == len(shapes.CLASS_NAMES)
    with pytest.raises(InputError):
        create_vit("vit-huge")
    with pytest.raises(InputError):
        create_vit("vit-tiny-synth", num_classes=3, bogus=1)


def test_registry_integration():
    import semcom.models.registry as registry
    import semcom.models.vit  # noqa: F401  (registers on import)

    m = registry.create_model("vit-edge-synth", num_classes=4)
    assert isinstance(m, VisionTransformer) and m.num_classes == 4
    archs = list_models(module="vit")
    assert set(archs) == {
        "vit-tiny-synth", "vit-edge-synth", "deit-tiny-patch16-224", "deit-small-patch16-224",
        "vit-base-patch16-224",
    }  # fmt: skip
    with pytest.raises(InputError, match="unknown ViT architecture 'shape-classifier'"):
        create_vit("shape-classifier")  # registered, but not a ViT
    # the stamped config rebuilds the same architecture
    again = registry.create_model("vit-edge-synth", **m.config)
    assert again.config == m.config
    assert [p.shape for p in again.parameters()] == [p.shape for p in m.parameters()]


# ------------------------------------------------------------------ loading
@pytest.mark.parametrize("variant", VARIANTS)
def test_load_roundtrip_and_wrappers(variant):
    kw = VARIANTS[variant]
    src, dst = make(seed=1, **kw), make(seed=2, **kw)
    x = images(2)
    sd = {"model": {"module." + k: v.float() for k, v in src.state_dict().items()}}
    assert load_timm_state_dict(dst, sd) is dst
    assert dst.pos_embed.dtype == torch.float64  # cast to the model's dtype
    with torch.no_grad():
        torch.testing.assert_close(dst(x)["logits"], src(x)["logits"], rtol=1e-5, atol=1e-5)


def test_load_errors_are_clear():
    m = make()
    good = m.state_dict()
    missing = {k: v for k, v in good.items() if k != "blocks.1.attn.qkv.bias"}
    with pytest.raises(BitstreamError, match=r"missing keys \['blocks.1.attn.qkv.bias'\]"):
        load_timm_state_dict(m, missing)
    with pytest.raises(BitstreamError, match=r"unexpected keys \['blocks.3.norm1.weight'\]"):
        load_timm_state_dict(m, {**good, "blocks.3.norm1.weight": torch.ones(24)})
    with pytest.raises(BitstreamError, match="head.weight"):
        load_timm_state_dict(m, {**good, "head.weight": torch.zeros(10, 24)})
    with pytest.raises(BitstreamError, match="not a tensor"):
        load_timm_state_dict(m, {**good, "norm.bias": [0.0] * 24})
    with pytest.raises(BitstreamError, match="square"):
        load_timm_state_dict(m, {**good, "pos_embed": torch.zeros(1, 1 + 15, 24)})
    # nothing was half-loaded by the failures
    torch.testing.assert_close(m.state_dict()["head.weight"], good["head.weight"])


def test_load_drop_head_keeps_own_classifier():
    src = make(seed=1)
    dst = make(seed=2, num_classes=9)
    head = dst.head.weight.detach().clone()
    sd = {k: v for k, v in src.state_dict().items()}
    with pytest.raises(BitstreamError):
        load_timm_state_dict(dst, sd)
    load_timm_state_dict(dst, sd, drop_head=True)
    torch.testing.assert_close(dst.head.weight, head)
    torch.testing.assert_close(dst.blocks[2].mlp.fc2.weight, src.blocks[2].mlp.fc2.weight)


def test_load_resizes_pos_embed():
    src = make(seed=1, distilled=True)  # 32 px -> 4x4 grid, two prefix tokens
    dst = make(seed=2, distilled=True, img_size=48)  # 6x6 grid
    sd = dict(src.state_dict())
    sd["pos_embed"] = sd["pos_embed"].clone()
    sd["pos_embed"][:, 2:] = 0.25  # a constant grid stays constant under bicubic resize
    load_timm_state_dict(dst, sd)
    pe = dst.pos_embed.detach()
    assert pe.shape == (1, 2 + 36, 24)
    torch.testing.assert_close(pe[:, :2], sd["pos_embed"][:, :2])
    torch.testing.assert_close(pe[:, 2:], torch.full_like(pe[:, 2:], 0.25))
    # a linear ramp along the columns stays monotone in the enlarged grid
    ramp = torch.arange(4.0).repeat(4).reshape(1, 16, 1).expand(1, 16, 3)
    big = resample_pos_embed(torch.cat([torch.zeros(1, 1, 3), ramp], 1), 8, 1)
    cols = big[0, 1:, 0].reshape(8, 8)
    assert bool((cols[:, 1:] > cols[:, :-1]).all())
    torch.testing.assert_close(cols[0], cols[5])  # rows identical
    assert resample_pos_embed(big, 8, 1) is big


# -------------------------------------------------------------------- FLOPs
@pytest.mark.parametrize("num_kept", [None, 6])
@pytest.mark.parametrize("variant", ["cls", "distilled"])
def test_count_flops_matches_torch_flop_counter(num_kept, variant):
    """In rollout mode every product is an explicit matmul, which FlopCounterMode sees."""
    m = make(dtype=torch.float32, **VARIANTS[variant])
    x = images(3, dtype=torch.float32)
    keep = None if num_kept is None else torch.arange(num_kept).repeat(3, 1)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        m(x, keep=keep, return_attention="rollout")
    expected = count_flops(m, 3, return_attention="rollout", num_kept=num_kept)
    assert counter.get_total_flops() == expected
    assert count_flops(m.config, 3, num_kept=num_kept) < expected  # no rollout products


def test_backward_through_kept_tokens():
    m = make(dtype=torch.float32).train()
    keep = torch.tensor([[1, 2, 3], [4, 8, 15]])
    out = m(images(2, dtype=torch.float32), keep=keep)
    out["logits"].sum().backward()
    assert m.pos_embed.grad is not None
    # only the kept positions (and the CLS slot) receive gradient
    got = m.pos_embed.grad[0].abs().sum(-1) > 0
    expected = torch.zeros(17, dtype=torch.bool)
    expected[0] = True
    expected[1 + torch.tensor([1, 2, 3, 4, 8, 15])] = True
    assert torch.equal(got, expected)


# --------------------------------------------------------------------- timm
def _import_timm():
    try:
        import timm
    except Exception as e:  # noqa: BLE001 - timm needs torchvision, broken/absent here
        # justified: timm is an optional extra that imports torchvision, which has no
        # working build beside this CPU torch; the equivalence test runs where it has one
        pytest.skip(f"optional extra timm not importable: {type(e).__name__}: {e}")
    return timm


@pytest.mark.parametrize(
    ("timm_name", "kw"),
    [("vit_tiny_patch16_224", {}), ("deit_tiny_distilled_patch16_224", {"distilled": True})],
)
def test_identical_to_timm(timm_name, kw):
    timm = _import_timm()
    torch.manual_seed(0)
    ref = timm.create_model(
        timm_name,
        pretrained=False,
        img_size=32,
        patch_size=8,
        embed_dim=48,
        depth=3,
        num_heads=3,
        num_classes=7,
    ).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0.0, 0.3)
    ours = VisionTransformer(
        img_size=32, patch_size=8, embed_dim=48, depth=3, num_heads=3, num_classes=7, **kw
    ).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    load_timm_state_dict(ours, ref.state_dict())
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = ref(x)
        torch.testing.assert_close(ours(x)["logits"], expected, rtol=1e-5, atol=1e-5)
        got = ours(x, return_attention="rollout")["logits"]
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    big = VisionTransformer(
        img_size=48, patch_size=8, embed_dim=48, depth=3, num_heads=3, num_classes=7, **kw
    )
    load_timm_state_dict(big, ref.state_dict())
    prefix = 1 + int(kw.get("distilled", False))
    expected_pe = timm.layers.resample_abs_pos_embed(
        ref.pos_embed.detach(), [6, 6], num_prefix_tokens=prefix
    )
    torch.testing.assert_close(big.pos_embed.detach(), expected_pe)
