"""Classical image codecs (JPEG, WebP, AVIF) through Pillow, with a matched-bytes search.

Images are ``uint8`` RGB: a torch tensor ``(3, H, W)`` or a numpy array ``(H, W, 3)`` in,
a torch tensor ``uint8 (3, H, W)`` out.

Encoder settings (fixed, so that a quality number always means the same bytes):

* **JPEG** -- quality ``1..95``, chroma subsampling 4:2:0, baseline (not progressive),
  optimised Huffman tables. The 18-byte JFIF ``APP0`` segment Pillow writes is removed:
  it carries only a version and a pixel density, and decoders (libjpeg) identify the
  colour space from the three component ids without it.
* **WebP** -- lossy, quality ``0..100``, ``method=6`` (slowest, smallest files; still
  milliseconds at 64x64). WebP lossy is always 4:2:0.
* **AVIF** -- Pillow's built-in plugin (libavif; encoder aom here), quality ``0..100``,
  ``speed=6`` (libavif's default: ~6x faster than speed 4 for ~15% more bytes at 256x256),
  4:2:0, full range, one encoder thread (deterministic and polite on shared machines).

No metadata is written (no EXIF, ICC profile or XMP). The byte strings returned are the
whole codec *file* (its own container: JPEG markers, RIFF, ISOBMFF boxes -- the AVIF boxes
alone are ~270 bytes). A semcom message adds its own header on top; a caller matching a
total message size subtracts that overhead from ``max_bytes`` before calling
:func:`encode_to_budget`.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError, features

from semcom.codec.varint import as_bytes
from semcom.errors import BitstreamError, InputError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ENCODER_OPTIONS",
    "FORMATS",
    "QUALITY_RANGES",
    "Encoded",
    "available_formats",
    "decode_image",
    "encode_image",
    "encode_to_budget",
    "quality_range",
]

#: The formats this module knows (whether this Pillow build has them: :func:`available_formats`).
FORMATS: tuple[str, ...] = ("jpeg", "webp", "avif")

#: Inclusive quality range per format.
QUALITY_RANGES: dict[str, tuple[int, int]] = {"jpeg": (1, 95), "webp": (0, 100), "avif": (0, 100)}

#: Fixed keyword arguments given to ``PIL.Image.save`` besides ``quality``.
ENCODER_OPTIONS: dict[str, dict[str, Any]] = {
    "jpeg": {"subsampling": "4:2:0", "optimize": True, "progressive": False},
    "webp": {"method": 6, "lossless": False, "exact": False},
    "avif": {"speed": 6, "subsampling": "4:2:0", "range": "full", "max_threads": 1},
}

#: Default cap on the declared pixel count of a decoded image (8K UHD is 33.2 M pixels).
DEFAULT_MAX_PIXELS = 1 << 25

_PIL_NAME = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
_FEATURE = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}
_ALIASES = {"jpg": "jpeg"}
_JFIF_APP0_LEN = 18  # FFE0 marker (2) + length field value 16


@dataclass(frozen=True)
class Encoded:
    """Result of :func:`encode_to_budget`.

    ``data``: the codec file; ``quality``: the quality it was encoded at; ``fits``: whether
    ``len(data) <= max_bytes`` (False only when even the lowest quality was too large);
    ``encodes``: how many full-size encodings the search made (previews not counted).
    """

    data: bytes
    quality: int
    fits: bool
    encodes: int = 1

    @property
    def n_bytes(self) -> int:
        """``len(data)``."""
        return len(self.data)


def _normalise_fmt(fmt: str) -> str:
    if not isinstance(fmt, str):
        raise InputError(f"codec format must be a string, got {type(fmt).__name__}")
    name = _ALIASES.get(fmt.lower(), fmt.lower())
    if name not in FORMATS:
        raise InputError(f"unknown codec format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return name


def _check_available(fmt: str) -> None:
    if not features.check(_FEATURE[fmt]):
        raise InputError(f"this Pillow build has no {fmt} support ({_FEATURE[fmt]!r} feature)")


def available_formats() -> tuple[str, ...]:
    """The formats of :data:`FORMATS` this Pillow build can both encode and decode."""
    return tuple(f for f in FORMATS if features.check(_FEATURE[f]))


def quality_range(fmt: str) -> tuple[int, int]:
    """Inclusive ``(lowest, highest)`` quality of ``fmt``."""
    return QUALITY_RANGES[_normalise_fmt(fmt)]


def _to_hwc(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """uint8 torch ``(3, H, W)`` or numpy ``(H, W, 3)`` -> contiguous numpy uint8 ``(H, W, 3)``."""
    if isinstance(img, torch.Tensor):
        if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[0] != 3:
            raise InputError(
                f"expected a uint8 torch tensor (3, H, W), got {img.dtype} {tuple(img.shape)}"
            )
        arr = img.detach().cpu().permute(1, 2, 0).numpy()
    elif isinstance(img, np.ndarray):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise InputError(f"expected a uint8 numpy array (H, W, 3), got {img.dtype} {img.shape}")
        arr = img
    else:
        raise InputError(f"expected a torch tensor or numpy array, got {type(img).__name__}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"image has no pixels: {arr.shape[0]}x{arr.shape[1]}")
    return np.ascontiguousarray(arr)


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_quality(fmt: str, quality: int) -> int:
    lo, hi = QUALITY_RANGES[fmt]
    if not _is_int(quality):
        raise InputError(f"{fmt} quality must be an int, got {type(quality).__name__}")
    if not lo <= int(quality) <= hi:
        raise InputError(f"{fmt} quality must be in [{lo}, {hi}], got {quality}")
    return int(quality)


def _strip_jfif(data: bytes) -> bytes:
    """Remove the JFIF APP0 segment right after SOI (if it is there)."""
    if data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\x00":
        seg_len = struct.unpack(">H", data[4:6])[0]
        return data[:2] + data[4 + seg_len :]
    return data


def _encode_pil(pil: Image.Image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    try:
        pil.save(
            buf,
            format=_PIL_NAME[fmt],
            quality=quality,
            exif=b"",
            icc_profile=None,
            **ENCODER_OPTIONS[fmt],
        )
    except (OSError, ValueError) as e:  # e.g. larger than the format allows
        raise InputError(f"{fmt} encoder refused a {pil.width}x{pil.height} image: {e}") from None
    data = buf.getvalue()
    return _strip_jfif(data) if fmt == "jpeg" else data


def encode_image(img: torch.Tensor | np.ndarray, fmt: str, quality: int) -> bytes:
    """Encode one RGB image with a fixed-setting codec.

    Args:
        img: ``uint8`` torch tensor ``(3, H, W)`` or numpy array ``(H, W, 3)``.
        fmt: ``"jpeg"`` (``"jpg"``), ``"webp"`` or ``"avif"``.
        quality: in :data:`QUALITY_RANGES` for ``fmt`` (higher = more bytes, better image).

    Returns:
        The codec file (no metadata). Raises :class:`InputError` on bad arguments or a
        format missing from this Pillow build.
    """
    fmt = _normalise_fmt(fmt)
    _check_available(fmt)
    q = _check_quality(fmt, quality)
    return _encode_pil(Image.fromarray(_to_hwc(img), mode="RGB"), fmt, q)


#: Images with more pixels than this get their quality guessed on a preview first.
PREVIEW_PIXELS = 1 << 18


def _search(fits: Any, lo: int, hi: int) -> tuple[int, bool]:
    """``(q, fits(q))``: the highest ``q`` in ``[lo, hi]`` with ``fits(q)`` (by bisection,
    which assumes nothing beyond the bracket it keeps: ``fits(lo)`` and ``not fits(hi)``),
    or ``(lo, False)`` when even ``lo`` does not fit."""
    if not fits(lo):
        return lo, False
    if fits(hi):
        return hi, True
    while hi - lo > 1:  # invariant: fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo, True


class _Preview:
    """A downsampled copy of a large image whose file sizes, scaled by a measured ratio,
    predict the full-size ones: guesses a quality for a byte budget in cheap encodings."""

    def __init__(self, pil: Image.Image, fmt: str) -> None:
        factor = math.sqrt(pil.width * pil.height / PREVIEW_PIXELS)
        size = (max(8, round(pil.width / factor)), max(8, round(pil.height / factor)))
        self.small = pil.resize(size, Image.Resampling.BOX)
        self.fmt = fmt
        self.ratio = (pil.width * pil.height) / (size[0] * size[1])
        self.sizes: dict[int, int] = {}

    def size(self, q: int) -> int:
        if q not in self.sizes:
            self.sizes[q] = len(_encode_pil(self.small, self.fmt, q))
        return self.sizes[q]

    def calibrate(self, q: int, full_size: int) -> None:
        """Use the full-size file of quality ``q`` to correct the size ratio."""
        self.ratio = full_size / max(1, self.size(q))

    def guess(self, max_bytes: int, lo: int, hi: int) -> int:
        budget = max_bytes / self.ratio
        return _search(lambda q: self.size(q) <= budget, lo, hi)[0]


def encode_to_budget(
    img: torch.Tensor | np.ndarray,
    fmt: str,
    max_bytes: int,
    min_quality: int | None = None,
    max_quality: int | None = None,
) -> Encoded:
    """Matched-bytes encoding: the highest quality whose file fits in ``max_bytes``.

    Search over the integer quality in ``[min_quality, max_quality]`` (defaults: the
    format's range). The result ``q`` always satisfies ``len(encode(q)) <= max_bytes``
    and, when ``q < max_quality``, ``len(encode(q + 1)) > max_bytes`` -- checked by actual
    encodings, so this holds even where file size is not monotonic in quality. If even
    ``min_quality`` does not fit, the ``min_quality`` encoding is returned with
    ``fits=False``. ``max_bytes`` counts the codec file only (see the module docstring);
    any int is accepted (``<= 0`` never fits).

    Number of full-size encodings: about ``log2(range) + 2`` (9 for JPEG) for images up
    to :data:`PREVIEW_PIXELS`; above that the quality is first guessed on a preview of
    that many pixels and the search interpolates from the guess (typically 3 to 5 full
    encodings, never more than about ``2 log2(range) + 2``). ``Encoded.encodes`` says how
    many were made.

    Args:
        img: ``uint8`` torch ``(3, H, W)`` or numpy ``(H, W, 3)``.
        fmt: ``"jpeg"``, ``"webp"`` or ``"avif"``.
        max_bytes: the byte budget for the codec file.

    Returns:
        :class:`Encoded` ``(data, quality, fits, encodes)``.
    """
    fmt = _normalise_fmt(fmt)
    _check_available(fmt)
    lo_q, hi_q = QUALITY_RANGES[fmt]
    lo = _check_quality(fmt, lo_q if min_quality is None else min_quality)
    hi = _check_quality(fmt, hi_q if max_quality is None else max_quality)
    if lo > hi:
        raise InputError(f"min_quality {lo} > max_quality {hi}")
    if not _is_int(max_bytes):
        raise InputError(f"max_bytes must be an int, got {type(max_bytes).__name__}")
    pil = Image.fromarray(_to_hwc(img), mode="RGB")
    cache: dict[int, bytes] = {}

    def enc(q: int) -> bytes:
        if q not in cache:
            cache[q] = _encode_pil(pil, fmt, q)
        return cache[q]

    if pil.width * pil.height > PREVIEW_PIXELS and hi - lo > 2:
        q, ok = _interpolation_search(enc, _Preview(pil, fmt), max_bytes, lo, hi)
    else:
        q, ok = _search(lambda q: len(enc(q)) <= max_bytes, lo, hi)
    return Encoded(enc(q), q, ok, len(cache))


def _interpolation_search(
    enc: Any, preview: _Preview, max_bytes: int, lo: int, hi: int
) -> tuple[int, bool]:
    """:func:`_search`'s answer for a large image in fewer full-size encodings.

    Keeps the bracket ``a`` (highest quality known to fit) < ``b`` (lowest known not to);
    the next quality is interpolated in log file size between them, or, while one side
    is unknown, guessed on the preview calibrated at the nearest known quality. When the
    same end of the bracket moves twice in a row, the step is a bisection (so the number
    of encodings stays within about twice bisection's). Typically 4 to 6 encodings.
    """
    a: int | None = None  # fits
    b: int | None = None  # does not fit
    moved: list[str] = []
    q = preview.guess(max_bytes, lo, hi)
    while True:
        size = len(enc(q))
        if size <= max_bytes:
            a = q
            moved.append("a")
            if q == hi:
                return hi, True
        else:
            b = q
            moved.append("b")
            if q == lo:
                return lo, False
        if a is not None and b is not None and b - a <= 1:
            return a, True
        preview.calibrate(q, size)
        if a is not None and b is not None:
            if moved[-2:] in (["a", "a"], ["b", "b"]):
                q = (a + b) // 2
            else:
                la, lb = math.log(len(enc(a))), math.log(len(enc(b)))
                t = (math.log(max_bytes) - la) / (lb - la) if lb > la else 0.5
                q = a + round(t * (b - a))
            q = min(max(q, a + 1), b - 1)
        elif a is not None:  # everything tried fits: go up
            q = min(hi, max(a + 1, preview.guess(max_bytes, a, hi)))
        else:  # nothing tried fits: go down
            assert b is not None
            q = max(lo, min(b - 1, preview.guess(max_bytes, lo, b)))


# ---------------------------------------------------------------------------- decoding


def _webp_declared_size(data: bytes) -> tuple[int, int]:
    """Canvas ``(width, height)`` from a WebP header, without decoding anything."""
    if len(data) < 30:
        raise BitstreamError(f"webp: {len(data)} bytes is too short for a WebP header")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise BitstreamError("webp: bad VP8 start code at offset 23")
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise BitstreamError("webp: bad VP8L signature at offset 20")
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    raise BitstreamError(f"webp: unknown first chunk {chunk!r} at offset 12")


def _check_container(data: bytes, fmt: str, max_pixels: int) -> None:
    """Cheap checks on the raw bytes before Pillow sees them (magic, length, declared size)."""
    if fmt == "jpeg":
        if not data.startswith(b"\xff\xd8\xff"):
            raise BitstreamError("jpeg: missing SOI marker at offset 0")
        if not data.endswith(b"\xff\xd9"):
            raise BitstreamError(f"jpeg: no EOI marker at the end ({len(data)} bytes): truncated")
    elif fmt == "webp":
        if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
            raise BitstreamError("webp: missing RIFF/WEBP signature at offset 0")
        riff_len = int.from_bytes(data[4:8], "little")
        if riff_len + 8 != len(data):
            raise BitstreamError(f"webp: RIFF size says {riff_len + 8} bytes, got {len(data)}")
        w, h = _webp_declared_size(data)
        if w * h > max_pixels:
            raise BitstreamError(f"webp: declared {w}x{h} exceeds max_pixels={max_pixels}")
    else:  # avif
        if len(data) < 12 or data[4:8] != b"ftyp":
            raise BitstreamError("avif: missing ftyp box at offset 4")


def decode_image(data: bytes, fmt: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Decode a codec file produced by :func:`encode_image` (or any single-frame RGB file).

    The declared image size is read from the headers and checked against ``max_pixels``
    *before* any pixel buffer is allocated (WebP: from the raw header, since libwebp
    allocates the canvas when its decoder is created; JPEG/AVIF: from ``Image.open``, which
    only parses headers). Pillow's own guard also applies, so the effective cap is
    ``min(max_pixels, 2 * PIL.Image.MAX_IMAGE_PIXELS)``. A JPEG must end with its EOI
    marker and a WebP RIFF size must match ``len(data)``, so truncation is caught even
    if ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is set.

    Args:
        data: the codec file.
        fmt: the format it must be (``"jpeg"``, ``"webp"``, ``"avif"``); a file of another
            format is rejected.
        max_pixels: the largest ``H * W`` accepted.

    Returns:
        ``uint8`` torch tensor ``(3, H, W)`` (a grayscale JPEG is replicated to 3 channels).

    Raises:
        BitstreamError: garbage, truncated, wrong format, too large, animated, or an
            unsupported mode -- never a Pillow exception.
    """
    fmt = _normalise_fmt(fmt)
    _check_available(fmt)
    data = as_bytes(data, "data must be bytes")
    if not _is_int(max_pixels) or max_pixels < 1:
        raise InputError(f"max_pixels must be a positive int, got {max_pixels!r}")
    _check_container(data, fmt, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[_PIL_NAME[fmt]])
        with im:
            if im.format != _PIL_NAME[fmt]:
                raise BitstreamError(f"{fmt}: Pillow identified the data as {im.format}")
            w, h = im.size
            if w < 1 or h < 1:
                raise BitstreamError(f"{fmt}: declared size {w}x{h} has no pixels")
            if w * h > max_pixels:
                raise BitstreamError(f"{fmt}: declared {w}x{h} exceeds max_pixels={max_pixels}")
            if getattr(im, "n_frames", 1) != 1:
                raise BitstreamError(f"{fmt}: {im.n_frames} frames, expected a single image")
            if im.mode not in ("RGB", "L"):
                raise BitstreamError(f"{fmt}: decoded mode {im.mode!r}, expected RGB")
            im.load()
            rgb = im if im.mode == "RGB" else im.convert("RGB")
            arr = np.asarray(rgb)
    except BitstreamError:
        raise
    except UnidentifiedImageError:
        raise BitstreamError(f"{fmt}: {len(data)} bytes are not a readable {fmt} file") from None
    except Exception as e:  # any Pillow/codec failure on untrusted bytes
        why = f"{type(e).__name__}: {e}"
        raise BitstreamError(f"{fmt}: cannot decode {len(data)} bytes ({why})") from None
    if arr.shape != (h, w, 3) or arr.dtype != np.uint8:
        raise BitstreamError(f"{fmt}: decoded {arr.dtype} {arr.shape}, expected ({h}, {w}, 3)")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
