"""VQ-VAE / GOS-VAE codec speed on this machine: encoder and decoder throughput, entropy
coding time per image, and the parameters at each end.

For each image size (default 64x64, the synthetic world's, and 256x512, a street-scene
size), median over ``--runs`` runs of a batch of ``--batch`` random images:

* ``encoder``: images/s of ``model.encode`` (analysis transform + nearest codebook entry:
  the transmitter's network);
* ``decoder``: images/s of ``model.decode`` (the receiver's network);
* per index coding (``prior``, ``adaptive``, ``context`` when the model has a fitted context
  model, ``fixed``): milliseconds per image to code and to decode the indices of the
  synthetic test images (their real statistics, not random ones), and bits per index;
* parameters: the transmitter's (encoder + codebook) and the receiver's (codebook +
  decoder + the index models), the paper's point being a light encoder at the edge.

    .venv/bin/python benchmarks/bench_vqvae.py --checkpoint runs/vq4/vqvae-synth.safetensors
    .venv/bin/python benchmarks/bench_vqvae.py --sizes 64x64 360x480 --threads 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import print_head, timed  # noqa: E402


def params(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--checkpoint", help="a trained vqvae checkpoint (default: an untrained r=4, K=512)"
    )
    p.add_argument("--sizes", nargs="+", default=["64x64", "256x512"], help="HxW image sizes")
    p.add_argument("--batch", type=int, default=16, help="images per timed network call")
    p.add_argument("--runs", type=int, default=5, help="timed runs (median)")
    p.add_argument("--coding-images", type=int, default=32, help="test images for coding times")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from semcom.data import SyntheticWorld, to_float
    from semcom.models import create_model, load_checkpoint
    from semcom.schemes import create_scheme

    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint)
    else:
        model = create_model("vqvae", r=4, K=512)
        model.fit_prior(torch.arange(512))
    model.eval()
    cfg = model.config
    print(f"model: r={cfg['r']} K={cfg['K']} widths={cfg['widths']} variant={cfg['variant']}")
    print(f"threads: {args.threads}, batch {args.batch}, median of {args.runs} runs\n")

    print_head(f"{'size':>9} {'encoder img/s':>14} {'decoder img/s':>14} {'grid':>8}")
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for size in args.sizes:
            h, w = (int(v) for v in size.lower().split("x"))
            x = torch.rand(args.batch, 3, h, w, generator=gen)
            idx, enc_s = timed(lambda x=x: model.encode(x), args.runs)
            _, dec_s = timed(lambda idx=idx: model.decode(idx), args.runs)
            grid = f"{idx.shape[-1]}x{idx.shape[-2]}"
            print(f"{size:>9} {args.batch / enc_s:>14.1f} {args.batch / dec_s:>14.1f} {grid:>8}")

    world = SyntheticWorld(size=64)
    images = world.generate(world.split_seeds("test", args.coding_images)).images
    grids = model.encode(to_float(images)).numpy()
    codings = ["prior", "adaptive", "fixed"]
    ctx = getattr(model, "context", None)
    if ctx is not None and ctx.fitted:
        codings.insert(2, "context")
    print(f"\nindex coding, {len(grids)} synthetic test images of 64x64 ({grids[0].size} indices)")
    print_head(f"{'coding':>9} {'code ms/img':>12} {'decode ms/img':>14} {'bits/index':>11}")
    for coding in codings:
        sch = create_scheme("vqvae", model=model, coding=coding)
        parts, code_s = timed(lambda sch=sch: [sch.encode_grid(g)[1] for g in grids], args.runs)
        bits = 8.0 * sum(len(b) for ps in parts for b in ps) / grids.size
        msgs = sch.compress_batch(images, 1)
        gh, gw = grids.shape[1:]

        def decode_all(sch=sch, msgs=msgs) -> list:
            return [sch._parse(m, ()) for m in msgs]

        out, dec_s = timed(decode_all, args.runs)
        assert all(
            np.array_equal(d.aux["indices"].numpy(), g) for d, g in zip(out, grids, strict=True)
        )
        n = len(grids)
        print(f"{coding:>9} {1e3 * code_s / n:>12.2f} {1e3 * dec_s / n:>14.2f} {bits:>11.3f}")
    print("  (decode: the receiver's parse of a whole message, header and checks included)")

    tx = params(model.encoder) + model.quantizer.codebook.numel()
    rx = params(model.decoder) + model.quantizer.codebook.numel() + model.prior.probs.numel()
    rx_ctx = params(ctx)
    print(
        f"\nparameters: transmitter (encoder + codebook) {tx:,}; receiver (codebook + decoder "
        f"+ prior) {rx:,}" + (f" + context model {rx_ctx:,} (both ends)" if rx_ctx else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
