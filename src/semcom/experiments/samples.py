"""A figure of sample reconstructions: originals and each codec at its lowest rate."""

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
