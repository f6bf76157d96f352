"""Packet framing (packetise / depacketise) and the packet erasure channel."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcom.channel import PacketErasureChannel, depacketise, packetise
from semcom.channel.packets import HEADER_SIZE, OVERHEAD
from semcom.errors import BitstreamError, InputError


def _payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _nonzero_payload(n: int, seed: int = 0) -> bytes:
    """Random bytes that are never 0, so zero-filled bytes stand out."""
    return np.random.default_rng(seed).integers(1, 256, n, dtype=np.uint8).tobytes()


def _zero_runs(data: bytes) -> list[tuple[int, int]]:
    """Maximal [start, stop) runs of zero bytes."""
    z = np.frombuffer(data, np.uint8) == 0
    edges = np.flatnonzero(np.diff(np.r_[0, z.astype(np.int8), 0]))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "big")


# --------------------------------------------------------------------------- framing


def test_packet_layout_and_sizes() -> None:
    data = _payload(250)
    packets = packetise(data, 100)
    assert [len(p) for p in packets] == [100 + OVERHEAD, 100 + OVERHEAD, 50 + OVERHEAD]
    seq, count, size, tail = struct.unpack(">IIHH", packets[2][:HEADER_SIZE])
    assert (seq, count, size, tail) == (2, 3, 100, 50)
    assert packets[1][HEADER_SIZE:-4] == data[100:200]
    assert zlib.crc32(packets[1][:-4]) == int.from_bytes(packets[1][-4:], "big")
    assert packetise(b"", 100) == []


@pytest.mark.parametrize("bad", [0, -1, 65536, 1.5, "64"])
def test_packetise_rejects_bad_packet_size(bad: object) -> None:
    with pytest.raises(InputError):
        packetise(b"abc", bad)  # type: ignore[arg-type]


@given(st.binary(min_size=1, max_size=700), st.integers(1, 90), st.data())
@settings(max_examples=80, deadline=None)
def test_depacketise_any_subset_any_order(data: bytes, size: int, draw: st.DataObject) -> None:
    packets = packetise(data, size)
    kept = draw.draw(st.lists(st.booleans(), min_size=len(packets), max_size=len(packets)))
    arrived = [p for p, k in zip(packets, kept, strict=True) if k]
    order = draw.draw(st.permutations(range(len(arrived))))
    dup = draw.draw(st.booleans())
    received = [arrived[i] for i in order] + (arrived[:1] if dup else [])
    out = depacketise(received, expected_length=len(data))

    assert len(out.data) == len(data)
    lost_mask = np.zeros(len(data), dtype=bool)
    for seq, k in enumerate(kept):
        if not k:
            lost_mask[seq * size : (seq + 1) * size] = True
    got = np.frombuffer(out.data, np.uint8)
    want = np.frombuffer(data, np.uint8)
    assert np.array_equal(got[~lost_mask], want[~lost_mask])
    assert not got[lost_mask].any()
    # erasures: sorted, merged, exactly the lost bytes
    mask = np.zeros(len(data), dtype=bool)
    for a, b in out.erasures:
        assert 0 <= a < b <= len(data)
        mask[a:b] = True
    assert np.array_equal(mask, lost_mask)
    assert all(b1 < a2 for (_, b1), (a2, _) in zip(out.erasures, out.erasures[1:], strict=False))
    assert out.received == sum(kept) and out.corrupted == 0


def test_last_packet_lost_still_gives_full_length() -> None:
    data = _payload(250)
    packets = packetise(data, 100)
    out = depacketise(packets[:2])  # length learnt from the headers alone
    assert len(out.data) == 250 and out.erasures == [(200, 250)]
    assert out.data[:200] == data[:200]


@pytest.mark.parametrize("where", ["header", "payload", "crc"])
def test_corrupted_packet_counts_as_lost(where: str) -> None:
    data = _nonzero_payload(500)
    packets = packetise(data, 100)
    offset = {"header": 1, "payload": HEADER_SIZE + 37, "crc": len(packets[2]) - 2}[where]
    bad = bytearray(packets[2])
    bad[offset] ^= 0x10
    out = depacketise([*packets[:2], bytes(bad), *packets[3:]], expected_length=500)
    assert out.erasures == [(200, 300)]
    assert out.corrupted == 1 and out.received == 4
    assert out.data[:200] == data[:200] and out.data[300:] == data[300:]
    assert out.data[200:300] == bytes(100)


def test_short_packets_are_dropped() -> None:
    packets = packetise(_payload(30), 10)
    out = depacketise([b"", b"\x00" * 5, packets[0][:-1], *packets[1:]], expected_length=30)
    assert out.corrupted == 3 and out.erasures == [(0, 10)]


def test_nothing_arrived() -> None:
    out = depacketise([], expected_length=40)
    assert out.data == bytes(40) and out.erasures == [(0, 40)]
    assert depacketise([], expected_length=0).erasures == []
    with pytest.raises(BitstreamError):
        depacketise([])


@pytest.mark.parametrize(
    "header",
    [
        (3, 3, 10, 5),  # seq >= count
        (0, 0, 10, 5),  # no packets
        (0, 2, 0, 0),  # zero payload size
        (0, 2, 10, 11),  # last packet larger than the others
        (0, 2, 10, 0),  # empty last packet
    ],
)
def test_crc_valid_but_inconsistent_header_raises(header: tuple[int, int, int, int]) -> None:
    packet = _with_crc(struct.pack(">IIHH", *header) + bytes(10))
    with pytest.raises(BitstreamError):
        depacketise([packet])


def test_inconsistent_packets_raise() -> None:
    a = packetise(_payload(30), 10)
    b = packetise(_payload(40), 10)
    with pytest.raises(BitstreamError):
        depacketise([a[0], b[1]])  # layouts disagree
    c = packetise(_payload(30, seed=1), 10)
    with pytest.raises(BitstreamError):
        depacketise([a[0], c[0]])  # two payloads for one sequence number
    with pytest.raises(BitstreamError):
        depacketise(a, expected_length=31)
    wrong_len = _with_crc(struct.pack(">IIHH", 0, 3, 10, 10) + bytes(9))
    with pytest.raises(BitstreamError):
        depacketise([wrong_len])
    with pytest.raises(BitstreamError):
        depacketise(a, max_length=29)


# --------------------------------------------------------------------------- channel


def test_no_loss_gives_exact_data_and_counts_overhead() -> None:
    data = _payload(1000)
    rx = PacketErasureChannel(0.0, packet_size=64)(data)
    packets = math.ceil(1000 / 64)
    assert rx.data == data and rx.erasures == []
    assert rx.channel_bytes == 1000 + OVERHEAD * packets == sum(map(len, packetise(data, 64)))
    assert rx.info["packets"] == packets and rx.info["packets_lost"] == 0


def test_total_loss() -> None:
    rx = PacketErasureChannel(1.0, packet_size=64)(_payload(1000))
    assert rx.data == bytes(1000) and rx.erasures == [(0, 1000)]
    assert rx.channel_bytes == 1000 + OVERHEAD * 16  # sent, even though all were lost


def test_empty_message() -> None:
    rx = PacketErasureChannel(0.5)(b"")
    assert rx.data == b"" and rx.erasures == [] and rx.channel_bytes == 0


@pytest.mark.parametrize("burst", [None, 4.0])
def test_erasures_are_exactly_the_zero_filled_lost_packets(burst: float | None) -> None:
    size = 50
    data = _nonzero_payload(10_000, seed=2)
    rx = PacketErasureChannel(0.3, packet_size=size, burst=burst, seed=5)(data)
    assert len(rx.data) == len(data)
    assert rx.erasures == _zero_runs(rx.data)
    erased = 0
    for a, b in rx.erasures:
        assert a % size == 0 and (b % size == 0 or b == len(data))
        erased += b - a
    assert erased == rx.info["packets_lost"] * size  # last packet is full here (10000 / 50)
    keep = np.ones(len(data), dtype=bool)
    for a, b in rx.erasures:
        keep[a:b] = False
    assert np.array_equal(
        np.frombuffer(rx.data, np.uint8)[keep], np.frombuffer(data, np.uint8)[keep]
    )
    assert 0 < rx.info["packets_lost"] < rx.info["packets"]


def test_iid_loss_rate_matches_nominal() -> None:
    loss, n = 0.1, 20_000
    rx = PacketErasureChannel(loss, packet_size=1, seed=1)(_nonzero_payload(n))
    lost = rx.info["packets_lost"]
    assert abs(lost - n * loss) < 6 * math.sqrt(n * loss * (1 - loss))
    assert sum(b - a for a, b in rx.erasures) == lost


def test_bursty_losses_have_the_requested_rate_and_burst_length() -> None:
    loss, burst, n = 0.2, 5.0, 40_000
    ch = PacketErasureChannel(loss, packet_size=1, burst=burst, seed=3)
    rx = ch(_nonzero_payload(n))
    lengths = np.array([b - a for a, b in rx.erasures])
    rate = lengths.sum() / n
    assert abs(rate - loss) < 0.03
    assert abs(lengths.mean() - burst) < 0.6
    iid = PacketErasureChannel(loss, packet_size=1, seed=3)(_nonzero_payload(n))
    assert np.mean([b - a for a, b in iid.erasures]) < 1.5  # i.i.d. bursts: 1 / (1 - loss)


def test_corruption_on_the_link_is_caught_by_the_crc() -> None:
    data = _nonzero_payload(20_000, seed=4)
    rx = PacketErasureChannel(0.0, packet_size=100, ber=1e-3, seed=2)(data)
    assert rx.info["bit_errors"] > 0 and rx.info["packets_corrupted"] > 0
    assert rx.info["packets_lost"] == 0
    assert sum(b - a for a, b in rx.erasures) == 100 * rx.info["packets_corrupted"]
    keep = np.ones(len(data), dtype=bool)
    for a, b in rx.erasures:
        keep[a:b] = False
    # whatever was not signalled as erased is exact: no silent errors get through
    assert np.array_equal(
        np.frombuffer(rx.data, np.uint8)[keep], np.frombuffer(data, np.uint8)[keep]
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"loss": -0.1},
        {"loss": 1.1},
        {"loss": float("nan")},
        {"loss": 0.1, "packet_size": 0},
        {"loss": 0.1, "packet_size": 70_000},
        {"loss": 0.1, "burst": 0.5},
        {"loss": 0.9, "burst": 2.0},  # needs a mean burst >= loss / (1 - loss) = 9
        {"loss": 0.1, "ber": 0.6},
    ],
)
def test_erasure_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(InputError):
        PacketErasureChannel(**kwargs)  # type: ignore[arg-type]
