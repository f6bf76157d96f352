"""Rate: bits per pixel from a byte count."""

from __future__ import annotations

from semcom.errors import InputError


def bits_per_pixel(n_bytes: float, h: int, w: int) -> float:
    """``8 * n_bytes / (h * w)``: bits per pixel of an ``h x w`` image sent in ``n_bytes``.

    ``n_bytes`` may be a mean over images (a float); it must be finite and ``>= 0``.
    """
    if h < 1 or w < 1:
        raise InputError(f"image size must be positive, got {h}x{w}")
    n = float(n_bytes)
    if not n >= 0 or n == float("inf"):
        raise InputError(f"n_bytes must be finite and >= 0, got {n_bytes!r}")
    return 8.0 * n / (h * w)
