"""Entropy coding of integer symbols with constriction's range coder.

Three ways to agree on the model:

* **fixed prior** (:func:`encode_categorical`): encoder and decoder share the probability
  table(s), one table for all symbols or one per symbol;
* **adaptive** (:func:`encode_adaptive`): Krichevsky-Trofimov counts (start at 1/2, +1
  per symbol) updated after chunks of geometrically growing size, so no side information
  is sent;
* **histogram** (:func:`encode_with_histogram`): a quantised histogram (``round(sqrt(count))``
  per symbol) is sent first, then the symbols are coded with it; self-contained and
  within a fraction of a percent of ``n * H(empirical)`` for long sequences;
* **auto** (:func:`encode_auto`): whichever of histogram and adaptive is shorter, with a
  mode bit folded into the symbol count (short sequences favour adaptive).

The coded stream is the range coder's 32-bit words, little endian, with trailing zero
bytes dropped (the decoder reads missing bytes as zeros), so a stream never ends in a
zero byte. Decoders check that every byte was consumed and, in histogram mode, that the
decoded counts quantise to the histogram sent. Corrupted input raises :class:`BitstreamError` or
decodes to some other valid symbol sequence -- entropy coders cannot detect everything;
the container's CRC does. Memory is bounded by ``max_symbols`` and the input length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import constriction
import numpy as np

from semcom.codec.varint import Reader, as_bytes, encode_uvarint
from semcom.errors import BitstreamError, InputError

DEFAULT_MAX_SYMBOLS = 1 << 24
MAX_ALPHABET_SIZE = 1 << 20
ADAPTIVE_CHUNK_SHIFT = 4  # an adaptive chunk is 1/16 of the symbols coded before it
HISTOGRAM_CLASSES = 24  # bit lengths 0..23 of quantised counts (counts below 2**46)

_Categorical = constriction.stream.model.Categorical
_RangeEncoder = constriction.stream.queue.RangeEncoder
_RangeDecoder = constriction.stream.queue.RangeDecoder
_Uniform = constriction.stream.model.Uniform

T = TypeVar("T")


# --------------------------------------------------------------------------- validation


def _check_alphabet(alphabet_size: int) -> int:
    if isinstance(alphabet_size, bool) or not isinstance(alphabet_size, (int, np.integer)):
        raise InputError(f"alphabet_size must be an int, got {alphabet_size!r}")
    if not 1 <= alphabet_size <= MAX_ALPHABET_SIZE:
        raise InputError(f"alphabet_size must be in [1, {MAX_ALPHABET_SIZE}], got {alphabet_size}")
    return int(alphabet_size)


def _check_symbols(symbols: Any, alphabet_size: int) -> np.ndarray:
    arr = np.asarray(symbols)
    if arr.ndim != 1:
        raise InputError(f"symbols must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int32)
    if arr.dtype.kind not in "iu":
        raise InputError(f"symbols must be integers, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= alphabet_size:
        raise InputError(f"symbols must lie in [0, {alphabet_size}), got range [{lo}, {hi}]")
    return arr.astype(np.int32, copy=False)


def _check_probs(probs: Any) -> np.ndarray:
    arr = np.asarray(probs)
    if arr.dtype.kind not in "iuf":
        raise InputError(f"probs must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] < 1:
        raise InputError(f"probs must have shape (K,) or (n, K) with K >= 1, got {arr.shape}")
    if arr.shape[-1] > MAX_ALPHABET_SIZE:
        raise InputError(f"alphabet size {arr.shape[-1]} exceeds {MAX_ALPHABET_SIZE}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InputError("probs must be finite and non-negative")
    if arr.size and not np.all(arr.sum(axis=-1) > 0):
        raise InputError("every probability table must have a positive sum")
    return arr


def _check_count(n: Any, max_symbols: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"symbol count must be a non-negative int, got {n!r}")
    if n > max_symbols:
        raise BitstreamError(f"symbol count {n} exceeds the maximum {max_symbols}")
    return int(n)


# --------------------------------------------------------------------------- words <-> bytes


def _to_bytes(words: np.ndarray) -> bytes:
    return words.astype("<u4").tobytes().rstrip(b"\x00")


def _to_words(data: bytes) -> np.ndarray:
    data = as_bytes(data)
    if data and data[-1] == 0:
        raise BitstreamError("entropy-coded data: non-canonical (ends in a zero byte)")
    padded = bytes(data) + b"\x00" * (-len(data) % 4)
    return np.frombuffer(padded, dtype="<u4").astype(np.uint32)


def _guard(what: str, fn: Callable[[], T]) -> T:
    """Run a constriction call on untrusted data; any failure becomes a BitstreamError."""
    try:
        return fn()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BitstreamError:
        raise
    except BaseException as exc:  # constriction panics derive from BaseException
        raise BitstreamError(f"{what}: cannot decode ({type(exc).__name__}: {exc})") from None


def _decode(words: np.ndarray, what: str, body: Callable[[Any], np.ndarray]) -> np.ndarray:
    """``body(decoder)`` on a range decoder over ``words``, which must consume every word;
    any failure is a BitstreamError."""

    def run() -> np.ndarray:
        dec = _RangeDecoder(words)
        out = body(dec)
        if not dec.maybe_exhausted():
            raise BitstreamError(f"{what}: trailing data after the last symbol")
        return out

    return _guard(what, run)


def _model(weights: np.ndarray) -> Any:
    return _Categorical(weights, perfect=False)


# --------------------------------------------------------------------------- fixed prior


def encode_categorical(symbols: Any, probs: Any) -> bytes:
    """Code ``symbols`` with a fixed prior: ``probs`` shape ``(K,)`` shared or ``(n, K)``.

    Probabilities need not be normalised; zero-probability symbols stay codable (at a
    high cost) because the quantiser gives every symbol a non-zero share.
    """
    p = _check_probs(probs)
    sym = _check_symbols(symbols, p.shape[-1])
    if p.ndim == 2 and p.shape[0] != sym.size:
        raise InputError(f"probs has {p.shape[0]} rows for {sym.size} symbols")
    if p.shape[-1] == 1 or sym.size == 0:
        return b""
    enc = _RangeEncoder()
    if p.ndim == 1:
        enc.encode(sym, _model(p))
    else:
        enc.encode(sym, _Categorical(perfect=False), p)
    return _to_bytes(enc.get_compressed())


def decode_categorical(
    data: bytes, probs: Any, n: int, *, max_symbols: int = DEFAULT_MAX_SYMBOLS
) -> np.ndarray:
    """Inverse of :func:`encode_categorical`: ``n`` symbols (int64) from ``data``."""
    n = _check_count(n, max_symbols)
    p = _check_probs(probs)
    if p.ndim == 2 and p.shape[0] != n:
        raise InputError(f"probs has {p.shape[0]} rows for {n} symbols")
    what = "categorical stream"
    words = _to_words(data)
    if p.shape[-1] == 1 or n == 0:
        if data:
            raise BitstreamError(f"{what}: {len(data)} bytes where none were expected")
        return np.zeros(n, dtype=np.int64)

    def body(dec: Any) -> np.ndarray:
        if p.ndim == 1:
            return dec.decode(_model(p), n)
        return dec.decode(_Categorical(perfect=False), p)

    return _decode(words, what, body).astype(np.int64)


def decode_chunked(
    data: bytes,
    sizes: list[int],
    probs: Callable[[int, np.ndarray | None], np.ndarray],
    *,
    what: str = "chunked stream",
) -> np.ndarray:
    """Decode a stream of :func:`encode_categorical` whose per-symbol tables depend on the
    symbols decoded before (a context model): chunk ``i`` has ``sizes[i]`` symbols and the
    tables ``probs(i, previous_chunk)`` (shape ``(sizes[i], K)``; ``previous_chunk`` is
    chunk ``i - 1``'s symbols, ``None`` for the first). Returns every symbol (int64), in
    order; BitstreamError if the stream does not decode or has trailing data."""
    total = sum(int(n) for n in sizes)
    _check_count(total, DEFAULT_MAX_SYMBOLS)
    words = _to_words(data)

    def body(dec: Any) -> np.ndarray:
        out, prev = [], None
        for i, n in enumerate(sizes):
            p = _check_probs(probs(i, prev))
            if p.ndim != 2 or p.shape[0] != n:
                raise InputError(f"{what}: chunk {i} needs {n} probability rows, got {p.shape}")
            prev = np.asarray(dec.decode(_Categorical(perfect=False), p), dtype=np.int64)
            out.append(prev)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    return _decode(words, what, body).astype(np.int64)


def encode_grouped(symbols: Any, groups: Any, tables: Any) -> bytes:
    """Code ``symbols`` (``(n,)``) where symbol ``i`` has the table ``tables[groups[i]]``
    (``tables`` ``(G, K)``): symbols are coded group by group (groups ascending, each
    group's symbols in their order), so memory is ``O(n + G K)`` however long the
    sequence; the decoder (:func:`decode_grouped`) needs the same ``groups``."""
    t = _check_probs(tables)
    sym = _check_symbols(symbols, t.shape[-1])
    g = np.asarray(groups, dtype=np.int64).reshape(-1)
    if t.ndim != 2 or g.shape != sym.shape or (g.size and (g.min() < 0 or g.max() >= t.shape[0])):
        raise InputError("encode_grouped: groups must index the rows of tables, one per symbol")
    if sym.size == 0 or t.shape[-1] == 1:
        return b""
    order = np.argsort(g, kind="stable")
    enc = _RangeEncoder()
    bounds = np.flatnonzero(np.diff(g[order])) + 1
    for part in np.split(order, bounds):
        enc.encode(sym[part], _model(t[g[part[0]]]))
    return _to_bytes(enc.get_compressed())


def decode_grouped(
    data: bytes, groups: Any, tables: Any, *, what: str = "grouped stream"
) -> np.ndarray:
    """Inverse of :func:`encode_grouped`: ``len(groups)`` symbols (int64), in their order."""
    t = _check_probs(tables)
    g = np.asarray(groups, dtype=np.int64).reshape(-1)
    _check_count(g.size, DEFAULT_MAX_SYMBOLS)
    if t.ndim != 2 or (g.size and (g.min() < 0 or g.max() >= t.shape[0])):
        raise InputError("decode_grouped: groups must index the rows of tables")
    words = _to_words(data)
    if g.size == 0 or t.shape[-1] == 1:
        if data:
            raise BitstreamError(f"{what}: {len(data)} bytes where none were expected")
        return np.zeros(g.size, dtype=np.int64)
    order = np.argsort(g, kind="stable")
    bounds = np.flatnonzero(np.diff(g[order])) + 1

    def body(dec: Any) -> np.ndarray:
        out = np.empty(g.size, dtype=np.int64)
        for part in np.split(order, bounds):
            out[part] = dec.decode(_model(t[g[part[0]]]), part.size)
        return out

    return _decode(words, what, body)


# --------------------------------------------------------------------------- adaptive


def _chunks(n: int, k: int) -> Iterator[tuple[int, int]]:
    """Chunk boundaries: 1/16 of what was coded before, at least ``max(1, k / 256)``.

    The lower bound keeps the model rebuilds (each O(k)) cheap next to the coding.
    """
    pos = 0
    least = max(1, k >> 8)
    while pos < n:
        stop = min(n, pos + max(least, pos >> ADAPTIVE_CHUNK_SHIFT))
        yield pos, stop
        pos = stop


def _adaptive_encode_into(enc: Any, sym: np.ndarray, k: int) -> None:
    counts = np.ones(k, dtype=np.int64)  # doubled KT counts: 1/2 -> 1, +1 -> +2
    for start, stop in _chunks(sym.size, k):
        chunk = sym[start:stop]
        enc.encode(chunk, _model(counts.astype(np.float64)))
        counts += 2 * np.bincount(chunk, minlength=k)


def _adaptive_decode_from(dec: Any, n: int, k: int) -> np.ndarray:
    out = np.empty(n, dtype=np.int32)
    counts = np.ones(k, dtype=np.int64)
    for start, stop in _chunks(n, k):
        chunk = dec.decode(_model(counts.astype(np.float64)), stop - start)
        out[start:stop] = chunk
        counts += 2 * np.bincount(chunk, minlength=k)
    return out


def encode_adaptive(symbols: Any, alphabet_size: int) -> bytes:
    """Code ``symbols`` with an adaptive KT model (no side information)."""
    k = _check_alphabet(alphabet_size)
    sym = _check_symbols(symbols, k)
    if k == 1 or sym.size == 0:
        return b""
    enc = _RangeEncoder()
    _adaptive_encode_into(enc, sym, k)
    return _to_bytes(enc.get_compressed())


def decode_adaptive(
    data: bytes, alphabet_size: int, n: int, *, max_symbols: int = DEFAULT_MAX_SYMBOLS
) -> np.ndarray:
    """Inverse of :func:`encode_adaptive`: ``n`` symbols (int64) from ``data``."""
    k = _check_alphabet(alphabet_size)
    n = _check_count(n, max_symbols)
    what = "adaptive stream"
    words = _to_words(data)
    if k == 1 or n == 0:
        if data:
            raise BitstreamError(f"{what}: {len(data)} bytes where none were expected")
        return np.zeros(n, dtype=np.int64)
    return _decode(words, what, lambda dec: _adaptive_decode_from(dec, n, k)).astype(np.int64)


# --------------------------------------------------------------------------- histogram


def quantize_counts(counts: np.ndarray) -> np.ndarray:
    """``round(sqrt(c))`` in exact integer arithmetic (0 stays 0, 1 and 2 give 1).

    A count ``c`` is sent with a relative precision of about ``1 / sqrt(c)``, which
    costs about half the bits of the exact count for a rate loss of a fraction of a bit
    per distinct symbol.
    """
    c = np.asarray(counts, dtype=np.int64)
    v = np.floor(np.sqrt(c.astype(np.float64))).astype(np.int64)
    v -= v * v > c
    v += (v + 1) * (v + 1) <= c
    return v + (c - v * v > v)


def _histogram_weights(v: np.ndarray) -> np.ndarray:
    return (v.astype(np.float64)) ** 2


def _encode_histogram_body(enc: Any, sym: np.ndarray, k: int) -> None:
    """Quantised histogram (classes adaptively, mantissas uniformly), then the symbols."""
    counts = np.bincount(sym, minlength=k)
    v = quantize_counts(counts)
    cls = np.zeros(k, dtype=np.int32)
    nz = v > 0
    cls[nz] = np.frexp(v[nz].astype(np.float64))[1]  # exact bit length of v
    _adaptive_encode_into(enc, cls, HISTOGRAM_CLASSES)
    has_mantissa = cls >= 2
    if has_mantissa.any():
        sizes = (1 << (cls[has_mantissa] - 1)).astype(np.int32)
        mant = (v[has_mantissa] - sizes).astype(np.int32)
        enc.encode(mant, _Uniform(), sizes)
    present = np.flatnonzero(nz)
    if present.size >= 2:
        rank = np.zeros(k, dtype=np.int32)
        rank[present] = np.arange(present.size, dtype=np.int32)
        enc.encode(rank[sym], _model(_histogram_weights(v[present])))


def _decode_histogram_body(dec: Any, n: int, k: int, what: str) -> np.ndarray:
    cls = _adaptive_decode_from(dec, k, HISTOGRAM_CLASSES).astype(np.int64)
    v = np.where(cls > 0, np.left_shift(1, np.maximum(cls - 1, 0)), 0).astype(np.int64)
    has_mantissa = cls >= 2
    if has_mantissa.any():
        sizes = v[has_mantissa].astype(np.int32)
        v[has_mantissa] += dec.decode(_Uniform(), sizes)
    present = np.flatnonzero(v)
    vp = v[present]
    lo, hi = int(np.sum(vp * vp - vp + 1)), int(np.sum(vp * vp + vp))
    if not lo <= n <= hi:
        raise BitstreamError(f"{what}: histogram does not fit {n} symbols")
    if present.size == 1:
        return np.full(n, present[0], dtype=np.int64)
    if present.size == 0:
        return np.zeros(0, dtype=np.int64)
    ranks = dec.decode(_model(_histogram_weights(vp)), n)
    if not np.array_equal(quantize_counts(np.bincount(ranks, minlength=vp.size)), vp):
        raise BitstreamError(f"{what}: decoded symbols do not match the histogram")
    return present[ranks]


def _encode_prefixed(prefix: int, body: Callable[[Any], None]) -> bytes:
    enc = _RangeEncoder()
    body(enc)
    return encode_uvarint(prefix) + _to_bytes(enc.get_compressed())


def _read_prefix(data: bytes, what: str) -> tuple[int, np.ndarray]:
    r = Reader(as_bytes(data), what=what)
    prefix = r.uvarint()
    return prefix, _to_words(r.data[r.pos :])


def _check_expected(n: int, expected: int | None, max_symbols: int, what: str) -> int:
    if n > max_symbols:
        raise BitstreamError(f"{what}: {n} symbols exceed the maximum {max_symbols}")
    if expected is not None and _check_count(expected, max_symbols) != n:
        raise BitstreamError(f"{what}: stream holds {n} symbols, expected {expected}")
    return n


def encode_with_histogram(symbols: Any, alphabet_size: int) -> bytes:
    """Self-contained static coding: ``n``, a quantised histogram, then the symbols.

    Layout: ``n`` as a varint, then one range-coded stream holding the bit lengths of
    ``round(sqrt(count))`` per symbol (adaptive model), their mantissas (uniform), and
    the symbols coded with probabilities proportional to ``round(sqrt(count))**2``.
    """
    k = _check_alphabet(alphabet_size)
    sym = _check_symbols(symbols, k)
    if k == 1:
        return encode_uvarint(sym.size)
    return _encode_prefixed(sym.size, lambda enc: _encode_histogram_body(enc, sym, k))


def decode_with_histogram(
    data: bytes, alphabet_size: int, n: int | None = None, *, max_symbols: int = DEFAULT_MAX_SYMBOLS
) -> np.ndarray:
    """Inverse of :func:`encode_with_histogram` (int64). ``n``, if given, must match."""
    return _decode_counted(data, alphabet_size, n, max_symbols, auto=False)


# --------------------------------------------------------------------------- auto


def encode_auto(symbols: Any, alphabet_size: int) -> bytes:
    """The shorter of histogram and adaptive coding, self-contained (``n`` included).

    Layout: varint ``2 * n + mode`` (mode 0 = histogram, 1 = adaptive), then the
    range-coded body of that mode.
    """
    k = _check_alphabet(alphabet_size)
    sym = _check_symbols(symbols, k)
    n = sym.size
    if k == 1 or n == 0:
        return encode_uvarint(2 * n)
    hist = _encode_prefixed(2 * n, lambda enc: _encode_histogram_body(enc, sym, k))
    adapt = _encode_prefixed(2 * n + 1, lambda enc: _adaptive_encode_into(enc, sym, k))
    return hist if len(hist) <= len(adapt) else adapt


def decode_auto(
    data: bytes, alphabet_size: int, n: int | None = None, *, max_symbols: int = DEFAULT_MAX_SYMBOLS
) -> np.ndarray:
    """Inverse of :func:`encode_auto` (int64). ``n``, if given, must match."""
    return _decode_counted(data, alphabet_size, n, max_symbols, auto=True)


def _decode_counted(
    data: bytes, alphabet_size: int, n: int | None, max_symbols: int, *, auto: bool
) -> np.ndarray:
    """Decode a self-contained stream: varint prefix (the count, with the mode bit if
    ``auto``), then a histogram-mode body (or, ``auto`` with mode 1, an adaptive one)."""
    k = _check_alphabet(alphabet_size)
    what = "auto stream" if auto else "histogram stream"
    prefix, words = _read_prefix(data, what)
    total = _check_expected(prefix >> 1 if auto else prefix, n, max_symbols, what)
    adaptive = auto and bool(prefix & 1)
    if k == 1 or (auto and total == 0):
        if auto and (words.size or adaptive):
            raise BitstreamError(f"{what}: unexpected bytes for an empty or 1-symbol stream")
        if words.size:
            raise BitstreamError(f"{what}: trailing bytes after the symbol count")
        return np.zeros(total, dtype=np.int64)
    if adaptive:
        out = _decode(words, what, lambda dec: _adaptive_decode_from(dec, total, k))
        return out.astype(np.int64)
    return _decode(words, what, lambda dec: _decode_histogram_body(dec, total, k, what))


# --------------------------------------------------------------------------- helpers


def empirical_entropy_bits(symbols: Any, alphabet_size: int) -> float:
    """``n * H(p)`` in bits, ``p`` the empirical distribution of ``symbols``."""
    k = _check_alphabet(alphabet_size)
    sym = _check_symbols(symbols, k)
    if sym.size == 0:
        return 0.0
    c = np.bincount(sym, minlength=k)
    c = c[c > 0].astype(np.float64)
    return float(np.sum(c * np.log2(sym.size / c)))
