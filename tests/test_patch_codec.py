"""Tests for semcom.patches.codec: position coding, pixel codecs, groups."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcom.codec.pillow import available_formats
from semcom.data.synthetic import SyntheticWorld
from semcom.errors import BitstreamError, InputError
from semcom.patches import patchify
from semcom.patches.codec import (
    POS_BITMAP,
    POS_COMBINATORIAL,
    POS_GAPS,
    PixelCodec,
    decode_groups,
    decode_positions,
    encode_positions,
    group_bounds,
    med_reconstruct,
    med_residuals,
    mosaic_shape,
    parse_pixel_codec,
    pixel_codec_from_id,
    position_sizes,
)
from semcom.patches.positions import _exp_golomb  # builds hand-made gap payloads


def needs(fmt: str) -> pytest.MarkDecorator:
    """Skip where this Pillow build lacks ``fmt``: its codecs are optional platform features
    (``test_pillow_codec.py`` checks that ``available_formats`` tells the truth)."""
    return pytest.mark.skipif(
        fmt not in available_formats(),
        reason=f"this Pillow build has no {fmt} codec (optional platform feature)",
    )


def with_format(spec: str, *rest: object) -> object:
    """A parameter (``spec``, then ``rest``) that needs ``spec``'s Pillow format."""
    fmt = spec.strip().split(":")[0]
    return pytest.param(spec, *rest, marks=needs(fmt))


def subset(p: int, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(p, k, replace=False)).astype(np.int64)


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    """Real synthetic-image patches: uint8 (64, 3, 8, 8) (one 64x64 image)."""
    img = SyntheticWorld(size=64).generate([0]).images
    return patchify(img, 8)[0].numpy()


# ============================================================================ positions


@settings(max_examples=150, deadline=None)
@given(p=st.integers(1, 1024), frac=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_positions_round_trip(p, frac, seed):
    k = min(p, int(frac * (p + 1)))
    idx = subset(p, k, seed)
    data = encode_positions(idx, p)
    np.testing.assert_array_equal(decode_positions(data, p, k), idx)
    sizes = position_sizes(idx, p)
    assert len(data) == min(sizes.values())  # the cheapest mode is used
    assert len(data) <= 1 + (p + 7) // 8  # never worse than the bitmap


@settings(max_examples=60, deadline=None)
@given(p=st.integers(1, 1024), data=st.data())
def test_positions_round_trip_clustered(p, data):
    start = data.draw(st.integers(0, p - 1))
    stop = data.draw(st.integers(start + 1, p))
    idx = np.arange(start, stop)
    enc = encode_positions(idx, p)
    np.testing.assert_array_equal(decode_positions(enc, p, idx.size), idx)


def test_position_mode_choice():
    # two contiguous runs on a large grid: gap coding wins by far
    runs = np.r_[np.arange(100, 140), np.arange(500, 560)]
    enc = encode_positions(runs, 1024)
    assert enc[0] == POS_GAPS and len(enc) < position_sizes(runs, 1024)["combinatorial"] / 2
    # a random half: combinatorial and bitmap tie at 8 bytes -> the bitmap (lower tag)
    half = subset(64, 32, 1)
    assert position_sizes(half, 64)["bitmap"] == 9
    assert encode_positions(half, 64)[0] == POS_BITMAP
    # sparse random subset of a large grid: combinatorial (log2 C(1024, 5) ~ 43 bits)
    sparse = np.array([3, 200, 511, 700, 1001])
    enc = encode_positions(sparse, 1024)
    assert enc[0] == POS_COMBINATORIAL and len(enc) == 1 + 6
    # everything / nothing kept: the combinatorial rank is empty
    assert encode_positions(np.arange(64), 64) == bytes([POS_COMBINATORIAL])
    assert len(encode_positions(np.arange(0), 64)) == 1
    assert decode_positions(encode_positions(np.arange(0), 64), 64, 0).size == 0
    np.testing.assert_array_equal(decode_positions(bytes([2]), 64, 64), np.arange(64))


def test_positions_bitmap_decoder():
    bits = np.zeros(12, dtype=bool)
    bits[[0, 5, 11]] = True
    payload = bytes([POS_BITMAP]) + np.packbits(bits).tobytes()
    np.testing.assert_array_equal(decode_positions(payload, 12, 3), [0, 5, 11])
    # gaps: 0 -> "1", 1 -> "010", 4 -> "00101"; [0, 2, 7] has gaps [0, 1, 4]
    assert _exp_golomb([0, 1, 4]) == bytes([0b10100010, 0b10000000])
    payload = bytes([POS_GAPS, 0b10100010, 0b10000000])
    np.testing.assert_array_equal(decode_positions(payload, 12, 3), [0, 2, 7])


@pytest.mark.parametrize(
    "payload, p, k, why",
    [
        (b"", 64, 3, "empty"),
        (bytes([9]), 64, 3, "unknown mode"),
        (bytes([POS_BITMAP]) + b"\x01" * 7, 64, 8, "bitmap too short"),
        (bytes([POS_BITMAP]) + b"\x01" * 9, 64, 9, "bitmap too long"),
        (bytes([POS_BITMAP, 0xF0, 0x01]), 12, 4, "padding bit set"),
        (bytes([POS_BITMAP]) + b"\x01" * 8, 64, 9, "popcount differs from k"),
        (bytes([POS_COMBINATORIAL]) + b"\xff" * 8, 64, 32, "rank out of range"),
        (bytes([POS_COMBINATORIAL]) + b"\x00" * 3, 64, 32, "rank wrong length"),
        (bytes([POS_COMBINATORIAL]), 64, 65, "k > P"),
        (bytes([POS_GAPS]), 64, 3, "gaps truncated"),
        (bytes([POS_GAPS]) + _exp_golomb([60, 1, 0, 0]), 64, 4, "index out of range"),
        (bytes([POS_GAPS]) + _exp_golomb([1, 2, 3]), 64, 2, "more gaps than k"),
        (bytes([POS_GAPS]) + _exp_golomb([1, 2]), 64, 3, "fewer gaps than k"),
        (bytes([POS_GAPS, 0x81]), 64, 1, "non-zero padding"),
        (bytes([POS_GAPS, 0, 0, 0, 1]), 64, 1, "code too long"),
    ],
)
def test_positions_reject(payload, p, k, why):
    with pytest.raises(BitstreamError):
        decode_positions(payload, p, k)


def test_positions_bad_input():
    for bad in ([3, 2], [0, 0], [-1, 2], [5, 64], [[1, 2]], [0.5]):
        with pytest.raises(InputError):
            encode_positions(np.array(bad), 64)
    with pytest.raises(InputError):
        encode_positions([1], 0)


# ========================================================================= pixel codecs


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / max(mse, 1e-12))


@pytest.mark.parametrize("spec", ["raw", "q8", "q8:plain"])
def test_lossless_codecs_exact(spec, tiles):
    codec = parse_pixel_codec(spec)
    assert codec.lossless
    for n in (1, 5, 16):
        data = codec.encode(tiles[:n])
        np.testing.assert_array_equal(codec.decode(data, n, 8), tiles[:n])
    assert len(parse_pixel_codec("raw").encode(tiles[:5])) == 5 * 3 * 8 * 8
    q8, q8_plain = (len(parse_pixel_codec(s).encode(tiles)) for s in ("q8", "q8:plain"))
    assert q8 < 0.6 * tiles.size and q8 < 0.6 * q8_plain  # MED prediction pays


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("plain", [False, True])
def test_quantised_codecs_error_bound(bits, plain, tiles):
    codec = parse_pixel_codec(f"q{bits}" + (":plain" if plain else ""))
    out = codec.decode(codec.encode(tiles), len(tiles), 8)
    err = np.abs(out.astype(int) - tiles.astype(int))
    assert err.max() <= 1 << (7 - bits)  # half a quantisation bin
    np.testing.assert_array_equal(out, codec.quantize(tiles))


def test_quantised_sizes_shrink_with_bits(tiles):
    sizes = [len(parse_pixel_codec(f"q{b}").encode(tiles)) for b in (8, 6, 4, 2)]
    assert sizes == sorted(sizes, reverse=True)
    assert len(parse_pixel_codec("q4").encode(tiles)) < len(
        parse_pixel_codec("q4:plain").encode(tiles)
    )


@pytest.mark.parametrize(
    "spec", [with_format("jpeg:90"), with_format("webp:90"), with_format("avif:80")]
)
def test_mosaic_codecs_close(spec, tiles):
    codec = parse_pixel_codec(spec)
    for n in (1, 7, 16, 64):
        data = codec.encode(tiles[:n])
        out = codec.decode(data, n, 8)
        assert out.shape == (n, 3, 8, 8) and out.dtype == np.uint8
        assert psnr(out, tiles[:n]) > 25.0, (spec, n)
    # the mosaic is near-square
    assert mosaic_shape(16) == (4, 4) and mosaic_shape(17) == (4, 5) and mosaic_shape(1) == (1, 1)
    assert mosaic_shape(7) == (3, 3)


@needs("webp")
def test_mosaic_wrong_size_and_garbage(tiles):
    codec = parse_pixel_codec("webp:75")
    data = codec.encode(tiles[:4])  # a 2x2 mosaic
    with pytest.raises(BitstreamError, match="mosaic"):
        codec.decode(data, 9, 8)  # expects 3x3
    with pytest.raises(BitstreamError):
        codec.decode(data[:-5], 4, 8)
    with pytest.raises(BitstreamError):
        codec.decode(b"garbage garbage garbage garbage", 4, 8)


def test_pixel_decode_errors(tiles):
    raw = parse_pixel_codec("raw")
    with pytest.raises(BitstreamError, match="raw pixels"):
        raw.decode(raw.encode(tiles[:2])[:-1], 2, 8)
    q4 = parse_pixel_codec("q4")
    data = q4.encode(tiles[:4])
    with pytest.raises(BitstreamError):
        q4.decode(data, 5, 8)  # the stream holds 4 tiles' symbols
    with pytest.raises(BitstreamError):
        q4.decode(b"", 4, 8)


@pytest.mark.parametrize(
    "spec, kind, param",
    [
        ("raw", "raw", 8),
        ("q4", "q", 4),
        ("Q1", "q", 1),
        ("q6:plain", "q-plain", 6),
        ("jpg:50", "jpeg", 50),
        with_format("webp:0", "webp", 0),
        with_format(" avif:100 ", "avif", 100),
    ],
)
def test_parse_pixel_codec(spec, kind, param):
    codec = parse_pixel_codec(spec)
    assert (codec.kind, codec.param) == (kind, param)
    assert parse_pixel_codec(codec.spec) == codec
    assert pixel_codec_from_id(codec.codec_id, codec.param) == codec


@pytest.mark.parametrize(
    "spec",
    ["", "q", "q0", "q9", "q4:fast", "webp", "webp:101", "jpeg:0", "jpeg:-5", "png:5", "raw:8", 4],
)
def test_parse_pixel_codec_rejects(spec):
    with pytest.raises(InputError):
        parse_pixel_codec(spec)


@pytest.mark.parametrize("cid, param", [(9, 4), (1, 0), (1, 9), (4, 101), (0, 7), ("1", 4)])
def test_codec_from_bad_id(cid, param):
    with pytest.raises(BitstreamError):
        pixel_codec_from_id(cid, param)


def test_codec_encode_rejects_bad_tiles():
    codec = PixelCodec("raw", 8)
    for bad in (np.zeros((2, 3, 8, 8), np.int16), np.zeros((2, 1, 8, 8), np.uint8)):
        with pytest.raises(InputError):
            codec.encode(bad)
    with pytest.raises(InputError):
        codec.encode(np.zeros((0, 3, 8, 8), np.uint8))


@settings(max_examples=60, deadline=None)
@given(
    bits=st.integers(1, 8),
    s=st.integers(1, 9),
    n=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_med_round_trip(bits, s, n, seed):
    q = np.random.default_rng(seed).integers(0, 1 << bits, (n, 3, s, s))
    sym = med_residuals(q, bits)
    assert sym.min() >= 0 and sym.max() < 1 << bits
    np.testing.assert_array_equal(med_reconstruct(sym, bits), q)


def test_med_predicts_smooth_content():
    ramp = np.tile(np.arange(8), (8, 1))[None, None].repeat(3, 1)  # horizontal ramp
    sym = med_residuals(ramp, 4)
    assert not sym[..., 1:, :].any()  # below the first row, MED predicts the ramp exactly
    assert (sym[..., 0, 1:] == 2).all()  # first row: left prediction, residual +1 (zigzag 2)


# ============================================================================== groups


@pytest.mark.parametrize("k, g", [(1, 16), (16, 16), (17, 16), (64, 16), (20, 6), (5, 1)])
def test_group_bounds(k, g):
    bounds = group_bounds(k, g)
    assert len(bounds) == math.ceil(k / g)
    assert bounds[0][0] == 0 and bounds[-1][1] == k
    assert all(a < b for a, b in bounds)
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) <= g and max(sizes) - min(sizes) <= 1
    assert group_bounds(0, 4) == []
    with pytest.raises(InputError):
        group_bounds(4, 0)


@pytest.mark.parametrize("spec", ["q4", "raw", with_format("webp:90")])
def test_decode_groups_with_a_lost_group(spec, tiles):
    codec = parse_pixel_codec(spec)
    bounds = group_bounds(20, 8)  # 7, 7, 6
    payloads: list[bytes | None] = [codec.encode(tiles[a:b]) for a, b in bounds]
    payloads[1] = None
    out, received = decode_groups(codec, payloads, bounds, 8)
    assert received.tolist() == [True] * 7 + [False] * 7 + [True] * 6
    assert not out[7:14].any()
    full = np.concatenate(
        [codec.decode(p, b - a, 8) for p, (a, b) in zip(payloads, bounds, strict=True) if p]
    )
    np.testing.assert_array_equal(out[received], full)
