"""LEB128 varints (unsigned and zigzag-signed), a bounds-checked byte reader, and
:func:`as_bytes`, the check every parser of bytes makes of its input.

Unsigned varints carry 7 bits per byte, least significant group first, high bit set on
every byte but the last. They are capped at 10 bytes / 64 bits, and only the shortest
(canonical) encoding of a value is accepted, so every value has exactly one encoding.
"""

from __future__ import annotations

from semcom.errors import BitstreamError, InputError

MAX_VARINT_BYTES = 10
U64_MAX = (1 << 64) - 1
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1


def as_bytes(data: object, problem: str = "expected bytes") -> bytes:
    """``data`` as ``bytes`` (``bytes`` itself, or a copy of a ``bytearray`` / ``memoryview``).

    Anything else raises :class:`InputError` ``"{problem}, got {type name}"``.
    """
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise InputError(f"{problem}, got {type(data).__name__}")


def encode_uvarint(value: int) -> bytes:
    """Encode a non-negative integer below 2**64 as an unsigned varint."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"varint value must be an int, got {type(value).__name__}")
    if value < 0 or value > U64_MAX:
        raise InputError(f"unsigned varint out of range [0, 2**64): {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def zigzag_encode(value: int) -> int:
    """Map a signed 64-bit integer to an unsigned one (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"varint value must be an int, got {type(value).__name__}")
    if value < I64_MIN or value > I64_MAX:
        raise InputError(f"signed varint out of range [-2**63, 2**63): {value}")
    return (value << 1) if value >= 0 else ((-value) << 1) - 1


def zigzag_decode(value: int) -> int:
    """Inverse of :func:`zigzag_encode`."""
    return (value >> 1) if not value & 1 else -((value + 1) >> 1)


def encode_svarint(value: int) -> bytes:
    """Encode a signed 64-bit integer as a zigzag varint."""
    return encode_uvarint(zigzag_encode(value))


class Reader:
    """Sequential reader over untrusted bytes; every overrun raises :class:`BitstreamError`."""

    __slots__ = ("data", "pos", "end", "what")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None, what: str = "data"):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        self.what = what

    @property
    def remaining(self) -> int:
        """Bytes left before the end of the readable range."""
        return self.end - self.pos

    def fail(self, reason: str) -> BitstreamError:
        """Build a one-line error naming the current byte offset."""
        return BitstreamError(f"{self.what}: {reason} at byte {self.pos}")

    def take(self, n: int) -> bytes:
        """Read exactly ``n`` bytes."""
        if n < 0 or n > self.end - self.pos:
            raise self.fail(f"truncated (need {n} bytes, {self.remaining} left)")
        chunk = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return chunk

    def byte(self) -> int:
        """Read one byte as an int."""
        if self.pos >= self.end:
            raise self.fail("truncated (need 1 byte, 0 left)")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uvarint(self) -> int:
        """Read a canonical unsigned varint (at most 10 bytes, below 2**64)."""
        start = self.pos
        value = 0
        shift = 0
        for i in range(MAX_VARINT_BYTES):
            if self.pos >= self.end:
                self.pos = start
                raise self.fail("truncated varint")
            b = self.data[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                if i > 0 and b == 0:
                    self.pos = start
                    raise self.fail("non-canonical varint")
                if value > U64_MAX:
                    self.pos = start
                    raise self.fail("varint exceeds 64 bits")
                return value
            shift += 7
        self.pos = start
        raise self.fail("varint longer than 10 bytes")

    def svarint(self) -> int:
        """Read a zigzag-encoded signed varint."""
        return zigzag_decode(self.uvarint())

    def count(self, min_item_bytes: int = 1, what: str = "count") -> int:
        """Read a varint count of items that each need at least ``min_item_bytes`` bytes.

        The count is checked against the bytes left, so no loop or allocation driven by
        it can exceed the size of the input.
        """
        start = self.pos
        n = self.uvarint()
        if n * min_item_bytes > self.remaining:
            self.pos = start
            raise self.fail(f"{what} {n} exceeds what the remaining {self.remaining} bytes hold")
        return n

    def text(self, what: str = "string") -> str:
        """Read a varint-length UTF-8 string."""
        n = self.count(1, f"{what} length")
        start = self.pos
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.pos = start
            raise self.fail(f"{what} is not valid UTF-8") from None
