"""How much a text-diffusion generator's output depends on its caption, per diffusion time.

For ``--n`` validation images of the synthetic world, noised to time ``t``: the relative
difference ``|out_c - out_u| / |out_u|`` between the network's output given the whole
caption and given no words, and the error of the implied noise against the true noise
with and without the caption. A generator whose text barely changes its output at the
high-noise times (where the layout is decided) cannot draw what the caption says::

    .venv/bin/python benchmarks/text_conditioning.py runs/genL/last.safetensors
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a text-diffusion checkpoint (or zoo name)")
    p.add_argument("--n", type=int, default=32, help="validation images")
    p.add_argument("--times", default="100,400,700,900", help="diffusion times")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from semcom.models.zoo import load_model
    from semcom.train.recipes.text_diffusion import caption_ids
    from semcom.train.sources import eval_batches

    m = load_model(a.checkpoint).eval()
    b = next(iter(eval_batches("val", a.n, a.n, 64)))
    ids = caption_ids(b.ids, 64)
    pos = torch.arange(ids.shape[1]).expand_as(ids)
    x0 = F.interpolate(b.x, size=(m.image_size,) * 2, mode="area") * 2 - 1
    g = torch.Generator().manual_seed(0)
    print(f"{a.checkpoint}: prediction {getattr(m, 'prediction', 'eps')}, {len(x0)} images")
    print("t     |c-u|/|u|   noise error with caption / without")
    with torch.no_grad():
        cond, pad = m.encode_text(ids, pos)
        unc, upad = m.encode_text(ids.new_zeros(len(ids), 1))
        for t in [int(v) for v in a.times.split(",")]:
            tt = torch.full((len(x0),), t)
            abar = m.alphas_cumprod[t]
            noise = torch.randn(x0.shape, generator=g)
            xt = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
            oc, ou = m.eps(xt, tt, cond, pad), m.eps(xt, tt, unc, upad)
            split = getattr(m, "split", None)
            ec = split(xt, oc, abar)[0] if split else oc
            eu = split(xt, ou, abar)[0] if split else ou
            rel = float((oc - ou).norm() / ou.norm())
            print(f"{t:<5} {rel:10.4f}   {float((ec - noise).pow(2).mean()):.4f} / "
                  f"{float((eu - noise).pow(2).mean()):.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
