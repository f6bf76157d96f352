"""Sample figures: reconstructions at the lowest rate, and the patch transmitter at work."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

#: One row of :func:`reconstruction_figure`: (row label, images, the message size of each
#: image as shown, e.g. ``"409 B"`` -- an empty list for the originals).
Row = tuple[str, list[torch.Tensor], list[str]]


def dataset_images(
    dataset: str, root: str | None, split: str, n: int, size: int | None, first: int = 0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images ``first .. first + n - 1`` of a dataset's split: uint8 ``(n, 3, H, W)`` and,
    when the dataset has per-pixel targets, the masks int64 ``(n, H, W)`` (else None).
    ``size``: the synthetic world's side, or the size a real dataset is loaded at (None:
    its own)."""
    if dataset == "synthetic":
        from semcom.experiments.sweep import synthetic_evalset

        ev = synthetic_evalset(first + n, size=size or 64, split=split)
        masks = None if ev.masks is None else ev.masks[first:]
        return ev.images[first:], masks
    from semcom.data import load_dataset

    kw = {} if size is None else {"size": size}
    ds = load_dataset(dataset, root=root, split=split, **kw)
    items = [ds[i] for i in range(first, min(first + n, len(ds)))]
    targets = [it[1] for it in items]
    flat = all(torch.is_tensor(t) and t.ndim == 2 for t in targets)
    return torch.stack([it[0] for it in items]), torch.stack(targets) if flat else None


def _row_label(name: str, rate_label: str = "") -> str:
    """A row label short enough per line to stay beside its own row (``[...]`` options
    and the rate go on lines of their own)."""
    head, bracket, rest = name.partition("[")
    lines = [head] + ([bracket + rest] if bracket else [])
    return "\n".join(lines + ([f"@ {rate_label}"] if rate_label else []))


def reconstruction_rows(images: torch.Tensor, schemes: Sequence[str]) -> list[Row]:
    """The rows of :func:`reconstruction_figure`, in order: the originals, then one row
    per scheme of ``schemes`` (in that order) at its lowest default rate."""
    from semcom.schemes import create_scheme
    from semcom.schemes.base import run_session

    rows: list[Row] = [("original", list(images), [])]
    for name in schemes:
        sch = create_scheme(name)
        if "x_hat" not in sch.outputs:
            continue  # nothing to show: the receiver does not reconstruct
        rate = sch.default_rates[0]
        outs, sizes = [], []
        for img in images:
            tx, got = run_session(sch, img, rate)  # a budget it cannot meet: its smallest
            over = f" (> {rate:g})" if sch.rate_unit == "bytes" and tx.n_bytes > rate else ""
            outs.append(got.x_hat if got.x_hat is not None else torch.zeros_like(img))
            sizes.append(f"{tx.n_bytes:,} B{over}")
        rows.append((_row_label(name, sch.rate_label(rate)), outs, sizes))
    return rows


def draw_reconstructions(rows: Sequence[Row]) -> Any:
    """The grid of ``rows`` as a matplotlib Figure: one row of axes per row, its label on
    the left of that row, each message size written *inside* its own image (bottom right,
    ``gid="size"``) so no label can be read as belonging to a neighbouring image. A size
    marked ``(> N)`` is a message over the N-byte budget the scheme could not meet."""
    from matplotlib.figure import Figure

    k = max(len(outs) for _, outs, _ in rows)
    fig = Figure(figsize=(1.6 * k + 0.5, 1.65 * len(rows)), dpi=110)
    axes = fig.subplots(len(rows), k, squeeze=False)
    for r, (label, outs, sizes) in enumerate(rows):
        for c in range(k):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(outs):
                ax.set_visible(False)
                continue
            ax.imshow(outs[c].permute(1, 2, 0).numpy(), interpolation="nearest")
            if sizes:
                ax.text(
                    0.97,
                    0.04,
                    sizes[c],
                    transform=ax.transAxes,
                    ha="right",
                    va="bottom",
                    fontsize=7,
                    color="white",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "black", "ec": "none", "alpha": 0.7},
                    gid="size",
                )
        axes[r][0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center", labelpad=4)
    fig.tight_layout(h_pad=0.4, w_pad=0.3)
    return fig


def reconstruction_figure(images: torch.Tensor, schemes: Sequence[str], path: Path) -> Path:
    """Save a grid: row 0 the originals ``images`` uint8 ``(K, 3, H, W)``, then one row per
    scheme at its lowest default rate, labelled on the left with the scheme and rate, each
    image with its message size written inside it. Returns ``path``."""
    fig = draw_reconstructions(reconstruction_rows(images, schemes))
    fig.savefig(path, dpi=110)
    return path


def attention_figure(
    images: torch.Tensor,
    path: Path,
    rate: float = 0.25,
    attention: str = "patch-mean",
    baseline: str | None = "patch-random",
    vit: str | None = None,
    decoder: str | None = None,
) -> Path:
    """The patch transmitter at work, one row per image of ``images`` uint8 ``(K, 3, S, S)``.

    Columns: the original; the ViT's CLS attention heat map over it (the ``attention``
    scheme's scores); the patches it sends at ``rate`` as the receiver gets them (after
    pixel coding; missing patches black); the receiver's reconstruction; then the same two
    for ``baseline`` (e.g. random selection) when given. Message sizes are in the titles.
    ``vit`` / ``decoder``: zoo names or checkpoint paths overriding the schemes' models.
    Returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch.nn.functional as F

    from semcom.schemes import create_scheme

    kw = {k: v for k, v in (("vit", vit), ("decoder", decoder)) if v is not None}
    att = create_scheme(attention, **kw)
    scores = att.scores(images)  # (K, P)
    g = att.img_size // att.patch_size
    heat = scores.view(-1, 1, g, g)
    heat = heat / heat.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    heat = F.interpolate(heat, size=images.shape[-2:], mode="nearest")[:, 0]
    columns: list[tuple[str, list[torch.Tensor], list[str]]] = [
        ("original", list(images), [""] * len(images)),
    ]
    for name in [attention] + ([baseline] if baseline else []):
        sch = att if name == attention else create_scheme(name, **kw)
        msgs = sch.compress_batch(images, rate)
        res = sch.decompress_batch(msgs)
        blank = torch.zeros_like(images[0])
        sent = [blank if isinstance(r, BaseException) else r.aux["sparse"] for r in res]
        recs = [blank if isinstance(r, BaseException) else r.x_hat for r in res]
        sizes = [f"{len(m)} B" for m in msgs]
        label = sch.label.removeprefix("patch-")
        columns.append((f"{label}: sent (r={rate:g})", sent, sizes))
        columns.append((f"{label}: reconstruction", recs, [""] * len(msgs)))
    k = images.shape[0]
    ncol = len(columns) + 1
    fig, axes = plt.subplots(k, ncol, figsize=(1.45 * ncol, 1.5 * k + 0.3), squeeze=False)
    for r in range(k):
        cells = [columns[0]] + [("attention", None, None)] + columns[1:]
        for c, (title, imgs, notes) in enumerate(cells):
            ax = axes[r][c]
            if imgs is None:
                ax.imshow(images[r].permute(1, 2, 0).numpy(), interpolation="nearest")
                ax.imshow(heat[r].numpy(), cmap="inferno", alpha=0.65, interpolation="nearest")
            else:
                ax.imshow(imgs[r].permute(1, 2, 0).numpy(), interpolation="nearest")
                if notes and notes[r]:
                    ax.set_xlabel(notes[r], fontsize=6, labelpad=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                head = f"{att.label.removeprefix('patch-')} attention"
                ax.set_title(title if imgs is not None else head, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def attention_comparison(
    images: torch.Tensor,
    path: Path,
    vits: Sequence[tuple[str, str]],
    selection: str = "mean",
    rate: float = 0.25,
) -> Path:
    """Heat maps of several patch-ranking ViTs side by side, one row per image of
    ``images`` uint8 ``(K, 3, S, S)``: the original, then for each ``(label, vit)`` (a zoo
    name or checkpoint path) its CLS attention (``selection`` ``"mean"`` or ``"rollout"``)
    over the image, with the top ``rate`` patches outlined. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch.nn.functional as F
    from matplotlib.patches import Rectangle

    from semcom.schemes import create_scheme

    maps = []
    for label, vit in vits:
        sch = create_scheme(f"patch-{selection}", vit=vit)
        scores = sch.scores(images)
        g = sch.img_size // sch.patch_size
        keep = max(1, int(round(rate * scores.shape[1])))
        top = scores.topk(keep, dim=1).indices
        heat = scores.view(-1, 1, g, g)
        heat = heat / heat.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
        heat = F.interpolate(heat, size=images.shape[-2:], mode="nearest")[:, 0]
        maps.append((label, heat, top, g, sch.patch_size))
    k, ncol = images.shape[0], 1 + len(maps)
    fig, axes = plt.subplots(k, ncol, figsize=(1.6 * ncol, 1.6 * k + 0.3), squeeze=False)
    for r in range(k):
        img = images[r].permute(1, 2, 0).numpy()
        axes[r][0].imshow(img, interpolation="nearest")
        if r == 0:
            axes[r][0].set_title("original", fontsize=6)
        for c, (label, heat, top, g, ps) in enumerate(maps, start=1):
            ax = axes[r][c]
            ax.imshow(img, interpolation="nearest")
            ax.imshow(heat[r].numpy(), cmap="inferno", alpha=0.6, interpolation="nearest")
            for p in top[r].tolist():
                y, x = divmod(p, g)
                ax.add_patch(
                    Rectangle((x * ps - 0.5, y * ps - 0.5), ps, ps, fill=False, lw=0.6, ec="cyan")
                )
            if r == 0:
                ax.set_title(f"{label}\n{selection} attention, top {rate:g}", fontsize=6)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m semcom.experiments.samples --vit LABEL=PATH ... -o attention.png``:
    :func:`attention_comparison` on images of a dataset (first ``--n`` of ``--split``)."""
    import argparse
    import sys

    from semcom.errors import SemcomError, one_line

    p = argparse.ArgumentParser(
        prog="python -m semcom.experiments.samples",
        description="Attention maps of several patch-ranking ViTs side by side.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--vit", action="append", required=True, metavar="LABEL=PATH",
                   help="a ViT checkpoint (or zoo name) and its column label; repeat")  # fmt: skip
    p.add_argument("--dataset", default="synthetic", help="synthetic | tiny-imagenet | ...")
    p.add_argument("--data-root", default=None, help="dataset folder (real datasets)")
    p.add_argument("--split", default="val", help="dataset split")
    p.add_argument("--n", type=int, default=6, help="images (rows)")
    p.add_argument("--size", type=int, default=64, help="image side")
    p.add_argument("--selection", default="mean", choices=["mean", "rollout"], help="attention")
    p.add_argument("--rate", type=float, default=0.25, help="share of patches outlined")
    p.add_argument("-o", "--out", default="attention.png", help="the PNG to write")
    a = p.parse_args(argv)
    try:
        vits = []
        for item in a.vit:
            label, eq, vit = item.partition("=")
            if not eq or not label or not vit:
                raise SemcomError(f"--vit {item!r}: expected LABEL=PATH")
            vits.append((label, vit))
        images = dataset_images(a.dataset, a.data_root, a.split, a.n, a.size)[0]
        print(attention_comparison(images, Path(a.out), vits, a.selection, a.rate))
    except SemcomError as e:
        sys.stderr.write(f"semcom: error: {one_line(e)}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
