"""Progressive text scheme speed on this machine: generation, captioning, a training step
of the generator, and what each ordering costs in generator calls.

Median over ``--runs`` runs (wall seconds, this process's torch threads):

* ``generate``: one image from a whole synthetic caption (DDIM ``--steps`` steps with
  classifier-free guidance: two network passes per step), and a batch of ``--batch``;
* ``caption``: greedy captioning of one image and of a batch;
* ``train step``: one optimiser step of the generator on ``--train-batch`` images (the
  cost that decides how long ``text-diffusion-synth`` trains);
* ``orderings``: generator calls per image to choose the order of a 20-word caption
  (lowest distance simulates every remaining word at every step: n (n + 1) / 2) against
  the attentive orderings (none).

Models are the given checkpoints, or untrained ones of the default configuration (the
speed does not depend on the weights)::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_text.py --threads 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import print_head, timed  # noqa: E402


def _model(spec: str | None, name: str, **kw: object) -> torch.nn.Module:
    if spec:
        from semcom.models.zoo import load_model

        return load_model(spec).eval()
    from semcom.models.registry import create_model

    return create_model(name, **kw).eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--generator", default=None, help="text-diffusion checkpoint (default: untrained)"
    )
    p.add_argument("--captioner", default=None, help="captioner checkpoint (default: untrained)")
    p.add_argument("--steps", type=int, default=10, help="DDIM steps per generation")
    p.add_argument("--batch", type=int, default=16, help="images per batched call")
    p.add_argument("--train-batch", type=int, default=64, help="images per training step")
    p.add_argument("--runs", type=int, default=5, help="timed runs (median)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from semcom.data import SyntheticWorld
    from semcom.text.words import synthetic_vocabulary

    vocab = synthetic_vocabulary()
    gen = _model(a.generator, "text-diffusion", vocab_size=len(vocab))
    cap = _model(a.captioner, "captioner", vocab_size=len(vocab))
    world = SyntheticWorld(size=64)
    caps = [world.caption(s) for s in range(a.batch)]
    ids = vocab.batch(caps)
    pos = torch.arange(ids.shape[1]).expand_as(ids)
    images = world.generate(torch.arange(a.batch)).images.float() / 255
    n_gen = sum(p.numel() for p in gen.parameters())
    n_cap = sum(p.numel() for p in cap.parameters())
    print(f"generator {n_gen / 1e6:.2f} M parameters at {gen.image_size} px; "
          f"captioner {n_cap / 1e6:.2f} M; {a.threads} threads, median of {a.runs}")  # fmt: skip
    print_head(f"{'what':<34} {'seconds':>9} {'per image':>10}")
    rows = []
    with torch.no_grad():
        one = lambda: gen.generate(ids[:1], pos[:1], [0], steps=a.steps)  # noqa: E731
        rows.append((f"generate 1 image, {a.steps} steps", timed(one, a.runs)[1], 1))
        many = lambda: gen.generate(ids, pos, list(range(a.batch)), steps=a.steps)  # noqa: E731
        rows.append((f"generate {a.batch} images", timed(many, a.runs)[1], a.batch))
        rows.append(("caption 1 image", timed(lambda: cap.caption(images[:1]), a.runs)[1], 1))
        rows.append(
            (f"caption {a.batch} images", timed(lambda: cap.caption(images), a.runs)[1], a.batch)
        )
    gen.train()
    opt = torch.optim.AdamW(gen.parameters(), 1e-4)
    tb = a.train_batch
    t_ids = vocab.batch([world.caption(s) for s in range(tb)])
    t_pos = torch.arange(t_ids.shape[1]).expand_as(t_ids)
    t_img = world.generate(torch.arange(tb)).images.float() / 255
    g = torch.Generator().manual_seed(0)

    def step() -> None:
        loss = gen.loss(t_img, t_ids, t_pos, g)
        opt.zero_grad()
        loss.backward()
        opt.step()

    rows.append((f"generator train step, batch {tb}", timed(step, max(2, a.runs // 2))[1], tb))
    for what, sec, n in rows:
        print(f"{what:<34} {sec:>9.3f} {sec / n:>10.4f}")
    n = 20
    print(f"\norder of a {n}-word caption: lowest distance {n * (n + 1) // 2} generator calls, "
          "most / least attentive 0 (one text-encoder pass), natural / random 0")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
