"""Ballé et al.'s codecs (``semcom.models.balle``): layers, CompressAI's key names, the
coding tables, compress/decompress; the ``balle`` scheme's messages and hostile inputs;
the ``balle-synth`` recipe; the grouped range coding underneath."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from semcom.codec.container import SCHEME_IDS, Message, pack, unpack
from semcom.codec.entropy import decode_grouped, encode_grouped
from semcom.codec.fuzz import KINDS, mutate
from semcom.data import SyntheticWorld, to_float, to_uint8
from semcom.errors import BitstreamError, InputError
from semcom.models import create_model, load_checkpoint, save_checkpoint
from semcom.models.balle import GDN, PMF_BITS, rate_bits
from semcom.models.fingerprint import ModelMismatchError
from semcom.schemes import create_scheme, list_schemes

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(kind: str = "hyperprior", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = create_model(f"balle-{kind}", N=8, M=12, support=31)
    m.update()
    return m.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return SyntheticWorld(size=64).generate(range(3)).images


def test_grouped_coding_round_trip_and_garbage() -> None:
    rng = np.random.default_rng(0)
    tables = rng.random((5, 16)) + 0.01
    groups = rng.integers(0, 5, 300)
    sym = rng.integers(0, 16, 300)
    data = encode_grouped(sym, groups, tables)
    assert np.array_equal(decode_grouped(data, groups, tables), sym)
    assert encode_grouped(np.zeros(0, int), np.zeros(0, int), tables) == b""
    with pytest.raises(BitstreamError):
        decode_grouped(data + b"\x07\x07\x07\x07\x07", groups, tables)
    with pytest.raises(InputError):
        encode_grouped(sym, groups + 5, tables)


def test_keys_follow_compressai_and_shapes() -> None:
    m = create_model("balle-hyperprior", N=8, M=12)
    keys = set(m.state_dict())
    for k in (
        "g_a.0.weight", "g_a.1.beta", "g_a.1.gamma", "g_a.6.weight", "g_s.1.beta",
        "h_a.0.weight", "h_s.4.weight", "entropy_bottleneck.matrices.0",
        "entropy_bottleneck.biases.4", "entropy_bottleneck.factors.3",
        "entropy_bottleneck.pmf", "gaussian_conditional.scale_table",
        "gaussian_conditional.pmf",
    ):  # fmt: skip
        assert k in keys, k
    assert m.stride == 64 and create_model("balle-factorized").stride == 16
    x = torch.rand(2, 3, 64, 128)
    m.train()
    out = m(x)
    assert out["x_hat"].shape == x.shape
    assert out["likelihoods"]["y"].shape == (2, 12, 4, 8)
    assert out["likelihoods"]["z"].shape == (2, 8, 1, 2)
    for lik in out["likelihoods"].values():
        assert float(lik.detach().min()) > 0 and float(lik.detach().max()) <= 1
    rate_bits(out).backward()  # the rate term reaches the analysis transform
    assert m.g_a[0].weight.grad is not None and m.entropy_bottleneck.matrices[0].grad is not None
    with pytest.raises(InputError, match="multiple of 64"):
        m(torch.rand(1, 3, 48, 64))
    for bad in ({"N": 0}, {"M": 2.5}, {"support": 0}):
        with pytest.raises(InputError):
            create_model("balle-factorized", **bad)


def test_gdn_and_its_inverse() -> None:
    g, ig = GDN(4), GDN(4, inverse=True)
    x = torch.randn(2, 4, 5, 5)
    norm = torch.sqrt(1.0 + 0.1 * x * x)  # at init beta = 1, gamma = 0.1 I
    assert torch.allclose(g(x), x / norm, atol=1e-5)
    assert torch.allclose(ig(x), x * norm, atol=1e-5)
    assert torch.allclose(g(torch.zeros(1, 4, 2, 2)), torch.zeros(1, 4, 2, 2))


@pytest.mark.parametrize("kind", ["factorized", "hyperprior"])
def test_tables_and_compress_decompress(kind: str) -> None:
    m = tiny(kind)
    pmf = m.entropy_bottleneck.pmf
    assert pmf.shape == (m.entropy_bottleneck.channels, 63) and int(pmf.min()) >= 0
    assert abs(int(pmf.sum(1).float().mean()) - (1 << PMF_BITS)) < 64
    x = torch.rand(1, 3, 64, 64)
    c = m.compress(x)
    out = m.decompress(c["strings"], c["shape"])["x_hat"]
    with torch.no_grad():
        ref = m(x)
    assert torch.allclose(out, ref["x_hat"].clamp(0, 1), atol=1e-5)
    real = 8 * sum(len(s) for s in c["strings"])
    assert real <= float(rate_bits(ref)) * 1.1 + 64  # close to the ideal rate


def test_untrained_tables_are_refused() -> None:
    m = create_model("balle-factorized", N=8, M=12).eval()
    with pytest.raises(InputError, match="update"):
        m.compress(torch.rand(1, 3, 16, 16))
    with pytest.raises(InputError, match="update"):
        create_scheme("balle", model=m)


@pytest.mark.parametrize("kind", ["factorized", "hyperprior"])
def test_scheme_round_trip_with_padding(kind: str, images) -> None:
    assert "balle" in list_schemes() and SCHEME_IDS["balle"] == 22
    m = tiny(kind)
    sch = create_scheme("balle", model=m)
    crop = images[:, :, :40, :56]  # not a multiple of the stride: padded, then cropped
    msgs = sch.compress_batch(crop, 1)
    outs = sch.decompress_batch(msgs)
    for i, out in enumerate(outs):
        assert out.x_hat.shape == (3, 40, 56) and out.x_hat.dtype == torch.uint8
        pad = (0, (-56) % m.stride, 0, (-40) % m.stride)
        x = torch.nn.functional.pad(to_float(crop[i : i + 1]), pad, mode="replicate")
        with torch.no_grad():
            want = to_uint8(m(x)["x_hat"].clamp(0, 1))[0, :, :40, :56]
        assert (out.x_hat.int() - want.int()).abs().max() <= 1
    msg = unpack(msgs[0])
    assert msg.scheme_name == "balle" and msg.fields["m"] == (kind == "hyperprior")
    assert list(msg.sections) == (["y", "z"] if kind == "hyperprior" else ["y"])
    with pytest.raises(InputError, match="the only rate is 1"):
        sch.compress(images[0], 0.5)


def _repacked(data: bytes, fields=None, sections=None) -> bytes:
    msg = unpack(data)
    secs = dict(msg.sections) if sections is None else sections
    return pack(Message(msg.scheme, {**msg.fields, **(fields or {})}, secs))


def test_bad_messages_raise_bitstream_errors(images) -> None:
    m = tiny()
    sch = create_scheme("balle", model=m)
    msg = sch.compress(images[0])
    y, z = unpack(msg).sections["y"], unpack(msg).sections["z"]
    cases = {
        "truncated": msg[:-3],
        "trailing": msg + b"\x01",
        "other kind": _repacked(msg, {"m": 0}),
        "kind out of range": _repacked(msg, {"m": 7}),
        "too large": _repacked(msg, {"h": 4096, "w": 4096}),
        "fp of other weights": _repacked(msg, {"fp": b"\x00\x01\x02\x03"}),
        "no z": _repacked(msg, sections={"y": y}),
        "y with trailing data": _repacked(msg, sections={"y": y + b"\x55" * 5, "z": z}),
        "extra field": _repacked(msg, {"zz": 1}),
        "not a message": b"hello",
    }
    for what, data in cases.items():
        with pytest.raises(BitstreamError) as info:
            sch.decompress(data)
        assert "\n" not in str(info.value), what
    with pytest.raises(ModelMismatchError):
        create_scheme("balle", model=tiny(seed=1)).decompress(msg)
    with pytest.raises(BitstreamError, match="scale hyperprior"):
        create_scheme("balle", model=tiny("factorized"), check_models=False).decompress(msg)


def test_fuzzed_messages_raise_only_bitstream_errors(images) -> None:
    m = tiny()
    sch = create_scheme("balle", model=m)
    msgs = [sch.compress(images[i]) for i in range(2)]
    rng = random.Random("fuzz-balle")
    for kind in KINDS:
        for _ in range(5):
            _, data = mutate(rng.choice(msgs), rng, kind)
            try:
                out = sch.decompress(data)
                assert out.x_hat.dtype == torch.uint8
            except BitstreamError:
                pass
            except Exception as exc:  # noqa: BLE001 - the point of the test
                pytest.fail(f"{kind} mutant: {type(exc).__name__}: {exc}")


def test_recipe_trains_and_serves(tmp_path: Path, capsys) -> None:
    from semcom.train import main

    kw = {"N": 8, "M": 12, "support": 31}
    argv = ["--model", "balle-synth", "--arch", "balle-factorized", "--model-kw", json.dumps(kw)]
    argv += ["--task-loss", "none", "--mse-weight", "1", "--lmbda", "0.05"]
    argv += ["--steps", "3", "--batch-size", "4", "--image-size", "32", "--eval-n", "8"]
    argv += ["--out", str(tmp_path), "--quiet", "--threads", "1", "--ckpt-every", "0"]
    assert main(argv) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["bytes_per_image"] > 0 and line["bpp_ideal"] > 0 and "psnr" in line
    model, meta = load_checkpoint(Path(line["checkpoint"]))
    assert meta.name == "balle-factorized" and model.entropy_bottleneck.ready
    sch = create_scheme(f"balle[model={line['checkpoint']}]")
    img = SyntheticWorld(size=32).generate(range(1)).images
    assert sch.decompress(sch.compress(img[0])).x_hat.shape == (3, 32, 32)
    bad = [*argv[:3], "vqvae", *argv[4:]]
    assert main(bad) == 2
    assert main([a if a != "0.05" else "0" for a in argv]) == 2


def test_checkpoint_with_wrong_shapes_is_refused(tmp_path: Path) -> None:
    m = tiny()
    path = save_checkpoint(m, tmp_path / "b.safetensors")
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    tensors["g_a.0.weight"] = torch.zeros(3, 3, 5, 5)
    import json as _json

    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(BitstreamError, match="g_a.0.weight"):
        load_checkpoint(tmp_path / "bad.safetensors")
    assert _json.loads(meta["config"])["N"] == 8


def test_generic_evaluate_scores_a_balle_codec() -> None:
    from semcom.train import evaluate

    res = evaluate(tiny("factorized"), split="test", n=4, image_size=32)
    assert res["n"] == 4 and res["bytes_per_image"] > 0 and "psnr" in res
