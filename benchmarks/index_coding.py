"""Bytes per message and bits per index of each VQ-VAE index coding, on synthetic test images.

For each checkpoint: the empirical (zeroth-order) index entropy, log2 K, the codes in use,
and, per coding (fixed, prior, adaptive, context when fitted, auto), the mean message size
(header included) and the bits per index of the index sections alone; also the
transmitter's parameters (encoder + codebook).

    .venv/bin/python benchmarks/index_coding.py runs/vq4/ctx.safetensors runs/gos4/ctx.safetensors
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("checkpoints", nargs="+", help="vqvae checkpoints (or zoo names)")
    p.add_argument("--n-images", type=int, default=256, help="synthetic test images")
    args = p.parse_args(argv)

    from semcom.codec.container import unpack
    from semcom.data import to_float
    from semcom.experiments.sweep import synthetic_evalset
    from semcom.models.zoo import load_model
    from semcom.schemes import create_scheme

    ev = synthetic_evalset(args.n_images, split="test")
    for spec in args.checkpoints:
        m = load_model(spec)
        idx = m.encode(to_float(ev.images))
        st = m.codebook_usage(idx)
        n = idx[0].numel()
        tx = sum(p.numel() for p in m.encoder.parameters()) + m.quantizer.codebook.numel()
        print(
            f"\n{spec}: r={m.r} K={m.num_codes}, {n} indices per image, codes used "
            f"{st['codes_used']:.0f}, entropy {st['entropy_bits']:.3f} bits (log2 K "
            f"{st['log2_k']:.0f}), transmitter params {tx:,}"
        )
        codings = ["fixed", "prior", "adaptive"]
        ctx = getattr(m, "context", None)
        codings += (["context"] if ctx is not None and ctx.fitted else []) + ["auto"]
        for c in codings:
            msgs = create_scheme("vqvae", model=m, coding=c).compress_batch(ev.images, 1)
            sec = np.mean([sum(len(v) for v in unpack(x).sections.values()) for x in msgs])
            size = np.mean([len(x) for x in msgs])
            print(f"  {c:>9}: {size:8.1f} B per message, {8 * sec / n:6.3f} bits per index")
    return 0


if __name__ == "__main__":
    sys.exit(main())
