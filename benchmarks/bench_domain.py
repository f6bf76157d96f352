"""How often the zoo classifier's domain check flags images, in and out of its domain.

Usage::

    python benchmarks/bench_domain.py [--n 1024] [--photos DIR [DIR ...]]

Prints the share of images flagged "outside the judge's training domain" for synthetic
test images, their reconstructions through a few schemes (JPEG at 540 B, WebP at 360 B,
patch-mean / patch-random at r = 0.25), and every image file under each ``--photos``
folder (resized to 64x64, e.g. Tiny-ImageNet's val/images). See semcom.models.domain.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from semcom.data.images import is_image_file
from semcom.data.synthetic import SyntheticWorld
from semcom.experiments.sweep import encode_all
from semcom.imageio import load_image, resize_image
from semcom.models.domain import load_domain_check
from semcom.models.zoo import load_pretrained, zoo_dir, zoo_entry
from semcom.schemes import create_scheme


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024, help="synthetic test images (default 1024)")
    ap.add_argument("--photos", nargs="*", default=[], help="folders of real photos")
    ap.add_argument("--max-photos", type=int, default=1000, help="per folder (default 1000)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_pretrained("shape-classifier").eval()
    check = load_domain_check(zoo_dir() / zoo_entry("shape-classifier")["domain_check"]["file"])

    def flagged(x: torch.Tensor) -> float:
        res = [
            ok
            for i in range(0, len(x), 256)
            for _, ok in check.check(model, x[i : i + 256].float() / 255)
        ]
        return 1 - sum(res) / len(res)

    world = SyntheticWorld()
    test = world.generate(world.split_seeds("test", args.n)).images
    print(f"threshold {check.threshold:.3f}")
    print(f"{'images':44s} {'n':>6s} {'flagged':>8s}")
    print(f"{'synthetic test':44s} {len(test):6d} {flagged(test):8.3f}")
    for spec, rate in [("jpeg", 540), ("webp", 360), ("patch-mean", 0.25), ("patch-random", 0.25)]:
        s = create_scheme(spec)
        x = torch.stack([r.x_hat for r in s.decompress_batch(encode_all(s, test, rate))])
        label = f"  reconstructed by {spec} @ {s.rate_label(rate)}"
        print(f"{label:44s} {len(x):6d} {flagged(x):8.3f}")
    for folder in args.photos:
        files = sorted(p for p in Path(folder).rglob("*") if is_image_file(p))[: args.max_photos]
        if not files:
            print(f"{folder}: no images")
            continue
        x = torch.stack([resize_image(load_image(f), (64, 64)) for f in files])
        print(f"photos in {folder}\n{'':44s} {len(x):6d} {flagged(x):8.3f}")


if __name__ == "__main__":
    main()
