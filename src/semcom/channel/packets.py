"""Packet framing: split a message into self-describing, CRC-protected packets and back.

Packet layout (all integers big endian)::

    offset  size  field
    0       4     sequence number      (uint32, 0 .. count-1)
    4       4     packet count         (uint32, >= 1)
    8       2     payload size P       (uint16, >= 1; every packet but the last carries P bytes)
    10      2     last payload size T  (uint16, 1 .. P; the last packet carries T bytes)
    12      n     payload              (n = P, or T for the last packet)
    12+n    4     CRC32 of bytes [0, 12+n)

The message length is ``(count - 1) * P + T``, so every packet that arrives tells the
receiver the whole layout: which byte ranges the missing packets covered, and how long
the message was. A packet whose CRC fails is dropped (counted as lost). A packet whose
CRC passes but whose header contradicts itself or the other packets raises
:class:`~semcom.errors.BitstreamError`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from semcom.errors import BitstreamError, InputError

__all__ = [
    "CRC_SIZE",
    "HEADER_SIZE",
    "OVERHEAD",
    "Reassembled",
    "depacketise",
    "packetise",
]

_HEADER = struct.Struct(">IIHH")
HEADER_SIZE = _HEADER.size  # 12
CRC_SIZE = 4
OVERHEAD = HEADER_SIZE + CRC_SIZE  # bytes added to every packet
MAX_PAYLOAD = 0xFFFF
MAX_PACKETS = 0xFFFFFFFF
DEFAULT_MAX_LENGTH = 1 << 30


def packetise(data: bytes, packet_size: int) -> list[bytes]:
    """Split ``data`` into serialised packets of ``packet_size`` payload bytes.

    Input
    -----
    data : bytes, length ``L``
    packet_size : int in ``[1, 65535]``

    Output
    ------
    packets : list of ``ceil(L / packet_size)`` ``bytes``; packet ``i`` carries
        ``data[i * packet_size : (i + 1) * packet_size]`` plus ``OVERHEAD`` bytes.
        An empty message gives no packets.
    """
    if isinstance(packet_size, bool) or not isinstance(packet_size, int):
        raise InputError(f"packet_size must be an integer, got {packet_size!r}")
    if not 1 <= packet_size <= MAX_PAYLOAD:
        raise InputError(f"packet_size must be in [1, {MAX_PAYLOAD}], got {packet_size}")
    n = len(data)
    if n == 0:
        return []
    count = -(-n // packet_size)
    if count > MAX_PACKETS:
        raise InputError(f"message of {n} bytes needs more than {MAX_PACKETS} packets")
    tail = n - (count - 1) * packet_size
    view = memoryview(data)
    packets = []
    for seq in range(count):
        header = _HEADER.pack(seq, count, packet_size, tail)
        payload = view[seq * packet_size : (seq + 1) * packet_size]
        crc = zlib.crc32(payload, zlib.crc32(header))
        packets.append(b"".join((header, payload, crc.to_bytes(CRC_SIZE, "big"))))
    return packets


@dataclass
class Reassembled:
    """A message rebuilt from the packets that arrived.

    Attributes
    ----------
    data : bytes
        The message, length ``L``; bytes of missing packets are zero.
    erasures : list[tuple[int, int]]
        Sorted, merged ``[start, stop)`` byte ranges that no valid packet covered.
    received : int
        Number of distinct valid packets used.
    corrupted : int
        Number of packets dropped because they were too short or their CRC failed.
    count : int
        Number of packets the message was sent in (0 if unknown / empty).
    """

    data: bytes
    erasures: list[tuple[int, int]] = field(default_factory=list)
    received: int = 0
    corrupted: int = 0
    count: int = 0


def _check_crc(packet: bytes) -> bool:
    if len(packet) < OVERHEAD + 1:
        return False
    body = memoryview(packet)[:-CRC_SIZE]
    return zlib.crc32(body) == int.from_bytes(packet[-CRC_SIZE:], "big")


def depacketise(
    packets: Iterable[bytes],
    expected_length: int | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> Reassembled:
    """Reassemble a message from the packets that arrived, in any order.

    Input
    -----
    packets : iterable of bytes
        The packets received (any order, duplicates allowed); damaged ones are dropped.
    expected_length : int or None
        Message length known out of band. Needed when no valid packet arrives (the
        whole message is then reported erased); when packets do arrive, their headers
        must agree with it.
    max_length : int
        Largest message length the headers may claim (bounds the allocation).

    Output
    ------
    :class:`Reassembled`

    Raises
    ------
    BitstreamError
        A CRC-valid packet has an inconsistent header, packets disagree on the layout or
        carry different payloads for one sequence number, the layout contradicts
        ``expected_length`` or exceeds ``max_length``, or nothing valid arrived and
        ``expected_length`` is ``None``.
    """
    layout: tuple[int, int, int] | None = None
    chunks: dict[int, bytes] = {}
    corrupted = 0
    for i, packet in enumerate(packets):
        packet = bytes(packet)
        if not _check_crc(packet):
            corrupted += 1
            continue
        seq, count, size, tail = _HEADER.unpack_from(packet)
        payload = packet[HEADER_SIZE:-CRC_SIZE]
        if count == 0 or size == 0 or not 1 <= tail <= size or seq >= count:
            raise BitstreamError(
                f"packet {i}: inconsistent header (seq={seq}, count={count}, "
                f"payload size={size}, last size={tail}) at byte offset 0"
            )
        want = tail if seq == count - 1 else size
        if len(payload) != want:
            raise BitstreamError(
                f"packet {i}: payload of {len(payload)} bytes, header says {want} "
                f"(byte offset {HEADER_SIZE})"
            )
        if layout is None:
            layout = (count, size, tail)
            length = (count - 1) * size + tail
            if length > max_length:
                raise BitstreamError(
                    f"packet {i}: header claims a {length}-byte message, more than the "
                    f"allowed {max_length} (byte offset 4)"
                )
            if expected_length is not None and length != expected_length:
                raise BitstreamError(
                    f"packet {i}: header claims a {length}-byte message, expected "
                    f"{expected_length} (byte offset 4)"
                )
        elif layout != (count, size, tail):
            raise BitstreamError(
                f"packet {i}: layout (count={count}, size={size}, last={tail}) differs "
                f"from earlier packets {layout} (byte offset 4)"
            )
        if seq in chunks:
            if chunks[seq] != payload:
                raise BitstreamError(f"packet {i}: two different payloads for sequence {seq}")
            continue
        chunks[seq] = payload

    if layout is None:
        if expected_length is None:
            raise BitstreamError("no valid packet arrived and the message length is unknown")
        if expected_length < 0:
            raise InputError(f"expected_length must be >= 0, got {expected_length}")
        erasures = [(0, expected_length)] if expected_length > 0 else []
        return Reassembled(bytes(expected_length), erasures, 0, corrupted, 0)

    count, size, tail = layout
    length = (count - 1) * size + tail
    buf = bytearray(length)
    for seq, payload in chunks.items():
        buf[seq * size : seq * size + len(payload)] = payload
    missing = _missing_ranges(chunks, count, size, length)
    return Reassembled(bytes(buf), missing, len(chunks), corrupted, count)


def _missing_ranges(
    chunks: dict[int, bytes], count: int, size: int, length: int
) -> list[tuple[int, int]]:
    """Merged byte ranges of the sequence numbers absent from ``chunks``."""
    present = np.zeros(count, dtype=bool)
    present[np.fromiter(chunks, dtype=np.int64, count=len(chunks))] = True
    missing = np.flatnonzero(~present)
    if missing.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(missing) != 1)
    firsts = missing[np.r_[0, breaks + 1]]
    lasts = missing[np.r_[breaks, missing.size - 1]]
    pairs = zip(firsts.tolist(), lasts.tolist(), strict=True)
    return [(a * size, min((b + 1) * size, length)) for a, b in pairs]
