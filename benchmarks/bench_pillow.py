"""Time the Pillow codecs: one encode, one matched-bytes search and one decode per format.

Usage: ``python benchmarks/bench_pillow.py [--size 64] [--repeat 5]``. Prints, per format,
the file size at mid quality and milliseconds per encode / encode_to_budget (matching that
size) / decode.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from semcom.codec import pillow as pc


def make_image(size: int, seed: int = 0) -> np.ndarray:
    """A smooth image with an edge and mild noise, uint8 ``(size, size, 3)``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    a = np.stack([np.sin(6 * x + 1) * 0.5 + 0.5, np.cos(4 * y) * 0.5 + 0.5, x * y], -1)
    a[size // 4 : size // 2, size // 4 : 3 * size // 4] = [0.9, 0.2, 0.1]
    a += rng.normal(0, 0.01, a.shape)
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


def _ms(fn, repeat: int) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    img = make_image(args.size)
    print(f"{args.size}x{args.size}; formats here: {', '.join(pc.available_formats())}")
    print(f"{'fmt':6} {'q':>4} {'bytes':>7} {'enc ms':>8} {'budget ms':>10} {'dec ms':>8}")
    for fmt in pc.available_formats():
        lo, hi = pc.QUALITY_RANGES[fmt]
        q = (lo + hi) // 2
        data = pc.encode_image(img, fmt, q)
        enc = _ms(lambda f=fmt, q=q: pc.encode_image(img, f, q), args.repeat)
        budget = _ms(lambda f=fmt, n=len(data): pc.encode_to_budget(img, f, n), args.repeat)
        dec = _ms(lambda f=fmt, d=data: pc.decode_image(d, f), args.repeat)
        print(f"{fmt:6} {q:4d} {len(data):7d} {enc:8.2f} {budget:10.2f} {dec:8.2f}")


if __name__ == "__main__":
    main()
