"""The binary symmetric channel: independent bit flips the receiver cannot see."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from semcom.channel.base import Channel, Received, check_probability

__all__ = ["BinarySymmetricChannel", "flip_positions", "flip_bits"]


def flip_positions(rng: np.random.Generator, num_bits: int, ber: float) -> np.ndarray:
    """Positions of a Bernoulli(``ber``) process over ``num_bits`` bits.

    Sampled as cumulative geometric gaps, so the cost is proportional to the number of
    flips, not of bits (fast for megabytes at small ``ber``).

    Input
    -----
    rng : numpy.random.Generator
    num_bits : int
    ber : float in [0, 1]

    Output
    ------
    positions : int64 ``(K,)``, strictly increasing, each in ``[0, num_bits)``.
    """
    if num_bits <= 0 or ber <= 0.0:
        return np.zeros(0, dtype=np.int64)
    if ber >= 1.0:
        return np.arange(num_bits, dtype=np.int64)
    mean = num_bits * ber
    chunk = int(mean + 6.0 * math.sqrt(mean) + 16)
    parts: list[np.ndarray] = []
    last = -1
    while True:
        pos = last + np.cumsum(rng.geometric(ber, size=chunk), dtype=np.int64)
        if pos[-1] >= num_bits:
            parts.append(pos[pos < num_bits])
            break
        parts.append(pos)
        last = int(pos[-1])
    return np.concatenate(parts)


def flip_bits(data: bytes, positions: np.ndarray) -> bytes:
    """Flip the given bit positions of ``data`` (bit 0 = MSB of byte 0, as ``np.unpackbits``).

    Input
    -----
    data : bytes, length ``L``
    positions : int ``(K,)``, strictly increasing, each in ``[0, 8 L)``

    Output
    ------
    bytes, length ``L``
    """
    if positions.size == 0:
        return data
    buf = np.frombuffer(data, dtype=np.uint8).copy()
    byte_idx = positions >> 3
    masks = (np.uint8(0x80) >> (positions & 7).astype(np.uint8)).astype(np.uint8)
    starts = np.flatnonzero(np.r_[True, byte_idx[1:] != byte_idx[:-1]])
    buf[byte_idx[starts]] ^= np.bitwise_or.reduceat(masks, starts)
    return buf.tobytes()


DENSE_BER = 0.05  # above this, drawing every bit beats drawing the gaps between flips
DENSE_CHUNK_BYTES = 1 << 20


def _flip_dense(rng: np.random.Generator, data: bytes, ber: float) -> tuple[bytes, int]:
    """Draw a Bernoulli(``ber``) flip for every bit (chunked); returns (bytes, #flips)."""
    buf = np.frombuffer(data, dtype=np.uint8).copy()
    flips = 0
    for start in range(0, buf.size, DENSE_CHUNK_BYTES):
        part = buf[start : start + DENSE_CHUNK_BYTES]
        if ber == 0.5:  # uniform random bytes are exactly Bernoulli(1/2) per bit
            mask = rng.integers(0, 256, size=part.size, dtype=np.uint8)
        else:
            mask = np.packbits(rng.random(8 * part.size) < ber)
        flips += int(np.unpackbits(mask).sum())
        part ^= mask
    return buf.tobytes(), flips


class BinarySymmetricChannel(Channel):
    """Flips every bit independently with probability ``ber``.

    The receiver is not told where the errors are (``erasures`` is always empty).

    Parameters
    ----------
    ber : float
        Bit error (crossover) probability in ``[0, 0.5]``.
    seed : int
        Seed of the flip process.

    Output
    ------
    ``data`` with flipped bits (length ``L``), ``erasures = []``,
    ``channel_bytes = L``, ``info["bit_errors"]`` (number of flips).
    """

    kind = "bsc"

    def __init__(self, ber: float, seed: int = 0) -> None:
        self.ber = check_probability("ber", ber, high=0.5)
        super().__init__(seed=seed)

    def params(self) -> dict[str, Any]:
        return {"ber": self.ber}

    def _transmit(self, data: bytes) -> Received:
        if self.ber > DENSE_BER:
            out, flips = _flip_dense(self.rng, data, self.ber)
        else:
            positions = flip_positions(self.rng, 8 * len(data), self.ber)
            out, flips = flip_bits(data, positions), int(positions.size)
        return Received(data=out, erasures=[], channel_bytes=len(data), info={"bit_errors": flips})
