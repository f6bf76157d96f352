"""The message container: one transmitted message as bytes (see docs/architecture.md).

Layout (all multi-byte integers big endian)::

    magic b"SMC\\x00" | version (1 byte) | scheme id (uint16)
    n_fields (varint) | per field: key (varint-length UTF-8), type tag (1 byte), value
    n_sections (varint) | per section: tag (varint-length UTF-8), length (varint), CRC32
    CRC32 of everything above
    section payloads, concatenated in order

Field type tags: ``u`` unsigned varint, ``i`` zigzag varint, ``f`` float32, ``s`` UTF-8
string, ``b`` bytes, ``U`` list of unsigned varints (count, then the items).

Parsing never allocates more than a bound proportional to ``len(data)``: every count and
length is checked against the bytes that remain before it drives a loop or a slice.
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field

from semcom.codec.varint import (
    I64_MIN,
    U64_MAX,
    Reader,
    as_bytes,
    encode_svarint,
    encode_uvarint,
)
from semcom.errors import BitstreamError, InputError

MAGIC = b"SMC\x00"
VERSION = 1
PREFIX_SIZE = 7  # magic + version + scheme id
CRC_SIZE = 4
MIN_SECTION_ENTRY = 1 + 1 + 1 + CRC_SIZE  # tag length, 1-byte tag, length, CRC
MIN_FIELD_ENTRY = 1 + 1 + 1 + 1  # key length, 1-byte key, type tag, shortest value

FieldValue = int | float | str | bytes | list[int]

SCHEME_IDS: dict[str, int] = {
    "raw": 1,
    "jpeg": 2,
    "webp": 3,
    "avif": 4,
    "patch": 16,
    "collab": 17,
    "gosvae": 18,
    "vqvae": 19,
    "autoencoder": 20,
    "text": 21,
    "balle": 22,
}

_TYPE_NAMES = {
    "u": "uint",
    "i": "int",
    "f": "float32",
    "s": "str",
    "b": "bytes",
    "U": "list[uint]",
}


def register_scheme_id(name: str, scheme_id: int) -> None:
    """Add ``name -> scheme_id`` to :data:`SCHEME_IDS` (idempotent; conflicts raise InputError)."""
    if not isinstance(name, str) or not name:
        raise InputError(f"scheme name must be a non-empty string, got {name!r}")
    if isinstance(scheme_id, bool) or not isinstance(scheme_id, int):
        raise InputError(f"scheme id must be an int in [1, 65535], got {scheme_id!r}")
    if not 1 <= scheme_id <= 0xFFFF:
        raise InputError(f"scheme id must be an int in [1, 65535], got {scheme_id!r}")
    if name in SCHEME_IDS:
        if SCHEME_IDS[name] != scheme_id:
            raise InputError(f"scheme {name!r} already has id {SCHEME_IDS[name]}, not {scheme_id}")
        return
    for other, sid in SCHEME_IDS.items():
        if sid == scheme_id:
            raise InputError(f"scheme id {scheme_id} already belongs to {other!r}")
    SCHEME_IDS[name] = scheme_id


def scheme_name_of(scheme_id: int) -> str | None:
    """The registered name of ``scheme_id``, or None."""
    for name, sid in SCHEME_IDS.items():
        if sid == scheme_id:
            return name
    return None


@dataclass
class SectionInfo:
    """Where a section sits in a packed message and whether it survived."""

    tag: str
    offset: int
    length: int
    crc: int
    status: str  # "ok", "erased", "crc mismatch", "truncated"


@dataclass
class Layout:
    """Wire facts about a parsed message (set by :func:`unpack`)."""

    total_size: int
    header_size: int
    version: int
    field_types: dict[str, str]
    sections: list[SectionInfo]


@dataclass
class Message:
    """One message: a scheme, typed header fields and ordered binary sections.

    ``scheme`` is a registered name or a raw uint16 id. Fields hold ``int`` (64-bit,
    signed or unsigned), ``float`` (stored as float32), ``str``, ``bytes`` or
    ``list[int]`` (non-negative). After ``unpack(..., allow_damaged=True)`` a section
    that did not survive is ``None`` and its tag is listed in ``damaged``.
    """

    scheme: str | int
    fields: dict[str, FieldValue] = field(default_factory=dict)
    sections: dict[str, bytes | None] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)
    layout: Layout | None = field(default=None, compare=False, repr=False)

    @property
    def scheme_id(self) -> int:
        """The uint16 scheme id written on the wire."""
        if isinstance(self.scheme, str):
            if self.scheme not in SCHEME_IDS:
                raise InputError(
                    f"unknown scheme {self.scheme!r}: register it with register_scheme_id()"
                )
            return SCHEME_IDS[self.scheme]
        if isinstance(self.scheme, bool) or not isinstance(self.scheme, int):
            raise InputError(f"scheme must be a name or an int id, got {self.scheme!r}")
        if not 0 <= self.scheme <= 0xFFFF:
            raise InputError(f"scheme id out of uint16 range: {self.scheme}")
        return self.scheme

    @property
    def scheme_name(self) -> str:
        """The registered name of the scheme, or ``"#<id>"`` for an unregistered id."""
        if isinstance(self.scheme, str):
            return self.scheme
        name = scheme_name_of(self.scheme_id)
        return name if name is not None else f"#{self.scheme_id}"

    # ------------------------------------------------------------ typed access
    # What a receiver reads from a message it did not make. Every accessor checks
    # presence, type and range and raises BitstreamError naming what is wrong, so no
    # receiver ever indexes ``fields`` / ``sections`` directly.

    def _where(self) -> str:
        return f"{self.scheme_name} message"

    def expect_scheme(self, *names: str) -> str:
        """The scheme name if it is one of ``names``; else BitstreamError."""
        if self.scheme_name not in names:
            want = " or ".join(repr(n) for n in names)
            raise BitstreamError(f"message is for scheme {self.scheme_name!r}, not {want}")
        return self.scheme_name

    def expect_fields(self, required: Sequence[str], optional: Sequence[str] = ()) -> None:
        """The header holds every ``required`` field and nothing but those and ``optional``."""
        missing = [k for k in required if k not in self.fields]
        if missing:
            raise BitstreamError(f"{self._where()}: header field(s) {missing} missing")
        extra = sorted(set(self.fields) - set(required) - set(optional))
        if extra:
            raise BitstreamError(f"{self._where()}: unexpected header field(s) {extra}")

    def _field(self, key: str) -> FieldValue:
        if key not in self.fields:
            raise BitstreamError(f"{self._where()}: header field {key!r} missing")
        return self.fields[key]

    def int_field(
        self,
        key: str,
        lo: int = 0,
        hi: int = U64_MAX,
        *,
        default: int | None = None,
    ) -> int:
        """Integer header field ``key`` with ``lo <= value <= hi``.

        A missing field gives ``default`` when one is given, else BitstreamError.
        """
        if default is not None and key not in self.fields:
            return default
        value = self._field(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BitstreamError(
                f"{self._where()}: header field {key!r} is {_kind(value)}, expected an integer"
            )
        if not lo <= value <= hi:
            raise BitstreamError(
                f"{self._where()}: header field {key!r} = {value} is outside [{lo}, {hi}]"
            )
        return value

    def bytes_field(
        self, key: str, size: int | None = None, *, default: bytes | None = None
    ) -> bytes:
        """Bytes header field ``key`` (exactly ``size`` bytes when given)."""
        if default is not None and key not in self.fields:
            return default
        value = self._field(key)
        if not isinstance(value, bytes):
            raise BitstreamError(
                f"{self._where()}: header field {key!r} is {_kind(value)}, expected bytes"
            )
        if size is not None and len(value) != size:
            raise BitstreamError(
                f"{self._where()}: header field {key!r} has {len(value)} bytes, expected {size}"
            )
        return value

    def expect_sections(self, tags: Sequence[str]) -> None:
        """The message's sections are exactly ``tags``, in this order."""
        if list(self.sections) != list(tags):
            raise BitstreamError(
                f"{self._where()}: sections are {list(self.sections)}, expected {list(tags)}"
            )

    def section(
        self, tag: str, *, min_size: int = 0, max_size: int | None = None, what: str = ""
    ) -> bytes:
        """Payload of section ``tag`` (``what`` it holds, for messages): present, intact and
        ``min_size..max_size`` bytes long."""
        name = f"section {tag!r}" + (f" ({what})" if what else "")
        if tag not in self.sections:
            raise BitstreamError(
                f"{self._where()}: {name} missing (sections: {list(self.sections)})"
            )
        payload = self.sections[tag]
        if payload is None:
            raise BitstreamError(f"{self._where()}: {name} was lost or damaged")
        if len(payload) < min_size or (max_size is not None and len(payload) > max_size):
            hi = "" if max_size is None else f", at most {max_size}"
            raise BitstreamError(
                f"{self._where()}: {name} has {len(payload)} bytes "
                f"(expected at least {min_size}{hi})"
            )
        return payload

    def image_size(self, h_key: str = "h", w_key: str = "w") -> tuple[int, int]:
        """``(height, width)`` from two header fields, within :mod:`semcom.limits`."""
        from semcom.limits import MAX_SIDE, size_problem

        h = self.int_field(h_key, 1, MAX_SIDE)
        w = self.int_field(w_key, 1, MAX_SIDE)
        problem = size_problem(h, w)
        if problem is not None:
            raise BitstreamError(f"{self._where()}: header declares an image of {problem}")
        return h, w


def _kind(value: object) -> str:
    """``"a string"`` / ``"bytes"`` / ... : a field value's type, for error messages."""
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, int):
        return "an integer"
    return type(value).__name__


# --------------------------------------------------------------------------- packing


_NO_NUMPY: tuple[tuple[type, ...], ...] = ((), (), (), ())


def _numpy_types() -> tuple[tuple[type, ...], ...]:
    """numpy's ``(bool_,)``, ``(integer,)``, ``(floating,)``, ``(ndarray,)`` -- or four
    empty tuples when numpy is not loaded: no numpy value can exist before numpy is
    imported, so the container (and ``semcom inspect``) need not import it."""
    np = sys.modules.get("numpy")
    if np is None:
        return _NO_NUMPY
    return (np.bool_,), (np.integer,), (np.floating,), (np.ndarray,)


def _encode_field(key: str, value: object) -> tuple[str, bytes]:
    """Type tag and encoded value of one header field."""
    np_bool, np_integer, np_floating, np_ndarray = _numpy_types()
    if isinstance(value, (bool, *np_bool)):
        raise InputError(f"field {key!r}: bool is not a field type (use 0/1)")
    if isinstance(value, (int, *np_integer)):
        v = int(value)
        if v >= 0:
            if v > U64_MAX:
                raise InputError(f"field {key!r}: int {v} does not fit 64 bits")
            return "u", encode_uvarint(v)
        if v < I64_MIN:
            raise InputError(f"field {key!r}: int {v} does not fit 64 bits")
        return "i", encode_svarint(v)
    if isinstance(value, (float, *np_floating)):
        try:
            return "f", struct.pack(">f", float(value))
        except OverflowError:
            raise InputError(f"field {key!r}: {value!r} does not fit a float32") from None
    if isinstance(value, str):
        raw = _utf8(value, f"field {key!r}")
        return "s", encode_uvarint(len(raw)) + raw
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return "b", encode_uvarint(len(raw)) + raw
    if isinstance(value, np_ndarray) and value.ndim == 1 and value.dtype.kind in "iu":
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        parts = [encode_uvarint(len(value))]
        for item in value:
            if isinstance(item, (bool, *np_bool)) or not isinstance(item, (int, *np_integer)):
                raise InputError(f"field {key!r}: list items must be ints, got {item!r}")
            if not 0 <= int(item) <= U64_MAX:
                raise InputError(f"field {key!r}: list items must be in [0, 2**64), got {item}")
            parts.append(encode_uvarint(int(item)))
        return "U", b"".join(parts)
    raise InputError(f"field {key!r}: unsupported type {type(value).__name__}")


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what}: not encodable as UTF-8") from None


def _name(text: object, what: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise InputError(f"{what} must be a non-empty string, got {text!r}")
    raw = _utf8(text, what)
    return encode_uvarint(len(raw)) + raw


def pack_header(msg: Message, payloads: Sequence[bytes]) -> bytes:
    """The header bytes (CRC included) of ``msg`` with the given section payloads."""
    out = bytearray(MAGIC)
    out.append(VERSION)
    out += struct.pack(">H", msg.scheme_id)
    if not isinstance(msg.fields, Mapping) or not isinstance(msg.sections, Mapping):
        raise InputError("Message.fields and Message.sections must be dicts")
    out += encode_uvarint(len(msg.fields))
    for key, value in msg.fields.items():
        out += _name(key, "field key")
        tag, raw = _encode_field(key, value)
        out += tag.encode("ascii") + raw
    if len(payloads) != len(msg.sections):
        raise InputError(f"{len(payloads)} payloads for {len(msg.sections)} sections")
    out += encode_uvarint(len(msg.sections))
    for tag, payload in zip(msg.sections, payloads, strict=True):
        out += _name(tag, "section tag")
        out += encode_uvarint(len(payload))
        out += struct.pack(">I", zlib.crc32(payload))
    out += struct.pack(">I", zlib.crc32(out))
    return bytes(out)


def pack(msg: Message) -> bytes:
    """Serialise ``msg`` (raises InputError on values the format cannot carry)."""
    if not isinstance(msg, Message):
        raise InputError(f"pack() takes a Message, got {type(msg).__name__}")
    payloads = []
    for tag, payload in msg.sections.items():
        payloads.append(as_bytes(payload, f"section {tag!r} must be bytes"))
    return pack_header(msg, payloads) + b"".join(payloads)


# --------------------------------------------------------------------------- parsing


def _read_field(r: Reader, key: str) -> tuple[str, FieldValue]:
    tag_pos = r.pos
    tag = chr(r.byte())
    if tag == "u":
        return tag, r.uvarint()
    if tag == "i":
        return tag, r.svarint()
    if tag == "f":
        return tag, struct.unpack(">f", r.take(4))[0]
    if tag == "s":
        return tag, r.text(f"field {key!r}")
    if tag == "b":
        return tag, r.take(r.count(1, f"field {key!r} length"))
    if tag == "U":
        n = r.count(1, f"field {key!r} item count")
        return tag, [r.uvarint() for _ in range(n)]
    r.pos = tag_pos
    raise r.fail(f"field {key!r} has unknown type tag {tag!r}")


@dataclass
class _Header:
    scheme_id: int
    version: int
    fields: dict[str, FieldValue]
    field_types: dict[str, str]
    entries: list[tuple[str, int, int]]  # (tag, length, crc)
    size: int


def _read_name(r: Reader, what: str, taken: Container[str]) -> str:
    """A field key or section tag: non-empty and not in ``taken`` (else an error at its start)."""
    start = r.pos
    name = r.text(what)
    if not name or name in taken:
        r.pos = start
        raise r.fail(f"empty or duplicate {what} {name!r}")
    return name


def _parse_header(data: bytes, partial: _Header | None = None) -> _Header:
    """Parse and check the header. ``partial`` (if given) is filled as parsing goes, so a
    caller can show what was readable before a BitstreamError."""
    r = Reader(data, what="message header")
    part = partial if partial is not None else _Header(0, 0, {}, {}, [], 0)
    if r.remaining < PREFIX_SIZE:
        raise r.fail(f"truncated: {len(data)} bytes is shorter than the {PREFIX_SIZE}-byte prefix")
    if r.take(4) != MAGIC:
        raise BitstreamError("message header: bad magic (not a semcom message) at byte 0")
    version = r.byte()
    part.version = version
    if version != VERSION:
        raise BitstreamError(f"message header: unsupported format version {version} at byte 4")
    (scheme_id,) = struct.unpack(">H", r.take(2))
    part.scheme_id = scheme_id
    fields, types, entries = part.fields, part.field_types, part.entries
    for _ in range(r.count(MIN_FIELD_ENTRY, "field count")):
        key = _read_name(r, "field key", fields)
        types[key], fields[key] = _read_field(r, key)
    seen: set[str] = set()
    for _ in range(r.count(MIN_SECTION_ENTRY, "section count")):
        tag = _read_name(r, "section tag", seen)
        seen.add(tag)
        length = r.uvarint()
        (crc,) = struct.unpack(">I", r.take(4))
        entries.append((tag, length, crc))
    crc_pos = r.pos
    part.size = crc_pos
    (stored,) = struct.unpack(">I", r.take(4))
    if zlib.crc32(data[:crc_pos]) != stored:
        raise BitstreamError(f"message header: CRC32 mismatch (header damaged) at byte {crc_pos}")
    part.size = r.pos
    return part


def _check_erasures(erasures: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    np_integer = _numpy_types()[1]
    out = []
    for item in erasures:
        try:
            start, stop = item
        except (TypeError, ValueError):
            raise InputError(f"erasure must be a (start, stop) pair, got {item!r}") from None
        ints = all(isinstance(v, (int, *np_integer)) for v in (start, stop))
        if not ints or isinstance(start, bool) or isinstance(stop, bool) or not 0 <= start <= stop:
            raise InputError(f"erasure must be ints with 0 <= start <= stop, got {item!r}")
        if stop > start:
            out.append((int(start), int(stop)))
    return out


def header_size(data: bytes) -> int:
    """Size in bytes of the (intact) header of a packed message, CRC included."""
    return _parse_header(as_bytes(data)).size


def unpack(
    data: bytes,
    *,
    erasures: Sequence[tuple[int, int]] = (),
    allow_damaged: bool = False,
) -> Message:
    """Parse a packed message.

    Strict (default): any damage -- a bad header, a section hit by an erasure, a section
    CRC mismatch, truncation or trailing bytes -- raises :class:`BitstreamError`.
    With ``allow_damaged=True`` the header must still be intact, but sections that were
    erased, fail their CRC or are cut off come back as ``None`` and are listed in
    ``Message.damaged``.
    """
    data = as_bytes(data)
    ranges = _check_erasures(erasures)
    head = _parse_header(data)
    for start, _stop in ranges:
        if start < head.size:
            raise BitstreamError(f"message header: erased bytes at {start} (header damaged)")
    sections: dict[str, bytes | None] = {}
    infos: list[SectionInfo] = []
    damaged: list[str] = []
    pos = head.size
    for tag, length, crc in head.entries:
        end = pos + length
        if end > len(data):
            status = "truncated"
        elif any(a < end and pos < b for a, b in ranges):
            status = "erased"
        elif zlib.crc32(data[pos:end]) != crc:
            status = "crc mismatch"
        else:
            status = "ok"
        if status != "ok" and not allow_damaged:
            raise BitstreamError(f"section {tag!r}: {status} at byte {min(pos, len(data))}")
        infos.append(SectionInfo(tag, pos, length, crc, status))
        if status == "ok":
            sections[tag] = data[pos:end]
        else:
            sections[tag] = None
            damaged.append(tag)
        pos = end
    if pos < len(data):
        raise BitstreamError(f"message: {len(data) - pos} trailing bytes at byte {pos}")
    name = scheme_name_of(head.scheme_id)
    layout = Layout(len(data), head.size, head.version, head.field_types, infos)
    return Message(
        scheme=name if name is not None else head.scheme_id,
        fields=head.fields,
        sections=sections,
        damaged=damaged,
        layout=layout,
    )
