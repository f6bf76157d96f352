"""The context-adaptive index prior (``semcom.models.index_context``) and the ``vqvae``
scheme's context coding, slices and concealment of lost slices."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from semcom.codec.container import unpack
from semcom.codec.entropy import decode_chunked, encode_categorical
from semcom.data import SyntheticWorld, to_float
from semcom.errors import BitstreamError, InputError
from semcom.models import create_model, load_checkpoint
from semcom.models.index_context import (
    IndexContext,
    context_of,
    decode_grid,
    encode_grid,
    wavefronts,
)
from semcom.schemes import create_scheme

pytestmark = pytest.mark.usefixtures("one_thread")


def structured(n: int, h: int, w: int, k: int, seed: int = 0) -> np.ndarray:
    """Index grids whose neighbours predict each other: smooth ramps plus 10 % noise."""
    rng = np.random.default_rng(seed)
    i, j = np.mgrid[0:h, 0:w]
    out = (rng.integers(0, k, (n, 1, 1)) + i // 3 + j // 4) % k
    noise = rng.random((n, h, w)) < 0.1
    return np.where(noise, rng.integers(0, k, (n, h, w)), out)


@pytest.fixture(scope="module")
def fitted() -> IndexContext:
    torch.manual_seed(0)
    m = IndexContext(64, hidden=32)
    stats = m.fit([torch.from_numpy(structured(48, 12, 12, 64))], steps=250, seed=0)
    assert stats["positions"] == 48 * 144 and stats["train_bits"] < 3.5
    return m


def test_wavefront_order_is_causal_and_complete() -> None:
    for h, w in ((1, 1), (1, 5), (5, 1), (4, 7), (6, 3)):
        fronts = wavefronts(h, w)
        assert len(fronts) == (2 * (h - 1) + w if w > 1 else h)  # empty fronts skipped
        when = np.full((h, w), -1)
        for t, (rows, cols) in enumerate(fronts):
            assert np.all(when[rows, cols] == -1)
            when[rows, cols] = t
        assert (when >= 0).all()
        for i in range(h):  # every available neighbour comes in an earlier wavefront
            for j in range(w):
                for di, dj in ((0, -1), (-1, 0), (-1, -1), (-1, 1)):
                    a, b = i + di, j + dj
                    if 0 <= a < h and 0 <= b < w:
                        assert when[a, b] < when[i, j]


def test_context_marks_missing_neighbours_and_slice_tops() -> None:
    g = np.arange(12).reshape(3, 4)
    ctx = context_of(g, 99)
    assert ctx.shape == (3, 4, 4)
    assert list(ctx[0, 0]) == [99, 99, 99, 99]
    assert list(ctx[1, 1]) == [4, 1, 0, 2]  # left, up, up-left, up-right
    assert list(ctx[1, 3]) == [6, 3, 2, 99]
    sliced = context_of(g, 99, slice_rows=2)
    assert list(sliced[2, 1]) == [8, 99, 99, 99] and list(sliced[1, 1]) == [4, 1, 0, 2]


def test_fixed_point_weights_do_not_depend_on_the_batch(fitted: IndexContext) -> None:
    ctx = context_of(structured(1, 12, 12, 64)[0], 64).reshape(-1, 4)
    full = fitted.weights(ctx)
    assert full.dtype == np.int64 and full.shape == (144, 64)
    assert (full >= 0).all() and (full.max(axis=1) == 1 << 30).all()
    parts = np.concatenate([fitted.weights(ctx[i : i + 7]) for i in range(0, 144, 7)])
    assert np.array_equal(full, parts)
    assert np.array_equal(fitted.weights(ctx[::-1])[::-1], full)


@pytest.mark.parametrize("slice_rows", [0, 1, 5, 12, 20])
def test_round_trip_and_lost_slices(fitted: IndexContext, slice_rows: int) -> None:
    g = structured(1, 12, 12, 64, seed=3)[0]
    parts = encode_grid(g, fitted, slice_rows)
    assert len(parts) == (-(-12 // slice_rows) if slice_rows else 1)
    out, errors = decode_grid(parts, fitted, 12, 12, slice_rows)
    assert errors == [None] * len(parts) and np.array_equal(out, g)
    if len(parts) > 1:  # a lost slice leaves the others intact
        parts[1] = None
        out, errors = decode_grid(parts, fitted, 12, 12, slice_rows)
        assert errors[1] is not None and errors.count(None) == len(parts) - 1
        lo, hi = slice_rows, min(12, 2 * slice_rows)
        assert (out[lo:hi] == -1).all() and np.array_equal(out[:lo], g[:lo])
        assert np.array_equal(out[hi:], g[hi:])
    with pytest.raises(BitstreamError, match="slices"):
        decode_grid(parts + [b"x"], fitted, 12, 12, slice_rows)


def test_context_beats_the_static_prior_on_correlated_indices(fitted: IndexContext) -> None:
    grids = structured(8, 12, 12, 64, seed=5)
    counts = np.bincount(structured(48, 12, 12, 64).reshape(-1), minlength=64) + 1.0
    prior_bits = sum(len(encode_categorical(g.reshape(-1), counts)) for g in grids) * 8
    ctx_bits = sum(len(encode_grid(g, fitted)[0]) for g in grids) * 8
    ideal = fitted.bits_per_index(grids) * grids.size
    assert ctx_bits < 0.75 * prior_bits
    assert ideal <= ctx_bits + 8 * 4 * len(grids)  # the coder's flush: a few bytes a grid


def test_garbage_slices_are_bitstream_errors(fitted: IndexContext) -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        data = bytes(rng.integers(1, 256, int(rng.integers(1, 40))).astype(np.uint8))
        out, errors = decode_grid([data], fitted, 6, 6)
        if errors[0] is None:  # decodes to some valid grid, or says why not
            assert out.min() >= 0 and out.max() < 64
        else:
            assert (out == -1).all() and errors[0]
    with pytest.raises(BitstreamError):
        decode_chunked(b"\x01" * 64, [1], lambda i, prev: np.ones((1, 8)))
    with pytest.raises(InputError, match="not fitted"):
        encode_grid(np.zeros((2, 2), dtype=int), IndexContext(64, 8))


# =========================================================================== scheme


@pytest.fixture(scope="module")
def codec() -> torch.nn.Module:
    torch.manual_seed(0)
    m = create_model("vqvae", r=4, K=64, widths=[8, 8], code_dim=8, depth=1, context=16).eval()
    x = to_float(SyntheticWorld(size=32).generate(range(16)).images)
    idx = m.encode(x)
    m.fit_prior(idx)
    m.fit_context([idx], steps=100)
    return m


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return SyntheticWorld(size=32).generate(range(100, 104)).images


def test_scheme_context_coding_round_trip(codec, images) -> None:
    idx = codec.encode(to_float(images))
    for coding in ("context", "auto"):
        sch = create_scheme("vqvae", model=codec, coding=coding)
        msgs = sch.compress_batch(images, 1)
        for i, out in enumerate(sch.decompress_batch(msgs)):
            assert torch.equal(out.aux["indices"], idx[i])
            assert out.stats["slices_lost"] == 0 and out.stats["slices"] == 1
    c = unpack(create_scheme("vqvae", model=codec, coding="context").compress(images[0])).fields
    assert c["c"] == 3
    plain = create_model("vqvae", r=4, K=64, widths=[8, 8], code_dim=8, depth=1).eval()
    with pytest.raises(InputError, match="context"):
        create_scheme("vqvae", model=plain, coding="context")
    sch = create_scheme("vqvae", model=codec, coding="context")
    recv = create_scheme("vqvae", model=plain, check_models=False)
    with pytest.raises(BitstreamError, match="context model"):
        recv.decompress(sch.compress(images[0]))


@pytest.mark.parametrize("coding", ["prior", "fixed", "adaptive", "context"])
def test_sliced_messages_conceal_lost_slices(codec, images, coding: str) -> None:
    idx = codec.encode(to_float(images[:1]))[0]
    sch = create_scheme("vqvae", model=codec, coding=coding, slice_rows=3)
    msg = sch.compress(images[0])
    parsed = unpack(msg)
    assert parsed.fields["s"] == 3 and list(parsed.sections) == ["s0", "s1", "s2"]
    assert torch.equal(sch.decompress(msg).aux["indices"], idx)  # intact: exact
    info = next(s for s in parsed.layout.sections if s.tag == "s1")
    lost = [(info.offset, info.offset + 1)]
    with pytest.raises(BitstreamError, match="s1"):
        sch.decompress(msg, erasures=lost)
    mode = int(np.argmax(codec.prior.table()))
    for conceal in ("prior", "above"):
        recv = create_scheme("vqvae", model=codec, conceal=conceal)
        out = recv.decompress(msg, erasures=lost)
        got = out.aux["indices"]
        assert out.stats["slices_lost"] == 1 and out.x_hat.shape == (3, 32, 32)
        assert torch.equal(got[:3], idx[:3]) and torch.equal(got[6:], idx[6:])
        want = idx[2].expand(3, -1) if conceal == "above" else torch.full((3, 8), mode)
        assert torch.equal(got[3:6], want)
    damaged = bytearray(msg)  # a flipped bit in a slice: its CRC fails, it is concealed
    damaged[info.offset + 1] ^= 0x10
    out = create_scheme("vqvae", model=codec, conceal="prior").decompress(bytes(damaged))
    assert out.stats["slices_lost"] == 1


def test_bad_slice_options_and_headers(codec, images) -> None:
    for bad in ({"slice_rows": -1}, {"slice_rows": 1.5}, {"conceal": "zero"}):
        with pytest.raises(InputError):
            create_scheme("vqvae", model=codec, **bad)
    from semcom.codec.container import Message, pack

    msg = unpack(create_scheme("vqvae", model=codec, slice_rows=4).compress(images[0]))
    wrong = Message(scheme="vqvae", fields=msg.fields, sections={"s0": msg.sections["s0"]})
    with pytest.raises(BitstreamError, match="sections"):
        create_scheme("vqvae", model=codec, conceal="prior").decompress(pack(wrong))


def test_recipe_fits_the_context_model(tmp_path: Path, capsys) -> None:
    from semcom.train import main

    kw = {"r": 4, "K": 64, "widths": [8, 8], "code_dim": 8, "depth": 1, "context": 8}
    argv = ["--model", "vqvae-synth", "--arch", "vqvae", "--model-kw", json.dumps(kw)]
    argv += ["--steps", "3", "--batch-size", "4", "--image-size", "16", "--eval-n", "8"]
    argv += ["--out", str(tmp_path), "--quiet", "--threads", "1", "--ckpt-every", "0"]
    assert main(argv) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["bytes_context"] > 0 and math.isfinite(line["bytes_context"])
    model, _ = load_checkpoint(Path(line["checkpoint"]))
    assert model.context is not None and model.context.fitted
    assert "context.left.weight" in model.state_dict()


def test_add_context_to_a_trained_checkpoint(tmp_path: Path, capsys) -> None:
    from semcom.models import save_checkpoint
    from semcom.train.context import main

    plain = create_model("vqvae", r=4, K=64, widths=[8, 8], code_dim=8, depth=1).eval()
    src = save_checkpoint(plain, tmp_path / "plain.safetensors")
    out = tmp_path / "ctx.safetensors"
    argv = [str(src), "--out", str(out), "--hidden", "8", "--images", "16", "--steps", "20"]
    assert main([*argv, "--image-size", "16", "--eval-n", "8", "--threads", "1"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["bytes_context"] > 0 and line["positions"] == 16 * 16
    model, _ = load_checkpoint(out)
    assert model.config["context"] == 8 and model.context.fitted and model.prior.fitted
    x = to_float(SyntheticWorld(size=16).generate(range(3)).images)
    assert torch.equal(model.encode(x), plain.encode(x))  # the same codec, a new prior
    assert main([str(tmp_path / "missing.safetensors"), "--out", str(out)]) == 2
    assert "error:" in capsys.readouterr().err


def test_exact_matmul_matches_integer_arithmetic() -> None:
    from semcom.models.index_context import _exact_matmul

    rng = np.random.default_rng(0)
    a = rng.integers(-(1 << 20), 1 << 20, (7, 64))
    b = rng.integers(-(1 << 20), 1 << 20, (64, 9))
    assert np.array_equal(_exact_matmul(a, b), a @ b)  # float64 path, exact
    big = rng.integers(-(1 << 40), 1 << 40, (3, 64))
    assert np.array_equal(_exact_matmul(big, b), big @ b)  # integer path
