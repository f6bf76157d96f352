"""Ideal, byte-budget and binary symmetric channels; seeding and the common interface."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcom.channel import (
    BinarySymmetricChannel,
    ByteBudgetChannel,
    IdealChannel,
    PacketErasureChannel,
    Received,
    create_channel,
)
from semcom.channel.bsc import flip_bits, flip_positions
from semcom.errors import InputError


def _payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _bit_errors(a: bytes, b: bytes) -> np.ndarray:
    """Per-bit error indicator, uint8 (8 L,)."""
    x = np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)
    return np.unpackbits(x)


# --------------------------------------------------------------------------- ideal


def test_ideal_passes_bytes_unchanged() -> None:
    data = _payload(1000)
    rx = IdealChannel()(data)
    assert isinstance(rx, Received)
    assert rx.data == data and rx.erasures == [] and rx.channel_bytes == 1000
    assert IdealChannel()(b"").channel_bytes == 0


def test_channel_accepts_bytearray_and_memoryview_rejects_others() -> None:
    ch = IdealChannel()
    assert ch(bytearray(b"abc")).data == b"abc"
    assert ch(memoryview(b"abc")).data == b"abc"
    for bad in ("abc", [1, 2, 3], np.zeros(3, np.uint8), None):
        with pytest.raises(InputError):
            ch(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- budget


def test_budget_truncates_long_messages() -> None:
    data = _payload(1000)
    rx = ByteBudgetChannel(300)(data)
    assert rx.data == data[:300]
    assert rx.erasures == [(300, 1000)]
    assert rx.channel_bytes == 300
    assert rx.info == {"truncated": True, "sent_bytes": 1000}


@pytest.mark.parametrize("n", [0, 299, 300])
def test_budget_keeps_short_messages(n: int) -> None:
    data = _payload(n)
    rx = ByteBudgetChannel(300)(data)
    assert rx.data == data and rx.erasures == [] and rx.channel_bytes == n
    assert rx.info["truncated"] is False


def test_budget_zero_drops_everything() -> None:
    rx = ByteBudgetChannel(0)(b"xyz")
    assert rx.data == b"" and rx.erasures == [(0, 3)] and rx.channel_bytes == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "10", None, True])
def test_budget_rejects_bad_budget(bad: object) -> None:
    with pytest.raises(InputError):
        ByteBudgetChannel(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- bsc


@pytest.mark.parametrize("ber", [1e-3, 1e-2, 0.1, 0.3, 0.5])
def test_bsc_empirical_ber_matches_nominal(ber: float) -> None:
    data = _payload(50_000)
    rx = BinarySymmetricChannel(ber, seed=7)(data)
    errors = _bit_errors(data, rx.data)
    n = errors.size
    k = int(errors.sum())
    assert k == rx.info["bit_errors"]
    sigma = math.sqrt(n * ber * (1 - ber))
    assert abs(k - n * ber) < 6 * sigma + 1
    # every bit position within a byte is hit at the same rate (MSB/LSB handled alike)
    per_position = errors.reshape(-1, 8).sum(0)
    sigma_pos = math.sqrt(n / 8 * ber * (1 - ber))
    assert np.all(np.abs(per_position - n / 8 * ber) < 6 * sigma_pos + 1)
    assert rx.erasures == [] and rx.channel_bytes == len(data) and len(rx.data) == len(data)


def test_bsc_zero_ber_is_exact_and_burst_free() -> None:
    data = _payload(5000)
    assert BinarySymmetricChannel(0.0)(data).data == data


def test_bsc_errors_are_independent_of_neighbours() -> None:
    """P(flip at i+1 | flip at i) must equal ber (no clustering from the gap sampler)."""
    ber = 0.02
    data = bytes(100_000)
    errors = _bit_errors(data, BinarySymmetricChannel(ber, seed=3)(data).data)
    pairs = int((errors[1:] & errors[:-1]).sum())
    base = int(errors[:-1].sum())
    sigma = math.sqrt(base * ber * (1 - ber))
    assert abs(pairs - base * ber) < 6 * sigma


@pytest.mark.parametrize("bad", [-0.1, 0.51, 1.0, float("nan"), float("inf"), "0.1", None])
def test_bsc_rejects_ber_out_of_range(bad: object) -> None:
    with pytest.raises(InputError):
        BinarySymmetricChannel(bad)  # type: ignore[arg-type]


@given(st.binary(min_size=0, max_size=64), st.data())
@settings(max_examples=60, deadline=None)
def test_flip_bits_matches_unpackbits_reference(data: bytes, draw: st.DataObject) -> None:
    nbits = 8 * len(data)
    positions = sorted(
        draw.draw(st.sets(st.integers(0, max(nbits - 1, 0)), max_size=nbits)) if nbits else []
    )
    pos = np.asarray(positions, dtype=np.int64)
    ref = np.unpackbits(np.frombuffer(data, np.uint8))
    ref[pos] ^= 1
    assert flip_bits(data, pos) == np.packbits(ref).tobytes()


def test_flip_positions_are_sorted_unique_in_range() -> None:
    rng = np.random.default_rng(0)
    pos = flip_positions(rng, 10_000, 0.01)
    assert pos.size > 0 and pos.min() >= 0 and pos.max() < 10_000
    assert np.all(np.diff(pos) > 0)
    assert flip_positions(rng, 0, 0.1).size == 0
    assert flip_positions(rng, 100, 0.0).size == 0


# --------------------------------------------------------------------------- seeding


SEEDED = [
    lambda seed: BinarySymmetricChannel(0.01, seed=seed),
    lambda seed: BinarySymmetricChannel(0.2, seed=seed),
    lambda seed: PacketErasureChannel(0.3, packet_size=50, seed=seed),
    lambda seed: PacketErasureChannel(0.3, packet_size=50, burst=3, ber=1e-3, seed=seed),
]


@pytest.mark.parametrize("make", SEEDED)
def test_seeded_stream_continues_and_replays(make) -> None:  # type: ignore[no-untyped-def]
    data = _payload(4000)
    ch = make(11)
    first, second = ch(data), ch(data)
    assert first.data != second.data  # the stream continues: a new draw
    ch.reset()
    assert ch(data) == first and ch(data) == second
    again = make(11)
    assert again(data) == first and again(data) == second
    assert make(12)(data).data != first.data


def test_config_is_json_and_rebuilds_the_channel() -> None:
    data = _payload(3000)
    for ch in (
        IdealChannel(seed=1),
        ByteBudgetChannel(10, seed=2),
        BinarySymmetricChannel(1e-3, seed=3),
        PacketErasureChannel(0.2, packet_size=100, burst=2.5, ber=1e-4, seed=4),
    ):
        cfg = ch.config()
        assert json.loads(json.dumps(cfg)) == cfg
        assert cfg["seed"] == ch.seed and cfg["type"] == ch.kind
        twin = create_channel(cfg)
        assert twin.config() == cfg and twin.name == ch.name and repr(twin) == repr(ch)
        assert twin(data) == ch(data)


def test_names_and_repr() -> None:
    assert IdealChannel().name == "ideal"
    assert BinarySymmetricChannel(1e-4).name == "bsc(ber=1e-04)"
    assert BinarySymmetricChannel(0.01).name == "bsc(ber=0.01)"
    assert ByteBudgetChannel(500).name == "budget(max_bytes=500)"
    assert PacketErasureChannel(0.1, packet_size=64).name == "erasure(loss=0.1,packet_size=64)"
    assert repr(BinarySymmetricChannel(0.25, seed=9)) == "BinarySymmetricChannel(ber=0.25, seed=9)"


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, 2**63])
def test_bad_seed_rejected(bad: object) -> None:
    with pytest.raises(InputError):
        IdealChannel(seed=bad)  # type: ignore[arg-type]
