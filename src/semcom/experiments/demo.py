"""``semcom demo`` and ``semcom bench``: build the evaluation set and judges, sweep, report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from semcom.errors import InputError
from semcom.experiments.sweep import (
    EvalSet,
    Judges,
    SweepConfig,
    run_sweep,
    synthetic_evalset,
    zoo_judges,
)


def available_schemes() -> list[str]:
    """Every registered scheme that can run here: codecs this Pillow build lacks and schemes
    whose zoo weights are missing are left out (with a note on stderr)."""
    import sys

    from semcom.codec.pillow import available_formats
    from semcom.schemes import create_scheme, list_schemes

    fmts = set(available_formats())
    codec = {"jpeg", "webp", "avif"}
    out = []
    for name in list_schemes():
        if name in codec and name not in fmts:
            print(f"semcom: skipping {name}: this Pillow build cannot write it", file=sys.stderr)
            continue
        reason = create_scheme(name).unavailable_reason()
        if reason:
            print(f"semcom: skipping {name}: {reason}", file=sys.stderr)
            continue
        out.append(name)
    return out


# Left out of the demo to keep it short (run them with `semcom bench --schemes ...`).
DEMO_SKIP: tuple[str, ...] = ()

# Configurations the demo adds to the registered schemes (when those can run): the
# attention-guided scheme with its most byte-efficient pixel coding (2-bit quantisation).
DEMO_EXTRA: tuple[str, ...] = ("patch-mean[pixels=q2]",)


def patch_figure(schemes: Sequence[str], images: torch.Tensor, path: Path) -> Path | None:
    """:func:`~semcom.experiments.samples.attention_figure` for the first attention-ranked
    patch scheme among ``schemes`` (with the first random-selection one as the baseline),
    or None when there is none."""
    from semcom.experiments.samples import attention_figure
    from semcom.schemes import create_scheme

    att = base = None
    for spec in schemes:
        sel = getattr(create_scheme(spec), "selection", None)
        if sel in ("mean", "rollout") and att is None:
            att = spec
        elif sel == "random" and base is None:
            base = spec
    if att is None:
        return None
    return attention_figure(images, path, attention=att, baseline=base)


def run_demo(
    out: Path,
    n_images: int = 128,
    channels: Sequence[str] = ("ideal", "bsc:1e-4", "erasure:0.05:128"),
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """The main job on the synthetic world; returns the report's index.html."""
    from semcom.experiments.report import print_summary, write_report
    from semcom.experiments.samples import reconstruction_figure

    evalset = synthetic_evalset(n_images, seed=seed)
    judges = zoo_judges()
    schemes = [s for s in available_schemes() if s not in DEMO_SKIP]
    schemes += [s for s in DEMO_EXTRA if s.split("[", 1)[0] in schemes]
    config = SweepConfig(schemes=schemes, channels=list(channels), seed=seed)
    records = run_sweep(config, evalset, judges, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    fig = reconstruction_figure(evalset.images[:6], config.schemes, out / "samples.png")
    extra: list = [("Sample reconstructions", fig)]
    att = patch_figure(config.schemes, evalset.images[:5], out / "attention.png")
    if att is not None:
        extra.append(("Attention-guided patch transmission", att))
    index = write_report(records, out, extra_sections=extra, screenshot=True)
    print_summary(records)
    print(f"report: {index}")
    return index


def _real_evalset(
    dataset: str, root: Path | None, split: str, n: int, size: int, seed: int
) -> EvalSet:
    from semcom.data import load_dataset

    known = ("synthetic", "imagefolder", "tiny-imagenet", "camvid")
    if dataset.strip().lower().replace("_", "-") not in known:
        raise InputError(f"unknown dataset {dataset!r}; --dataset takes {', '.join(known)}")
    if root is None:
        raise InputError(f"--data-root is required for dataset {dataset!r}")
    ds = load_dataset(dataset, root=root, split=split, size=size)
    n = min(n, len(ds))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:n].tolist()
    images, labels, masks = [], [], []
    for i in idx:
        img, target = ds[i]
        images.append(img)
        if isinstance(target, torch.Tensor) and target.ndim == 2:
            masks.append(target.long())
        else:
            labels.append(int(target))
    return EvalSet(
        torch.stack(images),
        torch.tensor(labels) if labels else None,
        torch.stack(masks) if masks else None,
        dataset,
        split,
        seed,
    )


def run_bench(
    schemes: Sequence[str],
    channels: Sequence[str],
    rates: Sequence[float] | None,
    dataset: str,
    data_root: Path | None,
    split: str,
    n_images: int,
    size: int,
    classifier: Path | None,
    segmenter: Path | None,
    seed: int,
    out: Path,
    progress: bool = True,
    ft_classifier: Path | None = None,
) -> Path:
    """The sweep on any dataset; returns the report's index.html."""
    from semcom.channel import create_channel
    from semcom.experiments.report import print_summary, write_report
    from semcom.metrics import FeatureDistance
    from semcom.models.checkpoint import load_checkpoint
    from semcom.schemes import create_scheme

    labels = []
    for s in schemes:
        sch = create_scheme(s)  # unknown scheme -> InputError before any work
        labels.append(sch.label)
        reason = sch.unavailable_reason()
        if reason:
            raise InputError(f"scheme {s!r} cannot run: {reason}")
        for r in rates or ():
            sch.validate_rate(r)
    for c in channels:
        create_channel(c, seed=seed)
    if dataset == "synthetic":
        evalset = synthetic_evalset(n_images, size=size, split=split, seed=seed)
        use_zoo = size == 64 and not (classifier or segmenter or ft_classifier)
        judges = zoo_judges() if use_zoo else Judges()
    else:
        evalset = _real_evalset(dataset, data_root, split, n_images, size, seed)
        judges = Judges()
    if classifier is not None:
        judges.classifier = load_checkpoint(classifier)[0].eval()
        if hasattr(judges.classifier, "features"):
            judges.featdist = FeatureDistance(judges.classifier.features, name=classifier.stem)
    if segmenter is not None:
        judges.segmenter = load_checkpoint(segmenter)[0].eval()
    if ft_classifier is not None:
        judges.classifier_ft = load_checkpoint(ft_classifier)[0].eval()
    config = SweepConfig(
        schemes=list(schemes),
        channels=list(channels),
        rates={label: list(rates) for label in labels} if rates else {},
        seed=seed,
    )
    records = run_sweep(config, evalset, judges, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    extra: list = []
    att = patch_figure(config.schemes, evalset.images[:5], out / "attention.png")
    if att is not None:
        extra.append(("Attention-guided patch transmission", att))
    index = write_report(records, out, extra_sections=extra, screenshot=True)
    print_summary(records)
    print(f"report: {index}")
    return index
