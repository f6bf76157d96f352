"""The VQ-VAE codec: model (quantiser, EMA, restarts, prior), the ``vqvae`` scheme's wire
format and its hostile inputs, and the ``vqvae-synth`` recipe end to end."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from semcom.codec.container import SCHEME_IDS, Message, pack, unpack
from semcom.codec.fuzz import KINDS, mutate
from semcom.data import SyntheticWorld, to_float, to_uint8
from semcom.errors import BitstreamError, InputError
from semcom.models import create_model, list_models, load_checkpoint, save_checkpoint
from semcom.models.fingerprint import ModelMismatchError
from semcom.models.vqvae import VQVAE, VectorQuantizerEMA, index_statistics
from semcom.schemes import create_receiver, create_scheme, list_schemes
from semcom.schemes.vqvae import fixed_length_bits, pack_fixed, unpack_fixed

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"code_dim": 8, "depth": 1}


def tiny(r: int = 4, K: int = 64, **kw) -> VQVAE:  # noqa: N803
    widths = [8] * int(math.log2(r))
    return create_model("vqvae", r=r, K=K, widths=widths, **{**TINY, **kw}).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return SyntheticWorld(size=32).generate(range(4)).images


# ============================================================================ model


def test_registered_names_config_and_keys() -> None:
    assert {"vqvae", "vqvae-res"} <= set(list_models())
    m = create_model("vqvae")
    assert isinstance(m, VQVAE) and m.semcom_name == "vqvae" and m.task == "codec"
    assert m.config["r"] == 4 and m.config["K"] == 512 and m.config["widths"] == [32, 64]
    assert m.config["variant"] == "shallow" and m.config["beta"] == 0.25
    res = create_model("vqvae-res", r=8, K=128)
    assert res.variant == "residual" and res.config["widths"] == [32, 64, 128]
    keys = set(res.state_dict())
    for k in (
        "encoder.down.2.weight",
        "encoder.blocks.1.conv1.weight",
        "encoder.blocks.1.conv2.bias",
        "encoder.out.weight",
        "quantizer.codebook",
        "quantizer.ema_count",
        "quantizer.ema_sum",
        "quantizer.unused",
        "decoder.inp.weight",
        "decoder.up.0.weight",
        "decoder.out.bias",
        "prior.probs",
        "prior.count",
    ):
        assert k in keys, k
    assert "encoder.blocks.0.conv.weight" in m.state_dict()
    assert all(k.split(".")[0] in {"encoder", "quantizer", "decoder", "prior"} for k in keys)
    assert res.quantizer.codebook.shape == (128, 64)
    # the codebook is a buffer (EMA-updated), never a parameter
    assert all(not n.startswith("quantizer") for n, _ in res.named_parameters())


@pytest.mark.parametrize("r", [2, 4, 8])
@pytest.mark.parametrize("variant", ["shallow", "residual"])
def test_shapes_dtypes_and_range(r: int, variant: str) -> None:
    m = tiny(r, variant=variant)
    x = torch.rand(2, 3, 32, 48)
    idx = m.encode(x)
    assert idx.shape == (2, 32 // r, 48 // r) and idx.dtype == torch.int64
    assert int(idx.min()) >= 0 and int(idx.max()) < 64
    y = m.decode(idx)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    out = m(x)
    assert torch.equal(out["indices"], idx)
    assert torch.allclose(out["x_hat"], y, atol=1e-6)
    assert out["z_e"].shape == out["z_q"].shape == (2, 8, 32 // r, 48 // r)
    assert out["commit_loss"].ndim == 0 and float(out["commit_loss"].detach()) >= 0
    assert 1.0 <= float(out["perplexity"]) <= 64.0


def test_straight_through_gradient_and_commitment() -> None:
    m = tiny().train()
    x = torch.rand(2, 3, 16, 16)
    out = m(x)
    (out["x_hat"].mean() + out["commit_loss"]).backward()
    assert m.encoder.down[0].weight.grad is not None
    assert float(m.encoder.down[0].weight.grad.abs().sum()) > 0
    z_e, z_q = out["z_e"].detach(), out["z_q"].detach()
    # the commitment loss is beta * mean ||z_e - e||^2 (z_q's value is the code e)
    assert float(out["commit_loss"].detach()) == pytest.approx(
        0.25 * float((z_e - z_q).pow(2).mean())
    )


def test_bad_config_and_inputs_are_input_errors() -> None:
    for bad in (
        dict(r=3),
        dict(r=16),
        dict(K=32),
        dict(K=20000),
        dict(K=64.0),
        dict(code_dim=0),
        dict(widths=[8]),
        dict(widths="88"),
        dict(depth=-1),
        dict(variant="deep"),
        dict(decay=1.0),
        dict(decay=0.0),
        dict(beta=float("nan")),
        dict(dead_after=0),
    ):
        with pytest.raises(InputError):
            create_model("vqvae", **bad)
    with pytest.raises(InputError):
        create_model("vqvae-res", variant="shallow")
    m = tiny(4)
    for x in (torch.rand(1, 3, 30, 32), torch.rand(1, 1, 32, 32), torch.zeros(1, 3, 32, 32).long()):
        with pytest.raises(InputError):
            m.encode(x)
    for idx in (torch.full((1, 4, 4), 64), torch.full((1, 4, 4), -1), torch.zeros(4, 4).long()):
        with pytest.raises(InputError):
            m.decode(idx)
    with pytest.raises(InputError):
        m.decode(torch.zeros(1, 4, 4))


def test_ema_update_moves_codes_toward_their_encodings() -> None:
    torch.manual_seed(0)
    q = VectorQuantizerEMA(64, 4, decay=0.9, eps=1e-5, dead_after=1000).train()
    q.unused.zero_()  # no code is dead: only the EMA acts
    start = q.codebook.clone()
    target = start[3] + torch.tensor([1.0, -1.0, 0.5, 0.0])  # nearest to code 3? make sure:
    q.codebook[3] = target - 0.1
    q.ema_sum[3] = q.codebook[3] * q.ema_count[3]
    before = q.codebook.clone()
    z = (target + 0.01 * torch.randn(2, 5, 5, 4)).permute(0, 3, 1, 2)  # (N, D, h, w)
    _, idx, _ = q(z)
    assert bool((idx == 3).all())
    mean = z.permute(0, 2, 3, 1).reshape(-1, 4).mean(0)
    d_before = float((before[3] - mean).norm())
    d_after = float((q.codebook[3] - mean).norm())
    assert d_after < 0.95 * d_before
    # exactly the EMA of the paper: N = d N + (1 - d) n, m = d m + (1 - d) sum, e = m / N'
    n_new = 0.9 * 1.0 + 0.1 * 50
    assert float(q.ema_count[3]) == pytest.approx(n_new, rel=1e-5)
    m_new = 0.9 * before[3] * 1.0 + 0.1 * z.permute(0, 2, 3, 1).reshape(-1, 4).sum(0)
    total = float(q.ema_count.sum())
    smoothed = (n_new + 1e-5) / (total + 64 * 1e-5) * total
    assert torch.allclose(q.codebook[3], m_new / smoothed, atol=1e-5)
    # codes that got nothing keep their place (up to the smoothing's scale)
    others = [k for k in range(64) if k != 3]
    assert torch.allclose(q.codebook[others], before[others], atol=1e-3)
    assert int(q.unused[3]) == 0 and bool((q.unused[others] == 1).all())
    # eval mode changes nothing
    q.eval()
    frozen = q.codebook.clone()
    q(z)
    assert torch.equal(q.codebook, frozen)


def test_dead_codes_are_restarted_from_the_batch() -> None:
    torch.manual_seed(0)
    q = VectorQuantizerEMA(64, 4, decay=0.99, eps=1e-5, dead_after=2).train()
    z = torch.randn(1, 4, 4, 4)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    # every code starts dead: the first batch seeds the codes it does not use
    _, idx, _ = q(z)
    used = set(idx.flatten().tolist())
    seeded = [k for k in range(64) if k not in used]
    for k in seeded:
        assert bool((q.codebook[k] == flat).all(dim=1).any()), k
    assert bool((q.unused == 0).all())
    # then only code 0 is used; after dead_after steps the others are re-seeded
    q.codebook[1:], q.ema_sum[1:], q.ema_count[1:] = 100.0, 100.0, 1.0
    q.codebook[0], q.ema_sum[0] = 0.0, 0.0
    z2 = 0.01 * torch.randn(1, 4, 4, 4)
    flat2 = z2.permute(0, 2, 3, 1).reshape(-1, 4)
    q(z2)
    assert torch.allclose(q.codebook[1:], torch.full((63, 4), 100.0), rtol=1e-4)
    assert bool((q.unused[1:] == 1).all())
    q(z2)
    assert bool((q.unused == 0).all())
    for k in range(1, 64):
        assert bool((q.codebook[k] == flat2).all(dim=1).any()), k
    assert bool((q.ema_count[1:] == 1.0).all())


def test_codebook_usage_statistics() -> None:
    m = tiny(K=64)
    idx = torch.tensor([[[0, 0], [1, 2]]])
    st = m.codebook_usage(idx)
    assert st["codes_used"] == 3 and st["usage"] == pytest.approx(3 / 64)
    assert st["entropy_bits"] == pytest.approx(1.5) and st["perplexity"] == pytest.approx(2**1.5)
    assert st["log2_k"] == 6.0
    assert index_statistics(np.zeros(64))["entropy_bits"] == 0.0
    with pytest.raises(InputError):
        m.codebook_usage(torch.tensor([64]))


def test_prior_fit_and_state_dict_round_trip(tmp_path: Path) -> None:
    m = tiny(K=64)
    assert not m.prior.fitted and torch.allclose(m.prior.probs, torch.full((64,), 1 / 64))
    batches = [torch.zeros(2, 3, 3, dtype=torch.int64), torch.tensor([[1, 1, 5]])]
    probs = m.fit_prior(batches, alpha=1.0)
    expected = torch.ones(64)
    expected[0] += 18
    expected[1] += 2
    expected[5] += 1
    assert torch.allclose(probs, expected / expected.sum())
    assert m.prior.fitted and float(m.prior.count) == 21
    assert m.bits_per_index(torch.zeros(5, dtype=torch.int64)) == pytest.approx(
        -math.log2(float(probs[0])), rel=1e-5
    )
    path = save_checkpoint(m, tmp_path / "vq.safetensors")
    back, meta = load_checkpoint(path)
    assert meta.name == "vqvae" and isinstance(back, VQVAE)
    assert torch.equal(back.prior.probs, m.prior.probs)
    assert float(back.prior.count) == 21.0
    for k, v in m.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    with pytest.raises(InputError):
        m.fit_prior(torch.tensor([64]))


# =========================================================================== scheme


def _scheme(model, **kw):
    return create_scheme("vqvae", model=model, **kw)


@pytest.mark.parametrize("coding", ["prior", "fixed", "adaptive"])
def test_round_trip_gives_the_same_indices_and_x_hat(coding: str, images) -> None:
    m = tiny(K=96)
    m.fit_prior(m.encode(to_float(images)))
    sch = _scheme(m, coding=coding)
    assert sch.unavailable_reason() is None
    idx = m.encode(to_float(images))
    msgs = sch.compress_batch(images, 1.0)
    outs = sch.decompress_batch(msgs)
    x_hat = to_uint8(m.decode(idx))
    for i, out in enumerate(outs):
        assert torch.equal(out.aux["indices"], idx[i])
        assert torch.equal(out.x_hat, x_hat[i])
        assert out.x_hat.dtype == torch.uint8 and out.x_hat.shape == images[i].shape
        assert out.stats["coding"] == coding and out.stats["grid"] == "8x8"
    one = sch.decompress(sch.compress(images[0], 1))
    assert torch.equal(one.aux["indices"], idx[0])
    assert torch.equal(one.x_hat, to_uint8(m.decode(idx[:1]))[0])
    msg = unpack(msgs[0])
    assert msg.scheme_name == "vqvae" and msg.scheme_id == SCHEME_IDS["vqvae"]
    assert {k: msg.fields[k] for k in "hwrkc"} == {
        "h": 32, "w": 32, "r": 4, "k": 96, "c": ["prior", "fixed", "adaptive"].index(coding),
    }  # fmt: skip
    assert len(msg.fields["fp"]) == 4 and list(msg.sections) == ["idx"]
    if coding == "fixed":
        assert len(msg.sections["idx"]) == math.ceil(64 * 7 / 8)
    # the receiver a user gets for these messages decodes them too
    assert isinstance(create_receiver("vqvae", model=m).decompress(msgs[0]).x_hat, torch.Tensor)


def test_entropy_coding_beats_fixed_length_with_a_skewed_prior(images) -> None:
    m = tiny(K=256)
    idx = m.encode(to_float(images))
    m.fit_prior(idx, alpha=0.01)  # the images' own statistics: a skewed prior
    assert m.codebook_usage(idx)["entropy_bits"] < 6
    prior = _scheme(m, coding="prior").compress_batch(images, 1)
    fixed = _scheme(m, coding="fixed").compress_batch(images, 1)
    for p, f in zip(prior, fixed, strict=True):
        assert len(p) < len(f)
        assert len(unpack(f).sections["idx"]) == 64  # 64 indices x 8 bits
    bits = 8 * len(unpack(prior[0]).sections["idx"]) / 64
    assert bits < 8 and bits < m.bits_per_index(idx[0]) + 1


def test_fixed_length_packing() -> None:
    assert fixed_length_bits(64) == 6 and fixed_length_bits(96) == 7 and fixed_length_bits(512) == 9
    v = np.array([0, 5, 127, 64, 1])
    data = pack_fixed(v, 7)
    assert len(data) == 5 and np.array_equal(unpack_fixed(data, 5, 7), v)
    with pytest.raises(BitstreamError, match="bytes"):
        unpack_fixed(data + b"\x00", 5, 7)
    with pytest.raises(BitstreamError, match="padding"):
        unpack_fixed(data[:-1] + bytes([data[-1] | 1]), 5, 7)


def _repacked(data: bytes, fields=None, sections=None) -> bytes:
    msg = unpack(data)
    return pack(
        Message(
            msg.scheme,
            {**msg.fields, **(fields or {})},
            dict(msg.sections) if sections is None else sections,
        )
    )


def test_bad_messages_raise_bitstream_errors(images) -> None:
    m = tiny(K=96)
    sch = _scheme(m)
    fixed = _scheme(m, coding="fixed")
    msg = sch.compress(images[0], 1)
    fmsg = fixed.compress(images[0], 1)
    payload = unpack(fmsg).sections["idx"]
    cases = {
        "truncated": msg[:-3],
        "trailing": msg + b"\x01",
        "bit flip": msg[:-5] + bytes([msg[-5] ^ 0x10]) + msg[-4:],
        "r disagrees": _repacked(msg, {"r": 8}),
        "K disagrees": _repacked(msg, {"k": 128}),
        "grid disagrees with the payload": _repacked(fmsg, {"h": 64}),
        "too large": _repacked(msg, {"h": 4096, "w": 4096}),
        "unknown coding": _repacked(msg, {"c": 3}),
        "fp of other weights": _repacked(msg, {"fp": b"\x00\x01\x02\x03"}),
        "fp wrong size": _repacked(msg, {"fp": b"\x00"}),
        "extra field": _repacked(msg, {"zz": 1}),
        "no section": _repacked(msg, sections={}),
        "renamed section": _repacked(msg, sections={"img": unpack(msg).sections["idx"]}),
        "fixed payload short": _repacked(fmsg, sections={"idx": payload[:-1]}),
        # 7-bit indices with K = 96: 127 is out of range
        "index out of range": _repacked(fmsg, sections={"idx": pack_fixed(np.full(64, 127), 7)}),
        "entropy stream with trailing data": _repacked(
            msg, sections={"idx": unpack(msg).sections["idx"] + b"\x55\x55\x55\x55\x55"}
        ),
        "other scheme": pack(Message("raw", {"h": 32, "w": 32}, {"img": b""})),
        "not a message": b"hello",
    }
    for what, data in cases.items():
        with pytest.raises(BitstreamError) as info:
            sch.decompress(data)
        assert "\n" not in str(info.value), what
    # a size that is not a multiple of r: the same grid, the reconstruction cropped
    assert sch.decompress(_repacked(msg, {"h": 30})).x_hat.shape == (3, 30, 32)
    with pytest.raises(ModelMismatchError, match="VQ-VAE weights"):
        sch.decompress(cases["fp of other weights"])
    with pytest.raises(BitstreamError, match="out of range"):
        sch.decompress(cases["index out of range"])
    with pytest.raises(BitstreamError, match="r=8"):
        sch.decompress(cases["r disagrees"])
    with pytest.raises(BitstreamError, match="max_pixels"):
        sch.decompress(cases["too large"])
    # another receiver's weights: refused, unless asked not to check
    other = tiny(K=96)
    with pytest.raises(ModelMismatchError):
        _scheme(other).decompress(msg)
    assert _scheme(other, check_models=False).decompress(msg).x_hat is not None
    # the batch path returns the errors
    outs = sch.decompress_batch([msg, cases["truncated"], msg])
    assert isinstance(outs[1], BitstreamError) and outs[0].x_hat is not None


def test_fuzzed_messages_raise_only_bitstream_errors(images) -> None:
    m = tiny(K=96)
    msgs = [
        _scheme(m, coding=c).compress(images[i], 1)
        for i in range(2)
        for c in ("prior", "fixed", "adaptive")
    ]
    sch = _scheme(m)
    rng = random.Random("fuzz-vqvae")
    rejected = 0
    for kind in KINDS:
        for _ in range(6):
            _, data = mutate(rng.choice(msgs), rng, kind)
            try:
                out = sch.decompress(data)
                assert out.x_hat is not None and out.x_hat.dtype == torch.uint8
            except BitstreamError:
                rejected += 1
            except Exception as exc:  # noqa: BLE001 - the point of the test
                pytest.fail(f"{kind} mutant: {type(exc).__name__}: {exc}")
    assert rejected > 0


def test_scheme_options_rates_and_availability(tmp_path: Path, images) -> None:
    assert "vqvae" in list_schemes()
    default = create_scheme("vqvae")
    assert default.unavailable_reason() is None  # the zoo's r=4, K=512 VQ-VAE
    img = SyntheticWorld(size=64).generate(range(1)).images[0]
    ctx = create_scheme("vqvae[coding=context]")
    msg = ctx.compress(img, 1)
    assert len(msg) < len(create_scheme("vqvae[coding=fixed]").compress(img, 1))
    assert default.decompress(msg).x_hat.shape == (3, 64, 64)  # any receiver decodes any coding
    missing = create_scheme(f"vqvae[model={tmp_path / 'none.safetensors'}]")
    assert "no checkpoint file" in (missing.unavailable_reason() or "")
    with pytest.raises(InputError, match="no checkpoint file"):
        missing.compress(images[0], 1)
    for bad in ("vqvae[coding=huffman]", "vqvae[batch_size=0]", "vqvae[max_pixels=-1]"):
        with pytest.raises(InputError):
            create_scheme(bad)
    sch = _scheme(tiny())
    assert sch.validate_rate(1) == 1.0 and sch.default_rates == (1.0,)
    with pytest.raises(InputError):
        sch.validate_rate(0.5)
    odd = images[0][:, :30, :29].contiguous()  # not a multiple of r: padded, then cropped
    out = sch.decompress(sch.compress(odd, 1))
    assert out.x_hat.shape == (3, 30, 29) and out.aux["indices"].shape == (8, 8)
    with pytest.raises(InputError):
        sch.compress(images[0].float(), 1)
    with pytest.raises(InputError):
        _scheme(tiny(), max_pixels=512).compress(images[0], 1)
    with pytest.raises(InputError, match="not a VQ-VAE"):
        _scheme(torch.nn.Linear(2, 2))
    assert sch.settings(1.0)["coding"] == "auto" and sch.settings(1.0)["K"] == 64


# =========================================================================== recipe


def test_recipe_trains_and_its_checkpoint_serves_the_scheme(tmp_path: Path, capsys) -> None:
    from semcom.train import main
    from semcom.train.recipes import PATCH_MODELS, VQVAERecipe

    assert PATCH_MODELS["vqvae-synth"] is VQVAERecipe
    kw = {"r": 4, "K": 64, "widths": [8, 8], "code_dim": 8, "depth": 1}
    argv = ["--model", "vqvae-synth", "--arch", "vqvae", "--model-kw", json.dumps(kw)]
    argv += ["--steps", "4", "--batch-size", "4", "--image-size", "16", "--eval-n", "8"]
    argv += ["--out", str(tmp_path), "--quiet", "--threads", "1", "--ckpt-every", "0"]
    assert main(argv) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("psnr", "usage", "index_entropy_bits", "log2_k", "prior_bits_per_index"):
        assert key in line, key
    assert line["bytes_per_image"] > 0 and line["bytes_fixed"] > 0 and line["log2_k"] == 6
    ckpt = Path(line["checkpoint"])
    model, meta = load_checkpoint(ckpt)
    assert meta.name == "vqvae" and model.config["K"] == 64
    assert model.prior.fitted  # fitted on training indices at the end of the run
    sch = create_scheme(f"vqvae[model={ckpt}]")
    assert sch.unavailable_reason() is None
    img = SyntheticWorld(size=16).generate(range(2)).images
    out = sch.decompress(sch.compress(img[0], 1))
    assert out.x_hat.shape == (3, 16, 16)
    assert torch.equal(out.aux["indices"], model.encode(to_float(img[:1]))[0])


def test_distortion_hook_is_the_reconstruction_term(tmp_path: Path) -> None:
    from semcom.train import train_patch_model
    from semcom.train.recipes import VQVAERecipe

    seen = []

    class Probe(VQVAERecipe):
        def distortion(self, x, x_hat, batch):
            seen.append((tuple(x.shape), tuple(x_hat.shape), batch.step))
            return super().distortion(x, x_hat, batch) * 0.0 + x_hat.abs().mean()

    kw = {"r": 2, "K": 64, "widths": [4], "code_dim": 4, "depth": 0}
    from semcom.train.loop import fit

    res = fit(
        Probe(model_kw=kw, image_size=8, prior_images=0), tmp_path, steps=2, batch_size=2,
        eval_n=0, quiet=True, ckpt_every=0,
    )  # fmt: skip
    assert seen == [((2, 3, 8, 8), (2, 3, 8, 8), 0), ((2, 3, 8, 8), (2, 3, 8, 8), 1)]
    assert not res.model.prior.fitted  # prior_images=0 leaves it uniform
    with pytest.raises(InputError):
        train_patch_model("vqvae-synth", tmp_path, arch="patch-decoder", steps=1)
    with pytest.raises(InputError):
        train_patch_model("vqvae-synth", tmp_path, prior_images=-1, steps=1)
