"""Describing messages for people: :func:`describe_message` and the tolerant
:func:`inspect_bytes` behind ``semcom inspect`` (what can be read of damaged bytes)."""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Mapping

from semcom.codec.container import (
    _TYPE_NAMES,
    MAGIC,
    PREFIX_SIZE,
    VERSION,
    FieldValue,
    Layout,
    Message,
    SectionInfo,
    _encode_field,
    _Header,
    _parse_header,
    pack_header,
    scheme_name_of,
    unpack,
)
from semcom.codec.varint import as_bytes
from semcom.errors import BitstreamError, InputError

__all__ = ["describe_message", "inspect_bytes"]


def inspect_bytes(data: bytes, notes: FieldNotes | None = None) -> tuple[str, str | None]:
    """What ``semcom inspect`` prints of possibly damaged bytes: ``(description, problem)``.

    An intact message gives its :func:`describe_message` and ``None``. A damaged one
    gives whatever could be read -- the fields and section entries parsed before the
    header broke, or an intact header with each section's status (erased, CRC mismatch,
    truncated) -- and a one-line ``problem`` naming where the damage is.
    """
    data = as_bytes(data)
    partial = _Header(0, 0, {}, {}, [], 0)
    try:
        _parse_header(data, partial)
    except BitstreamError as exc:
        return _describe_partial(data, partial), str(exc)
    msg = unpack(data, allow_damaged=True)
    problem = None
    if msg.damaged:
        bad = [
            f"{i.tag!r} {i.status} at byte {i.offset}"
            for i in msg.layout.sections  # type: ignore[union-attr]
            if i.status != "ok"
        ]
        problem = f"damaged section(s): {', '.join(bad)}"
    return describe_message(msg, notes), problem


def _describe_partial(data: bytes, head: _Header) -> str:
    lines = [f"size:     {len(data)} bytes; header NOT intact, what could be read:"]
    if len(data) >= 4:
        lines.append(
            f"magic:    {data[:4]!r} ({'ok' if data[:4] == MAGIC else 'not a semcom message'})"
        )
    if len(data) >= 5 and data[:4] == MAGIC:
        lines.append(f"version:  {head.version or data[4]}")
    if len(data) >= PREFIX_SIZE and data[:4] == MAGIC:
        sid = struct.unpack(">H", data[5:7])[0]
        lines.append(f"scheme:   {scheme_name_of(sid) or '#' + str(sid)} (id {sid})")
    if head.fields:
        lines.append(f"fields read: {len(head.fields)}")
        for key, value in head.fields.items():
            tag = head.field_types.get(key, "?")
            lines.append(f"  {key}  {_TYPE_NAMES.get(tag, '?')}  {_abbrev_value(tag, value)}")
    if head.entries:
        lines.append(f"section entries read: {len(head.entries)}")
        for tag, length, crc in head.entries:
            lines.append(f"  {tag}  {length} bytes  crc32 {crc:08x}")
    return "\n".join(lines)


def _abbrev_bytes(raw: bytes, limit: int = 16) -> str:
    shown = raw[:limit].hex(" ")
    return f"{len(raw)} bytes: {shown}{' ...' if len(raw) > limit else ''}"


def _abbrev_value(tag: str, value: FieldValue) -> str:
    if tag == "b" and isinstance(value, bytes):
        return _abbrev_bytes(value)
    if tag == "U" and isinstance(value, list):
        head = ", ".join(str(v) for v in value[:8])
        return f"[{head}{', ...' if len(value) > 8 else ''}] ({len(value)} items)"
    if tag == "f" and isinstance(value, float):
        return repr(value) if not math.isfinite(value) else f"{value:.7g}"
    if tag == "s" and isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


def _guess_tag(value: FieldValue) -> str:
    try:
        return _encode_field("?", value)[0]
    except InputError:
        return "?"


#: Field key -> ``f(value) -> text`` shown instead of the raw value.
FieldNotes = Mapping[str, Callable[[FieldValue], str]]


def describe_message(msg: Message, notes: FieldNotes | None = None) -> str:
    """Multi-line human-readable description of ``msg`` (what ``semcom inspect`` prints of
    an intact message): scheme, version, sizes, every field and section. ``notes`` gives
    readable text for fields whose meaning the container does not know (``semcom
    inspect`` names the zoo model behind a patch message's ``fp`` fingerprint)."""
    notes = notes or {}
    layout = msg.layout
    if layout is None:
        payloads = [p for p in msg.sections.values() if p is not None]
        if len(payloads) != len(msg.sections):
            raise InputError("describe(): a damaged message without wire layout")
        head = pack_header(msg, payloads)
        pos = len(head)
        infos = []
        for tag, payload in zip(msg.sections, payloads, strict=True):
            infos.append(SectionInfo(tag, pos, len(payload), zlib.crc32(payload), "ok"))
            pos += len(payload)
        layout = Layout(pos, len(head), VERSION, {}, infos)
    lines = [
        f"scheme:   {msg.scheme_name} (id {msg.scheme_id})",
        f"version:  {layout.version}",
        f"size:     {layout.total_size} bytes total = {layout.header_size} header "
        f"(CRC32 included) + {layout.total_size - layout.header_size} payload",
        f"fields:   {len(msg.fields)}",
    ]
    width = max([len(k) for k in msg.fields] + [len(s.tag) for s in layout.sections] + [4])
    for key, value in msg.fields.items():
        tag = layout.field_types.get(key) or _guess_tag(value)
        type_name = _TYPE_NAMES.get(tag, "?")
        shown = _abbrev_value(tag, value)
        if key in notes:
            shown = notes[key](value)
        lines.append(f"  {key:<{width}}  {type_name:<10}  {shown}")
    lines.append(f"sections: {len(layout.sections)}")
    for info in layout.sections:
        status = "CRC ok" if info.status == "ok" else f"DAMAGED ({info.status})"
        lines.append(
            f"  {info.tag:<{width}}  {info.length:>9} bytes  at {info.offset:<8}"
            f"crc32 {info.crc:08x}  {status}"
        )
    return "\n".join(lines)
