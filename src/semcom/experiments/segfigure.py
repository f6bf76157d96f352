"""What survives a codec for a segmenter: original, reconstructions and the segmentation
maps a judge draws on each, for a few images (columns).

Rows: the originals, the ground-truth masks (when the dataset has them), the judge's map
of the originals; then, per scheme, its reconstruction (message size inside each image)
and the judge's map of it. Small objects that a codec loses show up as a map that
misses them::

    python -m semcom.experiments.segfigure --judge shape-segmenter -o seg.png \\
        --schemes "vqvae[model=A.safetensors,label=vq-vae],gos-vae[model=B.safetensors]"
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from semcom.experiments.samples import Row, _row_label, dataset_images, draw_reconstructions

__all__ = ["colour_map", "segmentation_figure", "segmentation_rows"]


def colour_map(seg: torch.Tensor) -> torch.Tensor:
    """Class ids int ``(H, W)`` -> uint8 ``(3, H, W)``: class 0 black, the others the
    tab20 colours; ignored pixels (255) white."""
    from matplotlib import colormaps

    table = (np.array([colormaps["tab20"](i)[:3] for i in range(20)]) * 255).astype(np.uint8)
    table = np.concatenate([np.zeros((1, 3), np.uint8), table])
    s = seg.cpu().numpy().astype(np.int64)
    rgb = table[np.clip(s, 0, None) % len(table)]
    rgb[s == 255] = 255
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def segmentation_rows(
    images: torch.Tensor, masks: torch.Tensor | None, schemes: Sequence[str], judge: str
) -> list[Row]:
    """The rows of :func:`segmentation_figure` (module docstring); ``images`` uint8
    ``(K, 3, H, W)``, ``masks`` int ``(K, H, W)`` or None, ``judge`` a segmentation judge
    spec (``semcom judges``)."""
    from semcom.data.convert import to_float
    from semcom.errors import InputError
    from semcom.judges import create_judge
    from semcom.schemes import create_scheme
    from semcom.schemes.base import run_session

    j = create_judge(judge)
    if j.yields != "segmentation":
        raise InputError(f"--judge {judge!r} does not segment (it yields {j.yields})")
    ref = to_float(images)

    def maps(x: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return [colour_map(s) for s in j.predict(to_float(x), ref)]

    rows: list[Row] = [("original", list(images), [])]
    if masks is not None:
        rows.append(("ground truth", [colour_map(m) for m in masks], []))
    rows.append((f"{j.name}\non the original", maps(images), []))
    for spec in schemes:
        sch = create_scheme(spec)
        if "x_hat" not in sch.outputs:
            raise InputError(f"scheme {spec!r} does not reconstruct the image")
        rate = sch.default_rates[0]
        outs, sizes = [], []
        for img in images:
            tx, got = run_session(sch, img, rate)
            outs.append(got.x_hat if got.x_hat is not None else torch.zeros_like(img))
            sizes.append(f"{tx.n_bytes:,} B")
        label = sch.label
        rows.append((_row_label(label), outs, sizes))
        rows.append((f"{j.name} on it", maps(torch.stack(outs)), []))
    return rows


def segmentation_figure(
    images: torch.Tensor,
    masks: torch.Tensor | None,
    schemes: Sequence[str],
    judge: str,
    path: Path,
) -> Path:
    """Save the figure of the module docstring to ``path`` (PNG); returns ``path``."""
    fig = draw_reconstructions(segmentation_rows(images, masks, schemes, judge))
    fig.savefig(path, dpi=110)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (``--help``); exit 2 with a one-line error on bad input."""
    import argparse

    from semcom.errors import SemcomError, one_line
    from semcom.schemes.base import split_scheme_list

    p = argparse.ArgumentParser(
        prog="python -m semcom.experiments.segfigure",
        description="Originals, reconstructions and a segmenter's maps of both, side by side.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--schemes", required=True, help="comma-separated scheme specs (rows)")
    p.add_argument("--judge", default="shape-segmenter", help="a segmentation judge spec")
    p.add_argument("--dataset", default="synthetic", help="synthetic | camvid | ...")
    p.add_argument("--data-root", default=None, help="dataset folder (real datasets)")
    p.add_argument("--split", default="test", help="dataset split")
    p.add_argument("--n", type=int, default=6, help="images (columns)")
    p.add_argument("--first", type=int, default=0, help="index of the first image")
    p.add_argument(
        "--size",
        default=None,
        help="image side N or HxW (height x width), each a multiple of 8; default: 64 for "
        "the synthetic world, a real dataset's own size",
    )
    p.add_argument("-o", "--out", default="segmentation.png", help="the PNG to write")
    a = p.parse_args(argv)
    try:
        from semcom.train.sources import parse_image_size

        size = None if a.size is None else parse_image_size(a.size)
        if a.dataset == "synthetic" and size is None:
            size = 64
        images, masks = dataset_images(a.dataset, a.data_root, a.split, a.n, size, a.first)
        out = segmentation_figure(images, masks, split_scheme_list(a.schemes), a.judge, Path(a.out))
        print(out)
    except SemcomError as e:
        sys.stderr.write(f"semcom: error: {one_line(e)}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
