"""Sample figures: reconstructions at the lowest rate, and the patch transmitter at work."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch


def reconstruction_figure(images: torch.Tensor, schemes: Sequence[str], path: Path) -> Path:
    """Save a grid: row 0 the originals ``images`` uint8 ``(K, 3, H, W)``, then one row per
    scheme at its lowest default rate, titled with the message size. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from semcom.errors import BitstreamError
    from semcom.schemes import create_scheme

    rows: list[tuple[str, list[torch.Tensor], list[int]]] = [("original", list(images), [])]
    for name in schemes:
        sch = create_scheme(name)
        rate = sch.default_rates[0]
        outs, sizes = [], []
        for img in images:
            msg = sch.compress(img, rate)
            try:
                outs.append(sch.decompress(msg)["x_hat"])
            except BitstreamError:
                outs.append(torch.zeros_like(img))
            sizes.append(len(msg))
        rows.append((f"{name} @ {sch.rate_label(rate)}", outs, sizes))
    k = images.shape[0]
    fig, axes = plt.subplots(len(rows), k, figsize=(1.6 * k, 1.7 * len(rows)), squeeze=False)
    for r, (label, outs, sizes) in enumerate(rows):
        for c in range(k):
            ax = axes[r][c]
            ax.imshow(outs[c].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if sizes:
                ax.set_title(f"{sizes[c]} B", fontsize=7)
        axes[r][0].set_ylabel(label, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
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
        sent = [r["sparse"] if isinstance(r, dict) else torch.zeros_like(images[0]) for r in res]
        recs = [r["x_hat"] if isinstance(r, dict) else torch.zeros_like(images[0]) for r in res]
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
