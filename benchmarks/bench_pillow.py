"""Time the Pillow codecs: one encode, one matched-bytes search and one decode per format.

Usage: ``python benchmarks/bench_pillow.py [--size 64] [--repeat 5] [--formats jpeg,webp]``.
Prints, per format, the file size at mid quality, milliseconds per encode /
encode_to_budget (matching 0.7 x that size, so the search has work to do) / decode, the
number of full-size encodings the search made (``encodes``; images above
``PREVIEW_PIXELS`` get a preview-guided search) and the peak resident memory so far.
Large sizes (e.g. ``--size 8000 --repeat 1``) show what a camera photo costs.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from semcom.codec import pillow as pc


def make_image(size: int, seed: int = 0) -> np.ndarray:
    """A smooth image with an edge and mild noise, uint8 ``(size, size, 3)`` (built row
    block by row block in float32, so an 8000x8000 image costs little beyond its 192 MB)."""
    rng = np.random.default_rng(seed)
    out = np.empty((size, size, 3), dtype=np.uint8)
    x = (np.arange(size, dtype=np.float32) / size)[None, :]
    step = 512
    for top in range(0, size, step):
        y = (np.arange(top, min(size, top + step), dtype=np.float32) / size)[:, None]
        a = np.stack(
            np.broadcast_arrays(np.sin(6 * x + 1) * 0.5 + 0.5, np.cos(4 * y) * 0.5 + 0.5, x * y),
            -1,
        ).astype(np.float32)
        rows = slice(max(top, size // 4) - top, max(0, min(top + step, size // 2) - top))
        a[rows, size // 4 : 3 * size // 4] = [0.9, 0.2, 0.1]
        a += rng.normal(0, 0.01, a.shape).astype(np.float32)
        out[top : top + step] = (np.clip(a, 0, 1) * 255).round()
    return out


def _ms(fn, repeat: int) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--formats", default=",".join(pc.available_formats()))
    args = ap.parse_args()
    img = make_image(args.size)
    print(f"{args.size}x{args.size}; formats here: {', '.join(pc.available_formats())}")
    print(
        f"{'fmt':6} {'q':>4} {'bytes':>9} {'enc ms':>9} {'budget ms':>10} {'encodes':>8}"
        f" {'dec ms':>8} {'peak MB':>8}"
    )
    for fmt in args.formats.split(","):
        lo, hi = pc.QUALITY_RANGES[fmt]
        q = (lo + hi) // 2
        data = pc.encode_image(img, fmt, q)
        enc = _ms(lambda f=fmt, q=q: pc.encode_image(img, f, q), args.repeat)
        target = int(len(data) * 0.7)
        found: list = []
        budget = _ms(
            lambda f=fmt, n=target, out=found: out.append(pc.encode_to_budget(img, f, n)),
            args.repeat,
        )
        n_enc = found[-1].encodes
        dec = _ms(lambda f=fmt, d=data: pc.decode_image(d, f, max_pixels=1 << 27), args.repeat)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{fmt:6} {q:4d} {len(data):9d} {enc:9.1f} {budget:10.1f} {n_enc!s:>8}"
            f" {dec:8.1f} {rss:8.0f}"
        )


if __name__ == "__main__":
    main()
