"""Coding the parts of a patch message: their pixels, in groups (which patches were kept:
:mod:`semcom.patches.positions`).

Positions: :mod:`semcom.patches.positions` (re-exported here).

Pixels (:class:`PixelCodec`, :func:`parse_pixel_codec`)
-------------------------------------------------------
Tiles are ``uint8`` numpy arrays ``(n, 3, s, s)`` (``s`` = patch size), coded in the order
given (ascending patch index in a patch message):

==================  =====  ================================================================
spec                id     coding
==================  =====  ================================================================
``raw``             0      8-bit samples, ``3 * s * s`` bytes per tile, no header
``q<B>``            1      uniform quantisation to ``B`` bits (``1 <= B <= 8``,
                           ``q = v >> (8 - B)``, reconstructed at the bin centre), then
                           per tile and channel the LOCO-I median-edge predictor (MED)
                           over the quantised values, residuals modulo ``2**B`` mapped to
                           zigzag order, all coded with
                           :func:`~semcom.codec.entropy.encode_with_histogram` (within a
                           byte of ``encode_auto`` here, and 4-10x faster). ``q8`` is
                           lossless.
``q<B>:plain``      2      as ``q<B>`` without prediction (quantised values coded directly)
``jpeg:<Q>``        3      a *mosaic*: the tiles laid row-major in a ``rows x cols`` grid,
``webp:<Q>``        4      ``cols = ceil(sqrt(n))``, ``rows = ceil(n / cols)``, unused cells
``avif:<Q>``        5      filled with copies of the last tile, coded through Pillow
                           (:func:`semcom.codec.pillow.encode_image`) at quality ``Q``; the
                           receiver decodes, checks the size and cuts the tiles back
==================  =====  ================================================================

The MED predictor of sample ``x`` with left ``a``, upper ``b`` and upper-left ``c``
neighbours is ``min(a, b)`` if ``c >= max(a, b)``, ``max(a, b)`` if ``c <= min(a, b)``,
else ``a + b - c``; the first row of a tile predicts from the left, the first column from
above, the first sample from 0. Decoding follows anti-diagonals (``2s - 1`` vectorised
steps for any number of tiles).

Groups (:func:`group_bounds`)
-----------------------------
A message splits its ``k`` tiles into ``G = ceil(k / group_size)`` contiguous groups of
near-equal size (the first ``k mod G`` groups one tile larger), each coded on its own,
so a lost section loses only its own tiles. Encoder and decoder derive the same bounds
from ``k`` and ``group_size``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from semcom.codec.entropy import decode_with_histogram, encode_with_histogram
from semcom.codec.varint import as_bytes
from semcom.errors import BitstreamError, InputError
from semcom.patches.positions import (
    MAX_PATCHES,
    POS_BITMAP,
    POS_COMBINATORIAL,
    POS_GAPS,
    decode_positions,
    encode_positions,
    position_sizes,
)

__all__ = [
    "MAX_PATCHES",
    "PIXEL_CODEC_IDS",
    "POS_BITMAP",
    "POS_COMBINATORIAL",
    "POS_GAPS",
    "PixelCodec",
    "decode_groups",
    "decode_positions",
    "encode_positions",
    "group_bounds",
    "med_reconstruct",
    "med_residuals",
    "mosaic_shape",
    "parse_pixel_codec",
    "pixel_codec_from_id",
    "position_sizes",
]


#: Pixel codec kind -> wire id.
PIXEL_CODEC_IDS: dict[str, int] = {
    "raw": 0,
    "q": 1,
    "q-plain": 2,
    "jpeg": 3,
    "webp": 4,
    "avif": 5,
}
_MOSAIC = ("jpeg", "webp", "avif")


# ============================================================================== groups


def group_bounds(k: int, group_size: int) -> list[tuple[int, int]]:
    """Contiguous near-equal groups of ``k`` tiles with at most ``group_size`` each.

    Returns ``G = ceil(k / group_size)`` half-open ``(start, stop)`` ranges (none for
    ``k = 0``); the first ``k mod G`` groups hold one tile more than the others.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)):
        raise InputError(f"group_size must be an int >= 1, got {group_size!r}")
    if group_size < 1 or k < 0:
        raise InputError(f"need group_size >= 1 and k >= 0, got {group_size}, {k}")
    g = -(-k // group_size)
    if g == 0:
        return []
    base, extra = divmod(k, g)
    out, start = [], 0
    for i in range(g):
        stop = start + base + (i < extra)
        out.append((start, stop))
        start = stop
    return out


# ====================================================================== pixel codecs

_SPEC = re.compile(r"(?:(raw)|q([0-9]+)(:plain)?|(jpeg|jpg|webp|avif):([0-9]+))")


def _check_tiles(tiles: np.ndarray) -> np.ndarray:
    if not isinstance(tiles, np.ndarray) or tiles.dtype != np.uint8 or tiles.ndim != 4:
        what = f"{tiles.dtype} {tiles.shape}" if isinstance(tiles, np.ndarray) else type(tiles)
        raise InputError(f"tiles must be a uint8 numpy array (n, 3, s, s), got {what}")
    if tiles.shape[1] != 3 or tiles.shape[2] != tiles.shape[3] or tiles.shape[2] < 1:
        raise InputError(f"tiles must have shape (n, 3, s, s), got {tiles.shape}")
    return np.ascontiguousarray(tiles)


def mosaic_shape(n: int) -> tuple[int, int]:
    """``(rows, cols)`` of the mosaic grid of ``n >= 1`` tiles: ``cols = ceil(sqrt(n))``."""
    cols = math.isqrt(n - 1) + 1 if n > 0 else 1
    return -(-n // cols), cols


@lru_cache(maxsize=16)
def _med_plan(s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Neighbour index maps ``(A, B, C)`` into a flat tile plane padded with one zero
    slot (index ``s * s``), and the flat indices of each anti-diagonal."""
    n = s * s
    a = np.empty(n, dtype=np.int64)
    b = np.empty(n, dtype=np.int64)
    c = np.empty(n, dtype=np.int64)
    for i in range(s):
        for j in range(s):
            f = i * s + j
            if i == 0 and j == 0:
                a[f] = b[f] = c[f] = n
            elif i == 0:
                a[f] = b[f] = c[f] = f - 1
            elif j == 0:
                a[f] = b[f] = c[f] = f - s
            else:
                a[f], b[f], c[f] = f - 1, f - s, f - s - 1
    diags = [
        np.array([i * s + (d - i) for i in range(max(0, d - s + 1), min(d, s - 1) + 1)])
        for d in range(2 * s - 1)
    ]
    return a, b, c, diags


def _med(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    mx = np.maximum(a, b)
    mn = np.minimum(a, b)
    return np.where(c >= mx, mn, np.where(c <= mn, mx, a + b - c))


def _to_zigzag(r: np.ndarray, m: int) -> np.ndarray:
    """Residuals mod ``m`` -> ``[0, m)`` ordered 0, -1, 1, -2, ... (small first)."""
    v = np.where(r < m // 2, r, r - m)
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def _from_zigzag(z: np.ndarray, m: int) -> np.ndarray:
    v = np.where(z % 2 == 0, z // 2, -(z + 1) // 2)
    return v % m


def med_residuals(q: np.ndarray, bits: int) -> np.ndarray:
    """MED prediction residuals of quantised tiles: ``q`` int ``(n, 3, s, s)`` with values
    in ``[0, 2**bits)`` -> int64 zigzag symbols in ``[0, 2**bits)``, same shape."""
    n, ch, s, _ = q.shape
    m = 1 << bits
    a, b, c, _ = _med_plan(s)
    x = np.zeros((n * ch, s * s + 1), dtype=np.int64)
    x[:, :-1] = q.reshape(n * ch, s * s)
    pred = _med(x[:, a], x[:, b], x[:, c])
    return _to_zigzag((x[:, :-1] - pred) % m, m).reshape(q.shape)


def med_reconstruct(sym: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`med_residuals`: int64 quantised values ``(n, 3, s, s)``."""
    n, ch, s, _ = sym.shape
    m = 1 << bits
    a, b, c, diags = _med_plan(s)
    r = _from_zigzag(sym.reshape(n * ch, s * s), m)
    x = np.zeros((n * ch, s * s + 1), dtype=np.int64)
    for idx in diags:
        pred = _med(x[:, a[idx]], x[:, b[idx]], x[:, c[idx]])
        x[:, idx] = (pred + r[:, idx]) % m
    return x[:, :-1].reshape(sym.shape)


@dataclass(frozen=True)
class PixelCodec:
    """How a group of tiles is turned into bytes (see the module docstring).

    Attributes:
        kind: ``"raw"``, ``"q"`` (MED-predicted), ``"q-plain"``, ``"jpeg"``, ``"webp"``
            or ``"avif"``.
        param: bits per sample for ``q`` kinds (1..8), the quality for the mosaic
            kinds, 8 for ``raw``.
    """

    kind: str
    param: int

    def __post_init__(self) -> None:
        if self.kind not in PIXEL_CODEC_IDS:
            raise InputError(f"unknown pixel codec kind {self.kind!r}")
        if self.kind == "raw" and self.param != 8:
            raise InputError(f"raw pixels have 8 bits, got param {self.param}")
        if self.kind in ("q", "q-plain") and not 1 <= self.param <= 8:
            raise InputError(f"q<B> needs 1 <= B <= 8 bits, got {self.param}")
        if self.kind in _MOSAIC:
            from semcom.codec.pillow import QUALITY_RANGES, available_formats

            lo, hi = QUALITY_RANGES[self.kind]
            if not lo <= self.param <= hi:
                raise InputError(f"{self.kind} quality must be in [{lo}, {hi}], got {self.param}")
            if self.kind not in available_formats():
                raise InputError(f"this Pillow build cannot code {self.kind}")

    # ----------------------------------------------------------------- naming
    @property
    def codec_id(self) -> int:
        """Wire id (header field ``pc``)."""
        return PIXEL_CODEC_IDS[self.kind]

    @property
    def spec(self) -> str:
        """The spec string :func:`parse_pixel_codec` turns back into this codec."""
        if self.kind == "raw":
            return "raw"
        if self.kind == "q":
            return f"q{self.param}"
        if self.kind == "q-plain":
            return f"q{self.param}:plain"
        return f"{self.kind}:{self.param}"

    @property
    def is_mosaic(self) -> bool:
        """True for the Pillow mosaic codecs."""
        return self.kind in _MOSAIC

    @property
    def lossless(self) -> bool:
        """True when decoding returns the tiles exactly (``raw``, ``q8``)."""
        return self.kind == "raw" or (self.kind in ("q", "q-plain") and self.param == 8)

    # ---------------------------------------------------------------- coding
    def quantize(self, tiles: np.ndarray) -> np.ndarray:
        """What the receiver gets for ``tiles`` when the codec is not a mosaic (for the
        ``q`` kinds: bin centres; ``raw``: the input). uint8, same shape."""
        tiles = _check_tiles(tiles)
        if self.kind not in ("q", "q-plain"):
            return tiles
        return self._dequantize(tiles >> (8 - self.param))

    def _dequantize(self, q: np.ndarray) -> np.ndarray:
        shift = 8 - self.param
        centre = (1 << shift) >> 1
        return ((q.astype(np.int64) << shift) + centre).astype(np.uint8)

    def encode(self, tiles: np.ndarray) -> bytes:
        """Code one group of tiles: uint8 ``(n, 3, s, s)``, ``n >= 1`` -> bytes."""
        tiles = _check_tiles(tiles)
        n, _, s, _ = tiles.shape
        if n == 0:
            raise InputError("cannot code an empty group of tiles")
        if self.kind == "raw":
            return tiles.tobytes()
        if self.kind in ("q", "q-plain"):
            q = tiles >> (8 - self.param)
            sym = med_residuals(q, self.param) if self.kind == "q" else q
            return encode_with_histogram(sym.reshape(-1), 1 << self.param)
        from semcom.codec.pillow import encode_image

        rows, cols = mosaic_shape(n)
        grid = np.empty((rows * cols, 3, s, s), dtype=np.uint8)
        grid[:n] = tiles
        grid[n:] = tiles[-1]
        img = grid.reshape(rows, cols, 3, s, s).transpose(0, 3, 1, 4, 2).reshape(rows * s, -1, 3)
        return encode_image(np.ascontiguousarray(img), self.kind, self.param)

    def _decode_symbols(self, data: bytes, n: int, s: int) -> np.ndarray:
        """Entropy-decode the symbols of ``n`` tiles (``q`` kinds): int64 ``(n, 3, s, s)``."""
        count = n * 3 * s * s
        sym = decode_with_histogram(data, 1 << self.param, count, max_symbols=count)
        return sym.reshape(n, 3, s, s)

    def _from_symbols(self, sym: np.ndarray) -> np.ndarray:
        """Symbols (``q`` kinds) -> dequantised uint8 tiles; one vectorised pass."""
        return self._dequantize(med_reconstruct(sym, self.param) if self.kind == "q" else sym)

    def decode(self, data: bytes, n: int, patch_size: int) -> np.ndarray:
        """Inverse of :meth:`encode`: ``n`` tiles uint8 ``(n, 3, s, s)``.

        The caller bounds ``n`` and ``patch_size`` (they come from a validated header).

        Raises:
            BitstreamError: wrong length, malformed entropy or codec stream, or a mosaic
                of the wrong size.
        """
        s = patch_size
        if n < 1 or s < 1:
            raise InputError(f"need n >= 1 and patch_size >= 1, got {n}, {s}")
        data = as_bytes(data, "data must be bytes")
        count = n * 3 * s * s
        if self.kind == "raw":
            if len(data) != count:
                raise BitstreamError(
                    f"raw pixels: {len(data)} bytes, expected {count} for {n} tiles of {s}x{s}"
                )
            return np.frombuffer(data, dtype=np.uint8).reshape(n, 3, s, s).copy()
        if self.kind in ("q", "q-plain"):
            return self._from_symbols(self._decode_symbols(data, n, s))
        from semcom.codec.pillow import decode_image

        rows, cols = mosaic_shape(n)
        img = decode_image(data, self.kind, max_pixels=rows * cols * s * s)
        if tuple(img.shape) != (3, rows * s, cols * s):
            raise BitstreamError(
                f"{self.kind} mosaic is {tuple(img.shape[1:])}, expected "
                f"{(rows * s, cols * s)} for {n} tiles of {s}x{s}"
            )
        arr = img.numpy().reshape(3, rows, s, cols, s).transpose(1, 3, 0, 2, 4)
        return np.ascontiguousarray(arr.reshape(rows * cols, 3, s, s)[:n])


def parse_pixel_codec(spec: str | PixelCodec) -> PixelCodec:
    """Parse a pixel codec spec: ``"raw"``, ``"q4"``, ``"q4:plain"``, ``"jpeg:75"``,
    ``"webp:75"``, ``"avif:60"`` (a :class:`PixelCodec` is returned as is).

    Raises:
        InputError: malformed spec, bits outside 1..8, quality outside the format's range
            or a format this Pillow build lacks.
    """
    if isinstance(spec, PixelCodec):
        return spec
    if not isinstance(spec, str):
        raise InputError(f"pixel codec spec must be a string, got {type(spec).__name__}")
    m = _SPEC.fullmatch(spec.strip().lower())
    if m is None:
        raise InputError(
            f"bad pixel codec {spec!r}; expected raw, q<B>, q<B>:plain (1 <= B <= 8), "
            "jpeg:<Q>, webp:<Q> or avif:<Q>"
        )
    raw, bits, plain, fmt, quality = m.groups()
    if raw:
        return PixelCodec("raw", 8)
    if bits is not None:
        return PixelCodec("q-plain" if plain else "q", int(bits))
    return PixelCodec("jpeg" if fmt == "jpg" else fmt, int(quality))


def pixel_codec_from_id(codec_id: object, param: object) -> PixelCodec:
    """The codec a message header names (untrusted): BitstreamError when invalid."""
    names = {v: k for k, v in PIXEL_CODEC_IDS.items()}
    if not isinstance(codec_id, int) or codec_id not in names or not isinstance(param, int):
        raise BitstreamError(f"unknown pixel codec id {codec_id!r} / param {param!r}")
    try:
        return PixelCodec(names[codec_id], param)
    except InputError as e:
        raise BitstreamError(f"bad pixel codec in header: {e}") from None


def decode_groups(
    codec: PixelCodec,
    payloads: Sequence[bytes | None],
    bounds: Sequence[tuple[int, int]],
    patch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the groups of one message; a ``None`` payload is a lost group.

    Returns:
        ``(tiles, received)``: uint8 ``(k, 3, s, s)`` (zeros where lost) and bool ``(k,)``.
    """
    if len(payloads) != len(bounds):
        raise InputError(f"{len(payloads)} payloads for {len(bounds)} groups")
    k = bounds[-1][1] if bounds else 0
    s = patch_size
    tiles = np.zeros((k, 3, s, s), dtype=np.uint8)
    received = np.zeros(k, dtype=bool)
    entropy_coded = codec.kind in ("q", "q-plain")
    sym = np.zeros((k, 3, s, s), dtype=np.int64) if entropy_coded else None
    for payload, (a, b) in zip(payloads, bounds, strict=True):
        if payload is None:
            continue
        if sym is not None:  # reconstruct all groups in one pass below
            sym[a:b] = codec._decode_symbols(as_bytes(payload, "payload must be bytes"), b - a, s)
        else:
            tiles[a:b] = codec.decode(payload, b - a, s)
        received[a:b] = True
    if sym is not None and received.any():
        tiles[received] = codec._from_symbols(sym[received])
    return tiles, received
