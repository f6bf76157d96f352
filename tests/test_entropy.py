"""Entropy coding: exact round trips, near-entropy sizes, and safe decoding of junk."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcom.codec.entropy import (
    decode_adaptive,
    decode_auto,
    decode_categorical,
    decode_with_histogram,
    empirical_entropy_bits,
    encode_adaptive,
    encode_auto,
    encode_categorical,
    encode_with_histogram,
    quantize_counts,
)
from semcom.codec.varint import encode_uvarint
from semcom.errors import BitstreamError, InputError

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL_CAP = 5000  # max_symbols for junk decoding: keeps every decode fast


@st.composite
def symbol_streams(draw: st.DrawFn, max_k: int = 300, max_n: int = 400) -> tuple[np.ndarray, int]:
    k = draw(st.integers(1, max_k))
    n = draw(st.integers(0, max_n))
    skew = draw(st.sampled_from(["uniform", "few", "one"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if skew == "uniform":
        sym = rng.integers(0, k, n)
    elif skew == "few":
        sym = rng.choice(rng.integers(0, k, 3), n)
    else:
        sym = np.full(n, rng.integers(0, k))
    return sym.astype(np.int64), k


def decode_any(
    mode: str, data: bytes, k: int, n: int, probs: np.ndarray | None = None
) -> np.ndarray:
    if mode == "categorical":
        assert probs is not None
        return decode_categorical(data, probs, n, max_symbols=SMALL_CAP)
    if mode == "adaptive":
        return decode_adaptive(data, k, n, max_symbols=SMALL_CAP)
    if mode == "histogram":
        return decode_with_histogram(data, k, max_symbols=SMALL_CAP)
    return decode_auto(data, k, max_symbols=SMALL_CAP)


# --------------------------------------------------------------------------- round trips


@given(symbol_streams(), st.data())
@FAST
def test_categorical_round_trip(stream: tuple[np.ndarray, int], data: st.DataObject) -> None:
    sym, k = stream
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    probs = rng.random(k) * (rng.random(k) > 0.3)  # zeros included: still codable
    probs[0] += 0.01
    out = decode_categorical(encode_categorical(sym, probs), probs, sym.size)
    assert out.dtype == np.int64 and np.array_equal(out, sym)


@given(symbol_streams(max_k=40, max_n=120), st.integers(0, 1000))
@FAST
def test_categorical_per_symbol_round_trip(stream: tuple[np.ndarray, int], seed: int) -> None:
    sym, k = stream
    probs = np.random.default_rng(seed).random((sym.size, k)).astype(np.float32) + 1e-3
    enc = encode_categorical(sym, probs)
    assert np.array_equal(decode_categorical(enc, probs, sym.size), sym)


@given(symbol_streams())
@FAST
def test_adaptive_round_trip(stream: tuple[np.ndarray, int]) -> None:
    sym, k = stream
    assert np.array_equal(decode_adaptive(encode_adaptive(sym, k), k, sym.size), sym)


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(encode_with_histogram, decode_with_histogram), (encode_auto, decode_auto)],
    ids=["histogram", "auto"],
)
@given(stream=symbol_streams())
@FAST
def test_self_contained_round_trip(encode, decode, stream: tuple[np.ndarray, int]) -> None:
    """The stream carries its symbol count: decoding needs no ``n``, and a wrong one fails."""
    sym, k = stream
    enc = encode(sym, k)
    assert np.array_equal(decode(enc, k), sym)
    assert np.array_equal(decode(enc, k, sym.size), sym)
    with pytest.raises(BitstreamError):
        decode(enc, k, sym.size + 1)


@given(symbol_streams())
@FAST
def test_auto_picks_the_shorter_mode(stream: tuple[np.ndarray, int]) -> None:
    sym, k = stream
    enc = encode_auto(sym, k)
    if k > 1 and sym.size:
        prefix = len(encode_uvarint(2 * sym.size + 1))  # the count, with the mode bit
        hist = len(encode_with_histogram(sym, k)) - len(encode_uvarint(sym.size)) + prefix
        assert len(enc) == min(hist, len(encode_adaptive(sym, k)) + prefix)


def test_large_alphabet_and_long_stream() -> None:
    rng = np.random.default_rng(0)
    k = 1 << 16
    sym = rng.integers(0, 50, 3000) * 1000 + 7
    for enc, dec in (
        (encode_with_histogram, lambda d: decode_with_histogram(d, k)),
        (encode_adaptive, lambda d: decode_adaptive(d, k, sym.size)),
        (encode_auto, lambda d: decode_auto(d, k)),
    ):
        assert np.array_equal(dec(enc(sym, k)), sym)


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("dist", ["uniform", "geometric", "zipf"])
def test_histogram_mode_is_near_entropy(dist: str) -> None:
    rng = np.random.default_rng(1)
    k, n = 256, 100_000
    shapes = {"uniform": np.ones(k), "geometric": 0.8 ** np.arange(k)}
    p = shapes.get(dist, 1 / np.arange(1, k + 1))
    sym = rng.choice(k, n, p=p / p.sum())
    bits = empirical_entropy_bits(sym, k)
    size = len(encode_with_histogram(sym, k))
    assert bits / 8 <= size <= 1.01 * bits / 8
    assert len(encode_adaptive(sym, k)) <= 1.01 * bits / 8


def test_fixed_prior_matches_cross_entropy() -> None:
    rng = np.random.default_rng(2)
    p = np.array([0.7, 0.2, 0.05, 0.05])
    sym = rng.choice(4, 20_000, p=p)
    cross = -np.log2(p[sym]).sum() / 8
    assert abs(len(encode_categorical(sym, p)) - cross) <= 0.002 * cross + 8


def test_degenerate_streams_are_tiny() -> None:
    assert encode_categorical(np.zeros(0, np.int64), np.ones(4)) == b""
    assert encode_adaptive(np.zeros(5, np.int64), 1) == b""
    assert len(encode_with_histogram(np.full(10_000, 3), 8)) <= 6
    assert np.array_equal(
        decode_with_histogram(encode_with_histogram(np.full(7, 3), 8), 8), np.full(7, 3)
    )


def test_empirical_entropy_bits() -> None:
    assert empirical_entropy_bits([0, 1, 2, 3], 4) == pytest.approx(8.0)
    assert empirical_entropy_bits([5, 5, 5], 8) == 0.0
    assert empirical_entropy_bits([], 8) == 0.0
    assert empirical_entropy_bits([0, 0, 0, 1], 2) == pytest.approx(
        4 * (0.75 * math.log2(4 / 3) + 0.25 * 2)
    )


@given(st.lists(st.integers(0, 2**46), max_size=50))
@FAST
def test_quantize_counts_is_rounded_sqrt(counts: list[int]) -> None:
    got = quantize_counts(np.array(counts, dtype=np.int64)).tolist()
    for c, v in zip(counts, got, strict=True):
        assert (v - 0.5) ** 2 <= c < (v + 0.5) ** 2 or (c == 0 and v == 0)


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("mode", ["categorical", "adaptive", "histogram", "auto"])
@given(junk=st.binary(max_size=64), k=st.integers(1, 300), n=st.integers(0, 300))
@FAST
def test_junk_never_crashes(mode: str, junk: bytes, k: int, n: int) -> None:
    probs = np.linspace(1.0, 2.0, k)
    try:
        out = decode_any(mode, junk, k, n, probs)
    except BitstreamError:
        return
    assert out.dtype == np.int64 and out.ndim == 1
    assert out.size <= SMALL_CAP and (out.size == 0 or (out.min() >= 0 and out.max() < k))
    if mode in ("categorical", "adaptive"):
        assert out.size == n


@pytest.mark.parametrize("mode", ["categorical", "adaptive", "histogram", "auto"])
@given(stream=symbol_streams(max_n=200), data=st.data())
@settings(max_examples=25, deadline=None)
def test_corrupted_and_truncated_streams(
    mode: str, stream: tuple[np.ndarray, int], data: st.DataObject
) -> None:
    sym, k = stream
    probs = np.linspace(1.0, 2.0, k)
    enc = {
        "categorical": lambda: encode_categorical(sym, probs),
        "adaptive": lambda: encode_adaptive(sym, k),
        "histogram": lambda: encode_with_histogram(sym, k),
        "auto": lambda: encode_auto(sym, k),
    }[mode]()
    variants = [enc[:cut] for cut in range(len(enc))]
    if enc:
        for _ in range(8):
            bit = data.draw(st.integers(0, len(enc) * 8 - 1))
            flipped = bytearray(enc)
            flipped[bit // 8] ^= 1 << (bit % 8)
            variants.append(bytes(flipped))
    variants.append(enc + b"\x01")
    for bad in variants:
        try:
            out = decode_any(mode, bad, k, sym.size, probs)
        except BitstreamError:
            continue
        assert out.size == 0 or (out.min() >= 0 and out.max() < k)


def test_trailing_and_non_canonical_data_rejected() -> None:
    sym = np.array([1, 2, 3, 0, 1])
    enc = encode_adaptive(sym, 4)
    with pytest.raises(BitstreamError):
        decode_adaptive(enc + b"\x00", 4, 5)  # a stream never ends in a zero byte
    with pytest.raises(BitstreamError):
        decode_adaptive(enc + b"\x01\x02\x03\x04\x05", 4, 5)
    with pytest.raises(BitstreamError):
        decode_categorical(b"\x01", np.ones(4), 0)


def test_symbol_count_caps() -> None:
    with pytest.raises(BitstreamError):
        decode_adaptive(b"\x01", 4, 10**9)
    with pytest.raises(BitstreamError):
        decode_categorical(b"\x01", np.ones(4), 101, max_symbols=100)
    enc = encode_with_histogram(np.zeros(1000, np.int64), 4)
    with pytest.raises(BitstreamError):
        decode_with_histogram(enc, 4, max_symbols=999)
    with pytest.raises(BitstreamError):
        decode_with_histogram(b"\xff" * 9 + b"\x01", 4)  # n = 2**63 claimed
    with pytest.raises(BitstreamError):
        decode_auto(b"\xff\xff\xff\xff\x0f", 4)


@pytest.mark.parametrize(
    "call",
    [
        lambda: encode_adaptive([0, 4], 4),
        lambda: encode_adaptive([-1], 4),
        lambda: encode_adaptive([[0]], 4),
        lambda: encode_adaptive([0.5], 4),
        lambda: encode_adaptive([0], 0),
        lambda: encode_with_histogram([0], 1 << 30),
        lambda: encode_categorical([0], [1.0, -1.0]),
        lambda: encode_categorical([0], [np.nan, 1.0]),
        lambda: encode_categorical([0], [0.0, 0.0]),
        lambda: encode_categorical([0, 1], np.ones((3, 2))),
        lambda: decode_categorical(b"", np.ones((3, 2)), 2),
        lambda: decode_adaptive(b"", 4, -1),
        lambda: decode_adaptive("text", 4, 1),
    ],
)
def test_bad_arguments_raise_input_error(call) -> None:  # noqa: ANN001
    with pytest.raises(InputError):
        call()
