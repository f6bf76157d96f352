"""The message container: layout, round trips, and damage detection (property tests)."""

from __future__ import annotations

import math
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcom.codec import SCHEME_IDS, Message, header_size, pack, register_scheme_id, unpack
from semcom.codec.inspect import describe_message
from semcom.codec.varint import (
    Reader,
    encode_svarint,
    encode_uvarint,
    zigzag_decode,
    zigzag_encode,
)
from semcom.errors import BitstreamError, InputError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.text(min_size=1, max_size=8)
values = st.one_of(
    st.integers(0, 2**64 - 1),
    st.integers(-(2**63), -1),
    st.floats(width=32, allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=40),
    st.lists(st.integers(0, 2**64 - 1), max_size=10),
)
unregistered_ids = st.integers(1000, 65535).filter(lambda i: i not in SCHEME_IDS.values())
messages = st.builds(
    Message,
    scheme=st.one_of(st.sampled_from(sorted(SCHEME_IDS)), unregistered_ids),
    fields=st.dictionaries(names, values, max_size=6),
    sections=st.dictionaries(names, st.binary(max_size=64), max_size=4),
)


def with_crc(header_body: bytes) -> bytes:
    """Append the header CRC32 to hand-built header bytes."""
    return header_body + struct.pack(">I", zlib.crc32(header_body))


def section_spans(data: bytes) -> list[tuple[str, int, int]]:
    msg = unpack(data)
    assert msg.layout is not None
    return [(s.tag, s.offset, s.offset + s.length) for s in msg.layout.sections]


# --------------------------------------------------------------------------- varints


@given(st.integers(0, 2**64 - 1))
@FAST
def test_uvarint_round_trip(value: int) -> None:
    raw = encode_uvarint(value)
    assert len(raw) <= 10
    r = Reader(raw)
    assert r.uvarint() == value and r.remaining == 0


@given(st.integers(-(2**63), 2**63 - 1))
@FAST
def test_svarint_round_trip(value: int) -> None:
    assert zigzag_decode(zigzag_encode(value)) == value
    assert Reader(encode_svarint(value)).svarint() == value


def test_zigzag_order() -> None:
    assert [zigzag_encode(v) for v in (0, -1, 1, -2, 2)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x00",  # non-canonical zero
        b"\xff" * 10 + b"\x01",  # 11 bytes
        b"\xff" * 9 + b"\x02",  # 65 bits
        b"\x80\x80",  # truncated
        b"",
    ],
)
def test_bad_varints(raw: bytes) -> None:
    with pytest.raises(BitstreamError):
        Reader(raw).uvarint()


@pytest.mark.parametrize("value", [-1, 2**64, True, 1.0])
def test_uvarint_rejects(value: object) -> None:
    with pytest.raises(InputError):
        encode_uvarint(value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- layout


def test_exact_layout() -> None:
    data = pack(Message("jpeg", {"h": 5, "t": -1}, {"img": b"ab"}))
    body = (
        b"SMC\x00" + b"\x01" + b"\x00\x02"
        + b"\x02" + b"\x01h" + b"u" + b"\x05" + b"\x01t" + b"i" + b"\x01"
        + b"\x01" + b"\x03img" + b"\x02" + struct.pack(">I", zlib.crc32(b"ab"))
    )  # fmt: skip
    assert data == with_crc(body) + b"ab"
    assert header_size(data) == len(body) + 4


def test_field_types_on_the_wire() -> None:
    data = pack(Message(300, {"f": 1.5, "s": "é", "b": b"\x00\x01", "U": [1, 200]}, {}))
    assert data[5:7] == b"\x01\x2c"
    assert b"f" + struct.pack(">f", 1.5) in data
    assert b"s\x02" + "é".encode() in data
    assert b"b\x02\x00\x01" in data
    assert b"U\x02\x01\xc8\x01" in data


def test_scheme_names_and_ids() -> None:
    assert SCHEME_IDS["raw"] == 1 and SCHEME_IDS["text"] == 21
    assert Message("vqvae").scheme_id == 19
    assert Message(19).scheme_name == "vqvae"
    assert Message(40000).scheme_name == "#40000"
    assert unpack(pack(Message(2))).scheme == "jpeg"
    with pytest.raises(InputError):
        Message("no-such-scheme").scheme_id  # noqa: B018
    with pytest.raises(InputError):
        Message(70000).scheme_id  # noqa: B018


def test_register_scheme_id() -> None:
    name, sid = "test-scheme-xyz", 64999
    try:
        register_scheme_id(name, sid)
        register_scheme_id(name, sid)  # idempotent
        assert unpack(pack(Message(sid))).scheme == name
        with pytest.raises(InputError):
            register_scheme_id(name, sid - 1)
        with pytest.raises(InputError):
            register_scheme_id("other-name", sid)
        with pytest.raises(InputError):
            register_scheme_id("x", 0)
    finally:
        SCHEME_IDS.pop(name, None)


@pytest.mark.parametrize(
    "fields, sections",
    [
        ({"a": True}, {}),
        ({"a": 2**64}, {}),
        ({"a": -(2**63) - 1}, {}),
        ({"a": 1e300}, {}),
        ({"a": [1, -1]}, {}),
        ({"a": [1.0]}, {}),
        ({"a": None}, {}),
        ({"": 1}, {}),
        ({}, {"": b""}),
        ({}, {"s": "text"}),
        ({"a": "\ud800"}, {}),
    ],
)
def test_pack_rejects(fields: dict, sections: dict) -> None:
    with pytest.raises(InputError):
        pack(Message("raw", fields, sections))


def test_floats_are_float32() -> None:
    msg = unpack(pack(Message("raw", {"x": 0.1, "n": float("nan"), "i": -math.inf}, {})))
    assert msg.fields["x"] == struct.unpack(">f", struct.pack(">f", 0.1))[0]
    assert math.isnan(msg.fields["n"]) and msg.fields["i"] == -math.inf


def test_describe() -> None:
    data = pack(
        Message(
            "jpeg",
            {"h": 64, "blob": bytes(100), "ids": list(range(50))},
            {"img": b"x" * 10, "aux": b"yz"},
        )
    )
    text = describe_message(unpack(data))
    for needle in (
        "jpeg",
        "id 2",
        f"{len(data)} bytes",
        f"{header_size(data)} header",
        "h",
        "uint",
        "64",
    ):
        assert needle in text
    assert "100 bytes" in text and "..." in text and "(50 items)" in text
    assert "img" in text and "aux" in text and "CRC ok" in text
    damaged = unpack(data, erasures=[(len(data) - 1, len(data))], allow_damaged=True)
    assert "DAMAGED (erased)" in describe_message(damaged)
    assert describe_message(Message("raw", {"a": 1}, {"s": b"1"})).count("\n") >= 5


# --------------------------------------------------------------------------- hostile headers


def prefix(scheme_id: int = 1, version: int = 1) -> bytes:
    return b"SMC\x00" + bytes([version]) + struct.pack(">H", scheme_id)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"SMC",
        b"XMC\x00\x01\x00\x01\x00\x00" + b"\x00" * 4,
        with_crc(prefix(version=2) + b"\x00\x00"),
        with_crc(prefix() + encode_uvarint(2**60) + b"\x00"),  # giant field count
        with_crc(prefix() + b"\x00" + encode_uvarint(2**60)),  # giant section count
        with_crc(prefix() + b"\x01\x01ab\x7f"),  # bytes field longer than the input
        with_crc(prefix() + b"\x02\x01au\x01\x01au\x02\x00"),  # duplicate key
        with_crc(prefix() + b"\x01\x01aZ\x01\x00"),  # unknown type tag
        with_crc(prefix() + b"\x01\x02\xff\xfeu\x01\x00"),  # key not UTF-8
        with_crc(prefix() + b"\x01\x00u\x01\x00"),  # empty key
        with_crc(prefix() + b"\x00\x02\x01a\x00" + b"\0" * 4 + b"\x01a\x00" + b"\0" * 4),  # dup tag
        with_crc(prefix() + b"\x01\x01aU" + encode_uvarint(2**40) + b"\x00"),  # giant list
        with_crc(prefix() + b"\x00\x00") + b"junk",  # trailing bytes
        with_crc(prefix() + b"\x00\x01\x01a\x05" + struct.pack(">I", 0)) + b"abc",  # short
        prefix() + b"\x00\x00" + b"\x00\x00\x00\x00",  # wrong CRC
    ],
)
def test_hostile_headers(data: bytes) -> None:
    for allow in (False, True):
        if allow and data.endswith(b"abc"):
            continue  # truncated payload is survivable damage
        with pytest.raises(BitstreamError):
            unpack(data, allow_damaged=allow)


def test_unpack_rejects_non_bytes() -> None:
    with pytest.raises(InputError):
        unpack("SMC")  # type: ignore[arg-type]
    data = pack(Message("raw"))
    with pytest.raises(InputError):
        unpack(data, erasures=[(5, 2)])
    with pytest.raises(InputError):
        unpack(data, erasures=[(-1, 2)])


# --------------------------------------------------------------------------- properties


@given(messages)
@FAST
def test_round_trip(msg: Message) -> None:
    data = pack(msg)
    out = unpack(data)
    assert out == msg
    assert list(out.sections) == list(msg.sections)
    assert list(out.fields) == list(msg.fields)
    assert pack(out) == data
    assert header_size(data) == len(data) - sum(len(p) for p in msg.sections.values())
    assert out.damaged == []


@given(st.binary(max_size=200))
@FAST
def test_random_bytes_only_raise_bitstream_error(data: bytes) -> None:
    for candidate in (data, prefix() + data, with_crc(prefix() + data)):
        for allow in (False, True):
            try:
                unpack(candidate, allow_damaged=allow)
            except BitstreamError:
                pass


@given(messages, st.data())
@FAST
def test_structural_fuzz_with_fixed_crc(msg: Message, data: st.DataObject) -> None:
    """Mutate header bytes and repair the CRC so the parser's deeper checks are reached."""
    raw = bytearray(pack(msg))
    hsize = header_size(bytes(raw))
    if hsize - 4 <= 7:
        return
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(7, hsize - 5))
        raw[i] = data.draw(st.integers(0, 255))
    raw[hsize - 4 : hsize] = struct.pack(">I", zlib.crc32(bytes(raw[: hsize - 4])))
    for allow in (False, True):
        try:
            unpack(bytes(raw), allow_damaged=allow)
        except BitstreamError:
            pass


@given(messages)
@FEW
def test_every_truncation_is_detected(msg: Message) -> None:
    data = pack(msg)
    hsize = header_size(data)
    spans = section_spans(data)
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack(data[:cut])
        if cut < hsize:
            with pytest.raises(BitstreamError):
                unpack(data[:cut], allow_damaged=True)
        else:
            out = unpack(data[:cut], allow_damaged=True)
            expected = [tag for tag, _start, stop in spans if stop > cut]
            assert out.damaged == expected
            for tag, start, stop in spans:
                want = None if tag in expected else data[start:stop]
                assert out.sections[tag] == want


@given(messages.filter(lambda m: len(pack(m)) <= 300))
@FEW
def test_every_bit_flip_is_detected(msg: Message) -> None:
    data = pack(msg)
    hsize = header_size(data)
    spans = section_spans(data)
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        flipped_bytes = bytes(flipped)
        with pytest.raises(BitstreamError):
            unpack(flipped_bytes)
        if bit // 8 < hsize:
            with pytest.raises(BitstreamError):
                unpack(flipped_bytes, allow_damaged=True)
            continue
        out = unpack(flipped_bytes, allow_damaged=True)
        hit = [tag for tag, start, stop in spans if start <= bit // 8 < stop]
        assert out.damaged == hit and len(hit) == 1
        assert out.fields == msg.fields
        for tag, start, stop in spans:
            assert out.sections[tag] == (None if tag in hit else data[start:stop])


@given(messages, st.data())
@FAST
def test_erasures_mark_exactly_the_hit_sections(msg: Message, data: st.DataObject) -> None:
    raw = pack(msg)
    hsize = header_size(raw)
    spans = section_spans(raw)
    end = len(raw) + 5
    ranges = []
    for _ in range(data.draw(st.integers(0, 3))):
        a = data.draw(st.integers(hsize, end))
        b = data.draw(st.integers(a, end))
        ranges.append((a, b))
    # the channel zeroes erased bytes
    received = bytearray(raw)
    for a, b in ranges:
        received[a:b] = bytes(len(received[a:b]))
    out = unpack(bytes(received), erasures=ranges, allow_damaged=True)
    hit = [tag for tag, s, e in spans if any(a < e and s < b and a < b for a, b in ranges)]
    assert out.damaged == hit
    for tag, s, e in spans:
        assert out.sections[tag] == (None if tag in hit else raw[s:e])
    if hit:
        with pytest.raises(BitstreamError):
            unpack(bytes(received), erasures=ranges)
    else:
        assert unpack(bytes(received), erasures=ranges) == msg
    if hsize > 0:
        header_hit = (data.draw(st.integers(0, hsize - 1)), hsize + 1)
        with pytest.raises(BitstreamError):
            unpack(raw, erasures=[header_hit], allow_damaged=True)
