"""The bits of one word message: the word's id under a Huffman code, then its position.

A progressive session sends one word per message, so the word must be coded alone:
an arithmetic coder that flushes 32-bit words (constriction's) would spend 4 bytes on
it. A prefix code spends whole bits: :class:`WordCode` is the canonical Huffman code of
a word prior (the unigram frequencies of the training captions, every id with a count
of at least 1, so any id -- ``<unk>`` included -- is codable), built deterministically
so both ends derive the same code from the same counts. The payload of a message is::

    huffman(word id) | position (ceil(log2 n) bits, n = the caption's length) | zero pad

:meth:`WordCode.unpack` reads it back and raises :class:`~semcom.errors.BitstreamError`
when the bits do not form a codeword, the position is out of range or the padding is
not zero.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from semcom.errors import BitstreamError, InputError

__all__ = ["WordCode", "position_bits"]


def position_bits(n: int) -> int:
    """Bits of a position among ``n`` words (0 for a one-word caption)."""
    return max(int(n) - 1, 0).bit_length()


def _code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code lengths (ties broken by symbol id, so the result is deterministic)."""
    k = len(counts)
    if k == 1:
        return np.ones(1, dtype=np.int64)
    heap = [(int(c), i, [i]) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    lengths = np.zeros(k, dtype=np.int64)
    order = k
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, order, s1 + s2))
        order += 1
    return lengths


class WordCode:
    """Canonical Huffman code of word ids ``0 .. K-1`` from their ``counts`` (each >= 1)."""

    def __init__(self, counts: Sequence[int] | np.ndarray) -> None:
        c = np.asarray(counts, dtype=np.int64)
        if c.ndim != 1 or len(c) < 1 or (c < 1).any():
            raise InputError("word code counts must be a non-empty list of ints >= 1")
        self.lengths = _code_lengths(c)
        if int(self.lengths.max()) > 32:
            raise InputError("word code: counts too skewed (a codeword longer than 32 bits)")
        order = sorted(range(len(c)), key=lambda i: (int(self.lengths[i]), i))
        self.codes = np.zeros(len(c), dtype=np.int64)
        code, prev = 0, int(self.lengths[order[0]])
        for rank, i in enumerate(order):
            n = int(self.lengths[i])
            if rank:
                code = (code + 1) << (n - prev)
            self.codes[i] = code
            prev = n
        self._decode = {(int(self.lengths[i]), int(self.codes[i])): i for i in range(len(c))}

    def __len__(self) -> int:
        return len(self.lengths)

    def mean_bits(self, counts: Sequence[int] | np.ndarray) -> float:
        """Expected codeword length (bits) under ``counts``."""
        p = np.asarray(counts, dtype=np.float64)
        return float((p / p.sum() * self.lengths).sum())

    def pack(self, word: int, position: int, n: int) -> bytes:
        """The payload of word id ``word`` at ``position`` of an ``n``-word caption."""
        if not 0 <= int(word) < len(self):
            raise InputError(f"word id {word} outside 0..{len(self) - 1}")
        if not 0 <= int(position) < int(n):
            raise InputError(f"position {position} outside a caption of {n} words")
        bits = f"{int(self.codes[word]):0{int(self.lengths[word])}b}"
        pb = position_bits(n)
        bits += f"{int(position):0{pb}b}" if pb else ""
        bits += "0" * (-len(bits) % 8)
        return int(bits, 2).to_bytes(len(bits) // 8, "big")

    def unpack(self, data: bytes, n: int) -> tuple[int, int]:
        """``(word id, position)`` from a payload made by :meth:`pack` for ``n`` words."""
        if not data or len(data) > 8:
            raise BitstreamError(f"word payload of {len(data)} bytes (expected 1..8)")
        bits = "".join(f"{b:08b}" for b in data)
        word = None
        for length in range(1, min(len(bits), 32) + 1):
            word = self._decode.get((length, int(bits[:length], 2)))
            if word is not None:
                break
        if word is None:
            raise BitstreamError("word payload: no codeword of the vocabulary's code")
        rest = bits[length:]
        pb = position_bits(n)
        if len(rest) < pb:
            raise BitstreamError("word payload: truncated position")
        position = int(rest[:pb], 2) if pb else 0
        pad = rest[pb:]
        if position >= n:
            raise BitstreamError(f"word payload: position {position} outside {n} words")
        if len(pad) >= 8 or "1" in pad:
            raise BitstreamError("word payload: padding is not zero (or the payload is too long)")
        return word, position
