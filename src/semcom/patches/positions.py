"""Coding which patches of a patch message were kept.

Positions (:func:`encode_positions` / :func:`decode_positions`)
----------------------------------------------------------------
The set of ``k`` kept patch indices among ``P`` is coded three ways and the shortest
wins (ties go to the lower mode number). The first byte is the mode tag:

==== =================  ==========================================================
tag  mode               payload after the tag
==== =================  ==========================================================
0    bitmap             ``ceil(P / 8)`` bytes, bit ``p`` (MSB first) set when patch
                        ``p`` is kept; padding bits are zero
1    gaps               the ``k`` gaps ``idx[i] - idx[i-1] - 1`` (``idx[-1] = -1``),
                        each as an order-0 exp-Golomb code (a universal code: 1 bit
                        for gap 0, 3 bits for 1..2, 5 for 3..6, ...), MSB first,
                        zero-padded to a whole byte
2    combinatorial      the colex rank ``sum_i C(idx[i], i + 1)`` of the subset among
                        the ``C(P, k)`` subsets of size ``k``, big endian in exactly
                        ``ceil(bitlen(C(P, k) - 1) / 8)`` bytes (0 bytes when ``k`` is 0
                        or ``P``)
==== =================  ==========================================================

``k`` is not in the payload: it travels in the message header, and the decoder checks
the payload against it (bitmap popcount, gap count, rank range), that every index is
below ``P`` and that indices are strictly increasing -- anything else raises
:class:`~semcom.errors.BitstreamError`. The combinatorial code is never longer than the
bitmap (``C(P, k) <= 2**P``); gaps win when the kept patches are clustered (attention
maps usually are). On 8x8 grids the three are within a few bytes of each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from semcom.codec.varint import as_bytes
from semcom.errors import BitstreamError, InputError

__all__ = [
    "MAX_PATCHES",
    "POS_BITMAP",
    "POS_COMBINATORIAL",
    "POS_GAPS",
    "decode_positions",
    "encode_positions",
    "position_sizes",
]

#: Largest patch count the position coder accepts.
MAX_PATCHES = 1 << 16

POS_BITMAP, POS_GAPS, POS_COMBINATORIAL = 0, 1, 2
_POS_NAMES = {POS_BITMAP: "bitmap", POS_GAPS: "gaps", POS_COMBINATORIAL: "combinatorial"}


# =========================================================================== positions


def _check_num_patches(num_patches: object) -> int:
    if isinstance(num_patches, bool) or not isinstance(num_patches, (int, np.integer)):
        raise InputError(f"num_patches must be an int, got {num_patches!r}")
    if not 1 <= int(num_patches) <= MAX_PATCHES:
        raise InputError(f"num_patches must be in [1, {MAX_PATCHES}], got {num_patches}")
    return int(num_patches)


def _check_indices(indices: object, num_patches: int) -> np.ndarray:
    arr = np.asarray(indices.cpu() if hasattr(indices, "cpu") else indices)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise InputError(f"indices must be a 1-D integer array, got {arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (arr[0] < 0 or arr[-1] >= num_patches or np.any(np.diff(arr) <= 0)):
        raise InputError(f"indices must be strictly increasing and lie in [0, {num_patches})")
    return arr


def _comb_rank(idx: np.ndarray) -> int:
    """Colex rank of a sorted subset: ``sum_i C(idx[i], i + 1)``."""
    return sum(math.comb(int(c), i + 1) for i, c in enumerate(idx.tolist()))


def _comb_nbytes(num_patches: int, k: int) -> int:
    return ((math.comb(num_patches, k) - 1).bit_length() + 7) // 8


def _encode_bitmap(idx: np.ndarray, num_patches: int) -> bytes:
    bits = np.zeros(num_patches, dtype=bool)
    bits[idx] = True
    return np.packbits(bits).tobytes()


def _exp_golomb(values: Sequence[int]) -> bytes:
    """Order-0 exp-Golomb codes of non-negative ints, MSB first, zero-padded to a byte:
    ``v`` is ``bitlen(v + 1) - 1`` zero bits, then ``v + 1`` in binary."""
    acc, nbits = 0, 0
    for v in values:
        v += 1
        width = 2 * v.bit_length() - 1
        acc = (acc << width) | v
        nbits += width
    pad = -nbits % 8
    return (acc << pad).to_bytes((nbits + pad) // 8, "big")


def _read_exp_golomb(data: bytes, count: int, what: str) -> list[int]:
    """Inverse of :func:`_exp_golomb` for ``count`` values; padding must be < 8 zero bits."""
    bits = bin(int.from_bytes(data, "big"))[2:].zfill(8 * len(data)) if data else ""
    out, pos = [], 0
    for _ in range(count):
        one = bits.find("1", pos)
        if one < 0:
            raise BitstreamError(f"{what}: truncated after {len(out)} of {count} values")
        zeros = one - pos
        if zeros > 20:
            raise BitstreamError(f"{what}: code of {zeros} leading zeros is too long")
        end = one + zeros + 1
        if end > len(bits):
            raise BitstreamError(f"{what}: truncated after {len(out)} of {count} values")
        out.append(int(bits[one:end], 2) - 1)
        pos = end
    if len(bits) - pos >= 8 or "1" in bits[pos:]:
        raise BitstreamError(f"{what}: {len(bits) - pos} trailing bits (or non-zero padding)")
    return out


def _encode_gaps(idx: np.ndarray, num_patches: int) -> bytes:
    return _exp_golomb((np.diff(idx, prepend=-1) - 1).tolist())


def _encode_comb(idx: np.ndarray, num_patches: int) -> bytes:
    return _comb_rank(idx).to_bytes(_comb_nbytes(num_patches, idx.size), "big")


def _candidates(idx: np.ndarray, num_patches: int) -> dict[int, bytes]:
    return {
        POS_BITMAP: _encode_bitmap(idx, num_patches),
        POS_GAPS: _encode_gaps(idx, num_patches),
        POS_COMBINATORIAL: _encode_comb(idx, num_patches),
    }


def position_sizes(indices: object, num_patches: int) -> dict[str, int]:
    """Payload bytes (mode tag included) of every position mode, by mode name."""
    p = _check_num_patches(num_patches)
    idx = _check_indices(indices, p)
    return {_POS_NAMES[m]: 1 + len(b) for m, b in _candidates(idx, p).items()}


def encode_positions(indices: object, num_patches: int) -> bytes:
    """Code a set of kept patch indices; the cheapest of the three modes is used.

    Args:
        indices: 1-D integer array / tensor / sequence of ``k`` strictly increasing
            indices in ``[0, num_patches)`` (``0 <= k <= num_patches``).
        num_patches: ``P``, at most :data:`MAX_PATCHES`.

    Returns:
        ``bytes``: a 1-byte mode tag, then the payload (see the module docstring).

    Raises:
        InputError: bad ``num_patches`` or indices.
    """
    p = _check_num_patches(num_patches)
    idx = _check_indices(indices, p)
    mode, payload = min(_candidates(idx, p).items(), key=lambda kv: (len(kv[1]), kv[0]))
    return bytes([mode]) + payload


def decode_positions(data: bytes, num_patches: int, k: int) -> np.ndarray:
    """Inverse of :func:`encode_positions`.

    Args:
        data: the coded positions (untrusted).
        num_patches: ``P``.
        k: the number of kept patches the message header announces.

    Returns:
        int64 ``(k,)`` strictly increasing indices in ``[0, P)``.

    Raises:
        BitstreamError: unknown mode, wrong length, count different from ``k``, an index
            out of range, or a malformed entropy-coded stream.
    """
    p = _check_num_patches(num_patches)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InputError(f"k must be an int, got {k!r}")
    if not 0 <= k <= p:
        raise BitstreamError(f"positions: k={k} is not in [0, {p}]")
    k = int(k)
    data = as_bytes(data, "data must be bytes")
    if not data:
        raise BitstreamError("positions: empty payload (no mode tag)")
    mode, body = data[0], data[1:]
    if mode == POS_BITMAP:
        need = (p + 7) // 8
        if len(body) != need:
            raise BitstreamError(f"positions bitmap: {len(body)} bytes, expected {need}")
        bits = np.unpackbits(np.frombuffer(body, dtype=np.uint8))
        if bits[p:].any():
            raise BitstreamError("positions bitmap: padding bits are not zero")
        idx = np.flatnonzero(bits[:p]).astype(np.int64)
        if idx.size != k:
            raise BitstreamError(f"positions bitmap: {idx.size} patches set, header says k={k}")
        return idx
    if mode == POS_GAPS:
        if len(body) > 6 * p + 8:  # 41 bits per gap at most below 2**20
            raise BitstreamError(f"positions gaps: {len(body)} bytes is too long for {p} patches")
        gaps = np.array(_read_exp_golomb(body, k, "positions gaps"), dtype=np.int64)
        idx = np.cumsum(gaps + 1) - 1
        if idx.size and idx[-1] >= p:
            raise BitstreamError(f"positions gaps: index {int(idx[-1])} out of range [0, {p})")
        return idx.astype(np.int64)
    if mode == POS_COMBINATORIAL:
        need = _comb_nbytes(p, k)
        if len(body) != need:
            raise BitstreamError(
                f"positions combinatorial: {len(body)} bytes, expected {need} for k={k} of {p}"
            )
        rank = int.from_bytes(body, "big")
        if rank >= math.comb(p, k):
            raise BitstreamError(f"positions combinatorial: rank out of range for k={k} of {p}")
        out = []
        c = p
        for i in range(k, 0, -1):
            c -= 1
            while math.comb(c, i) > rank:
                c -= 1
            rank -= math.comb(c, i)
            out.append(c)
        return np.array(out[::-1], dtype=np.int64)
    raise BitstreamError(f"positions: unknown mode tag {mode}")
