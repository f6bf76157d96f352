"""ESPNet (the authors' CamVid checkpoint) on CamVid val: mIoU for an input normalisation.

For the first ``--n`` images of ``<camvid>/val/*.webp`` (sorted by name; 480x360) with
labels ``<camvid>/valannot/<name>.png`` (ids 0-10, 11 = void): the image is read with
PIL as RGB, made float ``[0, 1]`` ``(1, 3, 360, 480)``, turned into the network's input by
the normalisation ``--norm`` and run through :func:`semcom.models.espnet.load_espnet`'s
network. An 11x11 confusion matrix is accumulated over the pixels whose label is < 11
(void ignored); IoU per class = TP / (TP + FP + FN), mIoU = mean over the 11 classes,
pixel accuracy = trace / total.

The checkpoint has 12 outputs (channel 11 = void, trained as a class). Two figures are
printed per normalisation: ``argmax12`` (the model's own argmax over all 12 channels; a
pixel predicted void is a miss for its true class) and ``argmax11`` (argmax over the 11
real classes only).

``--norm chosen`` (default) runs ``ESPNet.forward`` itself, i.e. the normalisation built
into the model (BGR, CamVid-train mean/std on 0-255, then /255). The other names feed
``forward_normalised`` with ``z`` computed from ``x`` (RGB in [0, 1]):

====================  =========================================================
``rgb01`` / ``bgr01``  ``x`` / ``x`` with channels reversed
``rgb01_255`` ...      the same, ``/ 255``
``rgb255`` ...         ``255 x``
``rgb_ms`` ...         ``(255 x - mean) / std`` (CamVid-train mean/std, 0-255 scale)
``rgb_ms_255`` ...     the same, ``/ 255`` (``bgr_ms_255`` == ``chosen``)
``imagenet``           ``(x - imagenet_mean) / imagenet_std``, RGB
====================  =========================================================

``--norm all`` runs every candidate in one pass. ``--train-stats`` recomputes the
CamVid-train mean/std the authors' way (per-image channel mean and std of the 0-255
BGR image, averaged over ``<camvid>/train/*.webp``) and prints them.

Usage::

    python benchmarks/eval_espnet_camvid.py --checkpoint espnet_p2_q8_camvid.pth \\
        --camvid camvid [--n 101] [--norm chosen|all|NAME] [--train-stats]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from semcom.data.folders import CAMVID_CLASSES
from semcom.models.espnet import MEAN_BGR, STD_BGR, ESPNet, load_espnet

CLASSES = CAMVID_CLASSES
NC = len(CLASSES)

_MB = torch.tensor(MEAN_BGR).view(1, 3, 1, 1)
_SB = torch.tensor(STD_BGR).view(1, 3, 1, 1)
_MR, _SR = _MB.flip(1), _SB.flip(1)
_IM_MEAN = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
_IM_STD = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)


def _bgr(x: torch.Tensor) -> torch.Tensor:
    return x.flip(1)


#: name -> z(x) for x RGB in [0, 1]; "chosen" means ``model(x)`` (the built-in one).
NORMS: dict[str, Callable[[torch.Tensor], torch.Tensor] | None] = {
    "chosen": None,
    "rgb01": lambda x: x,
    "bgr01": _bgr,
    "rgb01_255": lambda x: x / 255,
    "bgr01_255": lambda x: _bgr(x) / 255,
    "rgb255": lambda x: x * 255,
    "bgr255": lambda x: _bgr(x) * 255,
    "rgb_ms": lambda x: (x * 255 - _MR) / _SR,
    "bgr_ms": lambda x: (_bgr(x) * 255 - _MB) / _SB,
    "rgb_ms_255": lambda x: (x * 255 - _MR) / _SR / 255,
    "bgr_ms_255": lambda x: (_bgr(x) * 255 - _MB) / _SB / 255,
    "imagenet": lambda x: (x - _IM_MEAN) / _IM_STD,
}


def train_stats(train_dir: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """BGR mean / std (0-255) as the authors' loader computes them, and the image count."""
    files = sorted(train_dir.glob("*.webp")) or sorted(train_dir.glob("*.png"))
    if not files:
        raise SystemExit(f"no images in {train_dir}")
    mean, std = np.zeros(3), np.zeros(3)
    for f in files:
        a = np.asarray(Image.open(f).convert("RGB"), dtype=np.float64)[:, :, ::-1]
        a = a.reshape(-1, 3)
        mean += a.mean(0)
        std += a.std(0)
    return mean / len(files), std / len(files), len(files)


def val_items(root: Path, n: int | None) -> list[tuple[Path, Path]]:
    files = sorted((root / "val").glob("*.webp"))
    if not files:
        raise SystemExit(f"no val/*.webp under {root}")
    items = [(f, root / "valannot" / f"{f.stem}.png") for f in files[:n]]
    missing = [str(lab) for _, lab in items if not lab.is_file()]
    if missing:
        raise SystemExit(f"missing labels: {missing[0]} (+{len(missing) - 1} more)")
    return items


def confusion(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """(11, 12) counts over pixels with label < 11: rows = label, columns 0-10 =
    predicted class, column 11 = predicted void (a miss for its row, no one's FP)."""
    keep = label < NC
    lab, pr = label[keep].astype(np.int64), pred[keep].astype(np.int64)
    ok = pr < NC
    cm = np.bincount(lab[ok] * NC + pr[ok], minlength=NC * NC).reshape(NC, NC)
    missed = np.bincount(lab[~ok], minlength=NC)
    # last column: pixels predicted void (false negatives of their row's class)
    return np.concatenate([cm, missed[:, None]], axis=1).astype(np.int64)  # (11, 12)


def scores(cm: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(mIoU, pixel accuracy, per-class IoU) of an (11, 12) matrix (last column: void)."""
    tp = np.diag(cm[:, :NC]).astype(np.float64)
    fn = cm.sum(1) - tp  # includes the void predictions
    fp = cm[:, :NC].sum(0) - tp
    denom = tp + fp + fn
    iou = np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)
    return float(np.nanmean(iou)), float(tp.sum() / max(cm.sum(), 1)), iou


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--camvid", type=Path, required=True, help="dir with val/ and valannot/")
    ap.add_argument("--n", type=int, default=None, help="first N val images (default: all)")
    ap.add_argument("--norm", default="chosen", help=f"all or one of {', '.join(NORMS)}")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-stats", action="store_true", help="print CamVid-train mean/std")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.norm != "all" and args.norm not in NORMS:
        ap.error(f"unknown --norm {args.norm!r}; choose all or one of {', '.join(NORMS)}")
    names = list(NORMS) if args.norm == "all" else [args.norm]

    if args.train_stats:
        m, s, k = train_stats(args.camvid / "train")
        print(
            f"CamVid train ({k} images), BGR 0-255: mean {np.round(m, 4).tolist()}"
            f" std {np.round(s, 4).tolist()}"
        )
        print(f"  in semcom.models.espnet: MEAN_BGR {MEAN_BGR} STD_BGR {STD_BGR}")

    model: ESPNet = load_espnet(args.checkpoint)
    items = val_items(args.camvid, args.n)
    cms = {(nm, k): np.zeros((NC, NC + 1), np.int64) for nm in names for k in (12, 11)}
    t0 = time.perf_counter()
    with torch.no_grad():
        for img_f, lab_f in items:
            rgb = np.asarray(Image.open(img_f).convert("RGB"), dtype=np.float32) / 255.0
            x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous()
            label = np.asarray(Image.open(lab_f))
            if label.shape != rgb.shape[:2]:
                raise SystemExit(f"{lab_f}: label {label.shape} vs image {rgb.shape[:2]}")
            for nm in names:
                fn = NORMS[nm]
                logits = model(x) if fn is None else model.forward_normalised(fn(x))
                for k in (12, 11):
                    pred = logits[0, :k].argmax(0).numpy()
                    cms[(nm, k)] += confusion(pred, label)
    dt = time.perf_counter() - t0
    print(
        f"ESPNet p=2 q=8, {args.checkpoint.name}, CamVid val: {len(items)} images,"
        f" void labels ignored ({dt:.1f} s)"
    )
    print(f"{'norm':<12} {'mIoU(12)':>9} {'pixacc(12)':>10} {'mIoU(11)':>9} {'pixacc(11)':>10}")
    for nm in names:
        m12, a12, _ = scores(cms[(nm, 12)])
        m11, a11, _ = scores(cms[(nm, 11)])
        print(f"{nm:<12} {m12:>9.4f} {a12:>10.4f} {m11:>9.4f} {a11:>10.4f}")
    for nm in names:
        _, _, iou = scores(cms[(nm, 12)])
        voidp = cms[(nm, 12)][:, NC].sum() / max(cms[(nm, 12)].sum(), 1)
        per = ", ".join(f"{c} {v:.3f}" for c, v in zip(CLASSES, iou, strict=True))
        print(f"per-class IoU [{nm}, argmax12; {voidp:.2%} of pixels predicted void]: {per}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
