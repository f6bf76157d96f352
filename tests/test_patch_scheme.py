"""Tests for semcom.schemes.patch: attention-guided patch transmission."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from semcom.codec.container import Message, pack, unpack
from semcom.codec.entropy import encode_auto
from semcom.data.synthetic import SyntheticWorld
from semcom.errors import BitstreamError, InputError
from semcom.models.vit import VisionTransformer
from semcom.patches import Rate
from semcom.patches.codec import encode_positions
from semcom.schemes import create_scheme, list_schemes
from semcom.schemes.patch import PatchScheme
from semcom.schemes.session import Decoded

SIZE, PS = 32, 8
P = (SIZE // PS) ** 2  # 16 patches


def tiny_vit(seed: int = 0) -> VisionTransformer:
    """A small random ViT with large weights (attention far from uniform)."""
    torch.manual_seed(seed)
    m = VisionTransformer(
        img_size=SIZE, patch_size=PS, embed_dim=24, depth=2, num_heads=2, num_classes=5
    ).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if not name.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
                p.normal_(0.0, 0.3)
    return m


class StandInDecoder(nn.Module):
    """Received pixels kept, missing ones mid-grey; counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, sparse: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        assert sparse.shape[1] == 3 and mask.shape[1] == 1
        return sparse * mask + 0.5 * (1 - mask)


@pytest.fixture(scope="module")
def vit() -> VisionTransformer:
    return tiny_vit()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return SyntheticWorld(size=SIZE).generate(range(6)).images


def scheme(vit, **kw) -> PatchScheme:
    kw.setdefault("decoder", StandInDecoder())
    return PatchScheme(vit=vit, **kw)


def section_range(data: bytes, tag: str) -> tuple[int, int]:
    info = next(s for s in unpack(data).layout.sections if s.tag == tag)
    return info.offset, info.offset + info.length


def repack(data: bytes, fields=None, sections=None, drop=()) -> bytes:
    msg = unpack(data)
    f = {**msg.fields, **(fields or {})}
    s = {k: v for k, v in {**msg.sections, **(sections or {})}.items() if k not in drop}
    return pack(Message(scheme=msg.scheme, fields=f, sections=s))


# ===================================================================== rates and bytes


@pytest.mark.parametrize("pixels", ["raw", "q4", "webp:75"])
def test_bytes_grow_with_rate(vit, images, pixels):
    sch = scheme(vit, pixels=pixels, group_size=4)
    sizes = [[len(m) for m in sch.compress_batch(images, r)] for r in (0.25, 0.5, 0.75, 1.0)]
    for per_image in zip(*sizes, strict=True):
        assert list(per_image) == sorted(per_image) and per_image[0] < per_image[-1]


def test_rate_validation(vit, images):
    sch = scheme(vit)
    for bad in (0, 0.0, -0.1, 1.5, math.nan, math.inf, "0.5", True, None):
        with pytest.raises(InputError):
            sch.compress(images[0], bad)
    assert sch.validate_rate(1) == 1.0
    assert sch.default_rates == (0.25, 0.5, 0.75, 1.0)


def test_wrong_image_size(vit):
    sch = scheme(vit)
    img = SyntheticWorld(size=64).generate([0]).images
    with pytest.raises(InputError, match=r"64x64.*3x32x32"):
        sch.compress_batch(img, 0.5)
    with pytest.raises(InputError):
        sch.compress(img[0, :, :32, :32].float(), 0.5)
    with pytest.raises(InputError):
        sch.compress_batch(img[:, :1, :32, :32].contiguous(), 0.5)


# ========================================================================= selection


@pytest.mark.parametrize("mode", ["mean", "rollout"])
def test_attention_selection_keeps_top_patches(vit, images, mode):
    sch = scheme(vit, selection=mode)
    with torch.no_grad():
        att = vit(images.float() / 255, return_attention=mode)["attention"]
    for r in (0.25, 0.5):
        k = Rate(r).count(P)
        top = att.topk(k, dim=1).indices
        mask = sch.select(images, r)
        for i in range(len(images)):
            assert set(mask[i].nonzero().flatten().tolist()) == set(top[i].tolist())
        # and that is exactly what the receiver reports as sent and received
        msgs = sch.compress_batch(images, r)
        for i, m in enumerate(msgs):
            out = sch.decompress(m)
            assert torch.equal(out["mask"], mask[i]) and torch.equal(out["selected"], mask[i])
            assert out["k"] == k and out["lost_patches"] == 0


def test_mean_and_rollout_differ(vit, images):
    a = scheme(vit, selection="mean").select(images, 0.25)
    b = scheme(vit, selection="rollout").select(images, 0.25)
    assert not torch.equal(a, b)


def test_variance_selection():
    img = torch.full((1, 3, SIZE, SIZE), 100, dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    busy = [3, 6, 12]
    for p in busy:  # textured patches; the rest is flat
        r, c = divmod(p, SIZE // PS)
        img[0, :, r * PS : (r + 1) * PS, c * PS : (c + 1) * PS] = torch.randint(
            0, 256, (3, PS, PS), generator=g, dtype=torch.uint8
        )
    sch = PatchScheme(selection="variance", vit=None, img_size=SIZE, patch_size=PS, decoder=None)
    mask = sch.select(img, 3 / P)
    assert mask[0].nonzero().flatten().tolist() == busy
    scores = sch.scores(img)
    assert torch.allclose(scores.sum(1), torch.ones(1)) and (scores >= 0).all()


def test_random_selection_deterministic(images):
    def make(seed):
        return PatchScheme(
            selection="random", vit=None, img_size=SIZE, patch_size=PS, decoder=None, seed=seed
        )

    a = make(0).select(images, 0.5)
    assert torch.equal(a, make(0).select(images, 0.5))
    # independent of batch composition and position
    assert torch.equal(make(0).select(images[3:4], 0.5)[0], a[3])
    assert torch.equal(make(0).select(images.flip(0), 0.5), a.flip(0))
    # another seed gives another choice; every row keeps k patches
    assert not torch.equal(make(1).select(images, 0.5), a)
    assert (a.sum(1) == Rate(0.5).count(P)).all()
    # different images get different patterns under one seed
    assert len({tuple(row.tolist()) for row in a}) > 1


def test_rule_overrides_rate(vit, images):
    sch = scheme(vit, rule="cumsum:0.5")
    assert sch.default_rates == (1.0,) and sch.rate_label(1.0) == "cumsum:0.5"
    m1 = sch.compress_batch(images, 0.25)
    assert m1 == sch.compress_batch(images, 1.0)
    counts = [sch.decompress(m)["k"] for m in m1]
    assert all(1 <= k < P for k in counts)
    s = sch.settings(1.0)
    assert s["rule"] == "cumsum:0.5" and "patches_kept" not in s
    json.dumps(s)


# ========================================================================= receiver


@pytest.mark.parametrize("pixels", ["raw", "q8"])
def test_full_rate_lossless_is_exact(vit, images, pixels):
    sch = scheme(vit, pixels=pixels)
    for img, msg in zip(images, sch.compress_batch(images, 1.0), strict=True):
        out = sch.decompress(msg)
        assert torch.equal(out["sparse"], img)
        assert out["mask"].all() and out["lost_patches"] == 0
        assert out["x_hat"].dtype == torch.uint8 and torch.equal(out["x_hat"], img)


def test_partial_rate_sparse_image(vit, images):
    sch = scheme(vit, pixels="q4")
    msg = sch.compress(images[0], 0.5)
    assert msg == sch.compress_batch(images[:1], 0.5)[0]
    out = sch.decompress(msg)
    grid = out["mask"].view(SIZE // PS, SIZE // PS)
    pix = grid.repeat_interleave(PS, 0).repeat_interleave(PS, 1)
    err = (out["sparse"].int() - images[0].int()).abs()
    assert err[:, pix].max() <= 8  # q4: half a bin
    assert not out["sparse"][:, ~pix].any()  # missing patches are zero
    assert (out["x_hat"][:, ~pix] == 128).all()  # the stand-in's grey


class ConstantDecoder(nn.Module):
    def forward(self, sparse: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.full_like(sparse, 0.25)


def test_paste_received(vit, images):
    for paste in (False, True):
        sch = scheme(vit, pixels="raw", decoder=ConstantDecoder(), paste_received=paste)
        out = sch.decompress(sch.compress(images[0], 0.5))
        pix = out["mask"].view(SIZE // PS, SIZE // PS).repeat_interleave(PS, 0)
        pix = pix.repeat_interleave(PS, 1)
        assert (out["x_hat"][:, ~pix] == 64).all()
        if paste:
            assert torch.equal(out["x_hat"][:, pix], images[0][:, pix])
        else:
            assert (out["x_hat"][:, pix] == 64).all()


def test_erasure_of_one_pixel_section(vit, images):
    sch = scheme(vit, pixels="raw", group_size=4)
    msg = sch.compress(images[1], 1.0)
    assert [s for s in unpack(msg).sections] == ["pos", "px0", "px1", "px2", "px3"]
    a, b = section_range(msg, "px1")
    damaged = msg[:a] + bytes(b - a) + msg[b:]
    out = sch.decompress(damaged, erasures=[(a + 3, a + 10)])
    assert out["lost_patches"] == 4
    assert out["mask"].sum() == P - 4 and out["selected"].all()
    lost = (~out["mask"]).nonzero().flatten().tolist()
    assert lost == [4, 5, 6, 7]  # group 1 of the ascending patch order
    assert out["x_hat"].shape == (3, SIZE, SIZE)
    # a CRC failure without a reported erasure is handled the same way
    out2 = sch.decompress(damaged)
    assert torch.equal(out2["mask"], out["mask"])


def test_lost_header_or_positions(vit, images):
    sch = scheme(vit, group_size=4)
    msg = sch.compress(images[0], 1.0)
    a, b = section_range(msg, "pos")
    with pytest.raises(BitstreamError, match="positions"):
        sch.decompress(msg, erasures=[(a, a + 1)])
    with pytest.raises(BitstreamError):
        sch.decompress(msg, erasures=[(0, 4)])


def test_decompress_batch(vit, images):
    dec = StandInDecoder()
    sch = scheme(vit, decoder=dec, batch_size=64)
    msgs = sch.compress_batch(images, 0.5)
    bad = b"SMC\x00garbage"
    outs = sch.decompress_batch([msgs[0], bad, *msgs[1:]], None)
    assert dec.calls == 1  # one decoder forward for the whole batch
    assert isinstance(outs[1], BitstreamError)
    for o, m in zip([outs[0], *outs[2:]], msgs, strict=True):
        assert isinstance(o, Decoded)
        assert torch.equal(o["x_hat"], sch.decompress(m)["x_hat"])
    with pytest.raises(InputError):
        sch.decompress_batch(msgs, [()])


# ============================================================== malformed messages


@pytest.fixture(scope="module")
def good(vit, images) -> tuple[PatchScheme, bytes]:
    sch = scheme(vit, pixels="raw", group_size=4)
    return sch, sch.compress(images[2], 0.5)  # k = 8: sections pos, px0, px1


def test_inconsistent_messages(good):
    sch, msg = good
    fields = unpack(msg).fields
    k = fields["k"]
    cases = {
        "k disagrees with positions": repack(msg, fields={"k": k - 1}),
        "k larger than positions": repack(msg, fields={"k": k + 1}),
        "k zero": repack(msg, fields={"k": 0}),
        "k above P": repack(msg, fields={"k": P + 1}),
        "positions out of range": repack(
            msg, sections={"pos": bytes([1]) + encode_auto([8, 1, 0, 0, 0, 0, 0, 0], P - 8 + 1)}
        ),
        "positions garbage": repack(msg, sections={"pos": bytes([1]) + b"\x10\xff\xff\x01"}),
        "positions for another k": repack(msg, sections={"pos": encode_positions([0, 1], P)}),
        "px section too short": repack(msg, sections={"px0": unpack(msg).sections["px0"][:-1]}),
        "px section too long": repack(msg, sections={"px1": unpack(msg).sections["px1"] + b"\x00"}),
        "missing px section": repack(msg, drop=("px1",)),
        "extra px section": repack(msg, sections={"px2": b"\x00" * 192}),
        "no positions": repack(msg, drop=("pos",)),
        "group size zero": repack(msg, fields={"g": 0}),
        "group size changes section count": repack(msg, fields={"g": 2}),
        "image size not the ViT's": repack(msg, fields={"h": 64, "w": 64}),
        "patch size not the ViT's": repack(msg, fields={"ps": 4}),
        "unknown pixel codec": repack(msg, fields={"pc": 42}),
        "pixel codec param": repack(msg, fields={"pc": 1, "pq": 12}),
        "codec changed (q4 reading raw bytes)": repack(msg, fields={"pc": 1, "pq": 4}),
        "unknown selection": repack(msg, fields={"sel": 9}),
        "negative field": repack(msg, fields={"h": -32}),
        "float field": repack(msg, fields={"k": 8.0}),
        "missing field": pack(
            Message(
                scheme="patch",
                fields={k_: v for k_, v in fields.items() if k_ != "sel"},
                sections=unpack(msg).sections,
            )
        ),
        "extra field": repack(msg, fields={"zz": 1}),
        "another scheme": pack(Message(scheme="raw", fields=fields, sections=unpack(msg).sections)),
    }
    for why, data in cases.items():
        with pytest.raises(BitstreamError):
            sch.decompress(data)
            pytest.fail(f"accepted: {why}")
    assert sch.decompress(repack(msg))["k"] == k  # repacking itself is harmless


def test_truncated_and_garbage(good):
    sch, msg = good
    pos_end = section_range(msg, "pos")[1]
    for n in range(0, len(msg), 7):
        if n < pos_end:  # header or positions cut off
            with pytest.raises(BitstreamError):
                sch.decompress(msg[:n])
        else:  # a pixel section cut off: its patches are lost, the rest decodes
            assert sch.decompress(msg[:n])["lost_patches"] > 0
    rng = np.random.default_rng(0)
    for _ in range(50):
        with pytest.raises(BitstreamError):
            sch.decompress(rng.bytes(int(rng.integers(0, 300))))
    with pytest.raises(BitstreamError):
        sch.decompress(msg + b"\x00")


def test_bit_flips_never_crash(vit, images):
    sch = scheme(vit, pixels="webp:75", group_size=4)
    msg = sch.compress(images[0], 0.5)
    rng = np.random.default_rng(1)
    for _ in range(60):
        buf = bytearray(msg)
        pos = int(rng.integers(len(buf)))
        buf[pos] ^= 1 << int(rng.integers(8))
        try:
            out = sch.decompress(bytes(buf))
        except BitstreamError:
            continue
        assert out["x_hat"].shape == (3, SIZE, SIZE)
        assert out["lost_patches"] > 0  # CRC caught the flip in a pixel section


# ======================================================================= registry


def test_registered_variants(vit, images):
    names = {"patch-mean", "patch-rollout", "patch-random", "patch-variance"}
    assert names <= set(list_schemes())
    sch = create_scheme("patch-mean", vit=vit, decoder=None)
    assert sch.name == "patch-mean" and sch.selection == "mean" and sch.outputs == ("x_hat",)
    msg = sch.compress(images[0], 0.25)
    # any variant decodes any patch message (the selection mode is informational)
    other = create_scheme("patch-random", vit=vit, decoder=None)
    assert torch.equal(other.decompress(msg)["sparse"], sch.decompress(msg)["sparse"])
    with pytest.raises(InputError):
        create_scheme("patch-mean", selection="random", vit=vit)
    for bad in (
        dict(selection="saliency"),
        dict(pixels="png:3"),
        dict(rule="best:3"),
        dict(group_size=-1),
        dict(seed=-2),
        dict(vit=None),
        dict(vit=3),
        dict(img_size=64),  # disagrees with the ViT
    ):
        with pytest.raises(InputError):
            PatchScheme(**{"vit": vit, "decoder": None, **bad})


def test_lazy_zoo_models():
    from semcom.models.zoo import list_zoo

    sch = create_scheme("patch-mean")  # nothing loaded yet
    assert sch._vit is None and sch._decoder is None
    if "vit-synth" not in list_zoo():
        with pytest.raises(InputError, match="vit-synth"):
            sch.compress(torch.zeros(3, 64, 64, dtype=torch.uint8), 0.5)


def test_settings(vit):
    s = scheme(vit, pixels="q3", seed=4).settings(0.5)
    assert s["pixels"] == "q3" and s["patches_kept"] == 8 and s["selection"] == "mean"
    json.dumps(s)
    assert scheme(vit).rate_label(0.25) == "r=0.25"


def test_real_patch_decoder(vit, images):
    from semcom.models.registry import create_model

    dec = create_model("patch-decoder")
    calls = []
    dec.register_forward_hook(lambda m, args, out: calls.append(tuple(out.shape)))
    sch = PatchScheme(vit=vit, decoder=dec)
    out = sch.decompress(sch.compress(images[0], 0.5))
    assert out["x_hat"].shape == (3, SIZE, SIZE) and out["x_hat"].dtype == torch.uint8
    assert calls and calls[0][-3:] == (3, SIZE, SIZE)  # the real decoder filled the gaps
