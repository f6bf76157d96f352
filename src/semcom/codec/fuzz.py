"""Structure-aware mutations of messages, for fuzzing receivers.

Byte-level damage (bit flips, truncation) is mostly caught by the container's CRCs, so it
barely reaches a receiver's own checks. The mutations here also take a *valid* message
apart, change its structure or values, and pack it again with correct CRCs, so that
every check a receiver makes behind the container is exercised: sections missing,
renamed, duplicated, empty, oversized or with damaged payloads; header fields missing,
of the wrong type, out of range or extra; another scheme's id.

``mutate(data, rng)`` returns ``(kind, mutated_bytes)``; :data:`KINDS` lists the kinds.
Used by ``tests/test_receiver_fuzz.py`` and ``benchmarks/bench_fuzz_receivers.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from semcom.codec.container import SCHEME_IDS, Message, pack, unpack
from semcom.codec.varint import U64_MAX
from semcom.errors import InputError

__all__ = ["KINDS", "mutate"]

#: Largest payload an "oversized" mutation writes (bytes).
OVERSIZE_BYTES = 1 << 16

_EXTREME_INTS = (0, 1, 2, 3, 7, 8, 15, 16, 63, 64, 255, 256, 4095, 65535, 65536,
                 1 << 24, 1 << 31, 1 << 32, 1 << 53, 1 << 63, U64_MAX, -1, -(1 << 63))  # fmt: skip


def _rand_bytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def _bitflip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def _extend(data: bytes, rng: random.Random) -> bytes:
    return data + _rand_bytes(rng, rng.randint(1, 64))


def _any_value(rng: random.Random) -> object:
    choice = rng.randrange(6)
    if choice == 0:
        return rng.choice(_EXTREME_INTS)
    if choice == 1:
        return rng.choice([0.0, -1.0, 0.5, 1e30, float("inf"), float("nan")])
    if choice == 2:
        return rng.choice(["", "x", "q4", "jpeg", "\u00e9" * 40])
    if choice == 3:
        return _rand_bytes(rng, rng.choice([0, 1, 4, 32]))
    if choice == 4:
        return [rng.choice(_EXTREME_INTS[:-2]) for _ in range(rng.randint(0, 5))]
    return rng.randrange(0, 1 << rng.choice([2, 8, 16, 32]))


# Structural mutations of a parsed message; each returns a changed Message (or None when
# it does not apply, e.g. no sections to drop).
Mutation = Callable[[Message, random.Random], Message | None]


def _drop(part: str) -> Mutation:
    """Delete a random entry of ``m.<part>`` (``"sections"`` or ``"fields"``)."""

    def drop(m: Message, rng: random.Random) -> Message | None:
        items = getattr(m, part)
        if not items:
            return None
        del items[rng.choice(list(items))]
        return m

    return drop


def _replace(part: str, value: Callable[[random.Random], object]) -> Mutation:
    """Give a random entry of ``m.<part>`` the value ``value(rng)`` (drawn after the key)."""

    def replace(m: Message, rng: random.Random) -> Message | None:
        items = getattr(m, part)
        if not items:
            return None
        key = rng.choice(list(items))
        items[key] = value(rng)
        return m

    return replace


def _add(part: str, names: list[str], value: Callable[[random.Random], object]) -> Mutation:
    """Add an entry named one of ``names`` to ``m.<part>``, unless it is there already."""

    def add(m: Message, rng: random.Random) -> Message | None:
        items = getattr(m, part)
        name = rng.choice(names)
        if name in items:
            return None
        items[name] = value(rng)
        return m

    return add


def _section_rename(m: Message, rng: random.Random) -> Message | None:
    if not m.sections:
        return None
    old = rng.choice(list(m.sections))
    new = rng.choice(["img", "pos", "px0", "px1", "x", old + "_", old.upper() or "Z"])
    if new in m.sections:
        return None
    m.sections = {(new if k == old else k): v for k, v in m.sections.items()}
    return m


def _section_duplicate(m: Message, rng: random.Random) -> Message | None:
    if not m.sections:
        return None
    tag = rng.choice(list(m.sections))
    m.sections[f"{tag}{rng.randrange(10)}x"] = m.sections[tag]
    return m


def _section_oversize(m: Message, rng: random.Random) -> Message | None:
    if not m.sections:
        return None
    tag = rng.choice(list(m.sections))
    payload = m.sections[tag] or b""
    if rng.random() < 0.5:  # the real payload padded with junk
        m.sections[tag] = payload + _rand_bytes(rng, rng.randint(1, OVERSIZE_BYTES))
    else:  # a junk payload of the size of several real ones
        m.sections[tag] = _rand_bytes(rng, rng.randint(1, OVERSIZE_BYTES))
    return m


def _payload(change: Callable[[bytes, random.Random], bytes]) -> Mutation:
    """Byte-level ``change`` of a random non-empty section payload: damage that the CRC does
    not see (the CRC is recomputed)."""

    def payload(m: Message, rng: random.Random) -> Message | None:
        tags = [t for t, v in m.sections.items() if v]
        if not tags:
            return None
        tag = rng.choice(tags)
        m.sections[tag] = change(m.sections[tag] or b"", rng)
        return m

    return payload


def _section_swap(m: Message, rng: random.Random) -> Message | None:
    if len(m.sections) < 2:
        return None
    a, b = rng.sample(list(m.sections), 2)
    m.sections[a], m.sections[b] = m.sections[b], m.sections[a]
    return m


def _field_range(m: Message, rng: random.Random) -> Message | None:
    keys = [k for k, v in m.fields.items() if isinstance(v, int)]
    if not keys:
        return None
    key = rng.choice(keys)
    old = int(m.fields[key])  # type: ignore[arg-type]
    m.fields[key] = rng.choice(
        [*_EXTREME_INTS, old + 1, max(0, old - 1), old * 2, old // 2, old + 8]
    )
    return m


def _scheme_swap(m: Message, rng: random.Random) -> Message | None:
    m.scheme = rng.choice([*SCHEME_IDS.values(), 0, 999, 65535])
    return m


_BYTE_KINDS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "bitflip": _bitflip,
    "truncate": _truncate,
    "extend": _extend,
}
_STRUCT_KINDS: dict[str, Mutation] = {
    "section-drop": _drop("sections"),
    "section-rename": _section_rename,
    "section-duplicate": _section_duplicate,
    "section-add": _add(
        "sections",
        ["img", "pos", "px0", "px1", "px99", "extra"],
        lambda rng: _rand_bytes(rng, rng.randint(0, 256)),
    ),
    "section-empty": _replace("sections", lambda rng: b""),
    "section-oversize": _section_oversize,
    "section-payload-flip": _payload(_bitflip),
    "section-payload-cut": _payload(_truncate),
    "section-swap": _section_swap,
    "field-drop": _drop("fields"),
    "field-retype": _replace("fields", _any_value),
    "field-range": _field_range,
    "field-add": _add("fields", ["h", "w", "k", "q", "g", "fp", "zz", "extra"], _any_value),
    "scheme-swap": _scheme_swap,
}

#: Every mutation kind :func:`mutate` can return.
KINDS: tuple[str, ...] = (*_BYTE_KINDS, *_STRUCT_KINDS)


def mutate(data: bytes, rng: random.Random, kind: str | None = None) -> tuple[str, bytes]:
    """One mutant of the valid message ``data``: ``(kind, bytes)``.

    ``kind`` (one of :data:`KINDS`) picks the mutation; by default one is drawn. A
    structural mutation that does not apply to this message (e.g. no section to drop)
    falls back to a byte-level bit flip, reported as ``"bitflip"``.
    """
    kind = kind or rng.choice(KINDS)
    if kind in _BYTE_KINDS:
        return kind, _BYTE_KINDS[kind](data, rng)
    msg = unpack(data)
    mutant = Message(scheme=msg.scheme, fields=dict(msg.fields), sections=dict(msg.sections))
    changed = _STRUCT_KINDS[kind](mutant, rng)
    if changed is not None:
        try:
            return kind, pack(changed)
        except InputError:  # a value the format cannot carry (2**64, a bool)
            pass
    return "bitflip", _bitflip(data, rng)
