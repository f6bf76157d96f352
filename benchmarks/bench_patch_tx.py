"""Benchmark the patch-transmission transmitter (semcom.schemes.patch): images per second.

    python benchmarks/bench_patch_tx.py [--batch 256] [--repeats 5] [--rates 0.25,0.5,1.0]
                                        [--pixels raw,q4,q6,webp:75,jpeg:75] [--threads N]

On a batch of 64x64 synthetic test images, the transmitter's three stages are timed
separately (median of ``--repeats`` runs each):

* **ViT**: one forward of the batch with ``return_attention="mean"`` (patch scores);
* **selection**: the rate rule on the scores (top ``k = round(r * P)`` per image);
* **coding**: per image, positions + pixel sections + container (one pixel codec).

Throughput = batch / (ViT + selection + coding). The ViT is the zoo's ``vit-synth`` when
the zoo has it, else a random-weight ``vit-edge-synth`` (vit-synth's architecture; the
output says which -- attention from random weights selects different patches, so byte
counts differ a little from the trained model's). Mean message bytes (whole container)
are printed per pixel codec and rate.
"""

from __future__ import annotations

import argparse

import torch
from _timing import print_head, timed

from semcom.data.synthetic import SyntheticWorld, split_seeds
from semcom.patches import Rate
from semcom.schemes.patch import PatchScheme


def load_vit() -> tuple[torch.nn.Module, str]:
    """The zoo ViT if present, else a random-weight one of the synthetic architecture."""
    from semcom.models.zoo import list_zoo, load_pretrained

    if "vit-synth" in list_zoo():
        return load_pretrained("vit-synth").eval(), "zoo vit-synth (trained)"
    from semcom.models.vit import create_vit

    torch.manual_seed(0)
    vit = create_vit("vit-edge-synth").eval()  # the architecture of the zoo's vit-synth
    return vit, "random-weight vit-edge-synth (no vit-synth in the zoo)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rates", default="0.25,0.5,1.0")
    ap.add_argument("--pixels", default="raw,q4,q6,q8,webp:75,jpeg:75")
    ap.add_argument("--group-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--device", default="cpu", help="torch device of the ViT (cpu, cuda)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    vit, vit_desc = load_vit()
    images = SyntheticWorld(size=64).generate(split_seeds("test", args.batch)).images
    rates = [float(r) for r in args.rates.split(",")]
    print(f"ViT: {vit_desc}; img_size {vit.img_size}, patch {vit.patch_size}")
    print(
        f"batch {args.batch} x 3x64x64 uint8, device {args.device}, "
        f"torch threads {torch.get_num_threads()}, "
        f"median of {args.repeats} runs, group size {args.group_size}"
    )

    device = torch.device(args.device)
    base = PatchScheme(
        selection="mean", vit=vit, decoder=None, group_size=args.group_size, device=device
    )
    base.scores(images[:8])  # warm-up (lazy init, CUDA context)
    scores, t_vit = timed(lambda: base.scores(images), args.repeats)
    p = base.num_patches
    print(f"\nViT forward (mean attention): {t_vit * 1e3:8.1f} ms / batch")

    print_head(
        f"{'pixels':<9} {'rate':>5} {'k':>3} {'bytes':>8} {'select ms':>10} {'code ms':>9} "
        f"{'total ms':>9} {'img/s':>8} {'img/s w/o ViT':>14}"
    )
    for spec in args.pixels.split(","):
        sch = PatchScheme(
            selection="mean",
            vit=vit,
            decoder=None,
            pixels=spec,
            group_size=args.group_size,
            device=device,
        )
        for r in rates:
            rule = Rate(r)
            mask, t_sel = timed(lambda rule=rule: rule(scores), args.repeats)
            msgs, t_code = timed(lambda m=mask, s=sch: s.encode_selected(images, m), args.repeats)
            total = t_vit + t_sel + t_code
            mean_bytes = sum(len(m) for m in msgs) / len(msgs)
            print(
                f"{spec:<9} {r:>5g} {rule.count(p):>3d} {mean_bytes:>8.1f} {t_sel * 1e3:>10.2f} "
                f"{t_code * 1e3:>9.1f} {total * 1e3:>9.1f} {args.batch / total:>8.0f} "
                f"{args.batch / (t_sel + t_code):>14.0f}"
            )


if __name__ == "__main__":
    main()
