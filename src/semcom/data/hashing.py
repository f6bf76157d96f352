"""Counter-based random numbers: every value is a pure function of (key, seed, stream).

The synthetic world never touches a global RNG. Each random parameter of a sample is
``uniform(seed, stream)`` where ``stream`` names the parameter, so a sample depends only
on its own seed, never on the batch it is generated in.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of ``x + golden``, element-wise on a uint64 array."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


def seed_keys(seeds: np.ndarray, key: int = 0) -> np.ndarray:
    """Per-sample 64-bit keys from int64 seeds ``(N,)`` and a world key; uint64 ``(N,)``."""
    s = np.asarray(seeds, dtype=np.int64).view(np.uint64)
    k = splitmix64(np.array([key & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    return splitmix64(s ^ k)


def uniforms(keys: np.ndarray, streams: np.ndarray | list[int]) -> np.ndarray:
    """Uniform floats in ``[0, 1)``: float64 ``(N, S)`` for keys ``(N,)`` and streams ``(S,)``."""
    st = np.asarray(streams, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = keys[:, None] + splitmix64(st)[None, :] * _GOLDEN
    return (splitmix64(x) >> _S11).astype(np.float64) * (1.0 / 9007199254740992.0)
