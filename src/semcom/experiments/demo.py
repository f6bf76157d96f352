"""``semcom demo`` and ``semcom bench``: build the evaluation set and judges, sweep, report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from semcom.errors import InputError
from semcom.experiments.sweep import EvalSet, SweepConfig, run_sweep, synthetic_evalset


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

# Registered schemes the demo runs with other settings: the progressive text scheme at
# 5 words and the whole caption (every rate costs one generation per session, about
# 0.1 s a 32x32 image on a core; its own experiment is `semcom.experiments.progressive`).
DEMO_OPTIONS: dict[str, str] = {"text": "rates=5/32,label=text"}


def patch_figure(schemes: Sequence[str], images: torch.Tensor, path: Path) -> Path | None:
    """:func:`~semcom.experiments.samples.attention_figure` for the first attention-ranked
    patch scheme among ``schemes`` (with the first random-selection one as the baseline),
    or None when there is none."""
    from semcom.experiments.samples import attention_figure
    from semcom.schemes import create_scheme

    att = base = None
    for spec in schemes:
        sch = create_scheme(spec)
        if sch.family_name != "attention-patch":
            continue
        sel = getattr(sch, "selection", None)
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
    from semcom.experiments.samples import reconstruction_figure
    from semcom.judges import default_judges

    evalset = synthetic_evalset(n_images, seed=seed)
    judges = default_judges()
    names = [s for s in available_schemes() if s not in DEMO_SKIP]
    schemes = [f"{s}[{DEMO_OPTIONS[s]}]" if s in DEMO_OPTIONS else s for s in names]
    schemes += [s for s in DEMO_EXTRA if s.split("[", 1)[0] in names]
    config = SweepConfig(schemes=schemes, channels=list(channels), seed=seed)
    records = run_sweep(config, evalset, judges, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    fig = reconstruction_figure(evalset.images[:6], config.schemes, out / "samples.png")
    return publish(
        records, out, config.schemes, evalset, [("Sample reconstructions", fig)], DEMO_ANCHOR
    )


def publish(
    records: Sequence[Any],
    out: Path,
    schemes: Sequence[str],
    evalset: EvalSet,
    extra: list,
    anchor: str | None,
) -> Path:
    """Write the report of ``records`` into ``out`` (with the attention figure when a
    patch scheme ran, after the ``extra`` sections), print the summary; the index.html."""
    from semcom.experiments.report import print_summary, write_report

    out.mkdir(parents=True, exist_ok=True)
    att = patch_figure(schemes, evalset.images[:5], out / "attention.png")
    if att is not None:
        extra = [*extra, ("Attention-guided patch transmission", att)]
    if any(r.family == "collaborative" and "accuracy" in r.metrics for r in records):
        from semcom.experiments.collab import collab_figure, summarise, write_summary

        summary = summarise(records)
        write_summary(summary, out)
        fig = collab_figure(summary, out / "collab.png")
        extra = [*extra, ("Collaborative inference (collab.md: table and findings)", fig)]
    index = write_report(records, out, extra_sections=extra, screenshot=True, anchor_scheme=anchor)
    print_summary(records, anchor_scheme=anchor)
    print(f"report: {index}")
    return index


#: The demo's BD-rate anchor: the codec every reader knows.
DEMO_ANCHOR = "jpeg"


def _real_evalset(
    dataset: str,
    root: Path | None,
    split: str,
    n: int,
    size: int | tuple[int, int],
    seed: int,
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
        tuple(str(c) for c in getattr(ds, "classes", None) or ()) or None,
    )


def check_judges(
    judges: Sequence[Any], outputs: set[str], evalset: EvalSet, asked: bool = True
) -> None:
    """Bind every judge to the data's classes (``Judge.bind``) and refuse, in one line,
    a judge that cannot score this run: one the user ``asked`` for whose input is an
    output no scheme produces (formulas aside: they run whenever there is an image), or
    one that gives class labels (segmentation maps) for data with none to compare with."""
    for j in judges:
        j.bind(evalset.classes, evalset.dataset)
        if asked and j.source != "formula" and j.consumes not in outputs:
            raise InputError(
                f"judge {j.name} reads {j.consumes}, which none of the schemes produces "
                f"(they give {', '.join(sorted(outputs))})"
            )
        if j.yields == "logits" and evalset.labels is None:
            raise InputError(
                f"judge {j.name} gives class labels, but {evalset.dataset} has no labels"
            )
        if j.yields == "segmentation" and evalset.masks is None:
            raise InputError(
                f"judge {j.name} gives segmentation maps, but {evalset.dataset} has no masks"
            )


def bench_judges(
    specs: Sequence[str],
    dataset: str,
    size: int,
    classifier: Path | None = None,
    segmenter: Path | None = None,
    ft_classifier: Path | None = None,
) -> list:
    """The judges of a bench run: PSNR and SSIM, then the ``--judge`` specs; without any,
    the zoo's on 64 x 64 synthetic data. ``--classifier`` / ``--segmenter`` /
    ``--ft-classifier`` stand for ``classifier=`` (with ``featdist=``), ``segmenter=`` and
    a fine-tuned classifier judge (metric ``accuracy_ft``) and replace the zoo's."""
    from semcom.judges import create_judge, default_judges, formula_judges

    files = bool(classifier or segmenter or ft_classifier)
    if specs:
        asked = [create_judge(s) for s in specs]
        named = {j.name for j in asked}
        judges = [j for j in formula_judges() if j.name not in named] + asked
    elif dataset == "synthetic" and size == 64 and not files:
        judges = default_judges()
    else:
        judges = formula_judges()
    if classifier is not None:
        clf = create_judge(f"classifier={classifier}")
        if hasattr(getattr(clf, "model", None), "features"):
            judges.append(create_judge(f"featdist={classifier}"))
        judges.append(clf)
    if segmenter is not None:
        judges.append(create_judge(f"segmenter={segmenter}"))
    if ft_classifier is not None:
        ft = create_judge(f"classifier={ft_classifier}")
        ft.name, ft.metrics = f"{ft.name}-ft", ("accuracy_ft",)
        judges.append(ft)
    names = [j.name for j in judges]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"judge(s) given twice: {', '.join(twice)}")
    return judges


def run_bench(
    schemes: Sequence[str],
    channels: Sequence[str],
    rates: Sequence[float] | None,
    dataset: str,
    data_root: Path | None,
    split: str,
    n_images: int,
    size: int | tuple[int, int],
    classifier: Path | None,
    segmenter: Path | None,
    seed: int,
    out: Path,
    progress: bool = True,
    ft_classifier: Path | None = None,
    judges: Sequence[str] = (),
    anchor: str | None = None,
    batch_size: int = 128,
    workers: int = 1,
) -> Path | None:
    """The sweep on any dataset; returns the report's index.html (None on the processes
    of a multi-process run other than the first, which writes it).

    ``workers`` > 1 starts that many local processes; under ``torchrun`` the processes
    it started share the work (:mod:`semcom.experiments.distributed`)."""
    import os

    from semcom.channel import create_channel
    from semcom.experiments.distributed import group_from_env, spawn
    from semcom.schemes import create_scheme

    if workers > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InputError("--workers starts local processes; under torchrun leave it at 1")
    labels, roles, outputs = [], {}, set()
    for s in schemes:
        sch = create_scheme(s)  # unknown scheme -> InputError before any work
        labels.append(sch.label)
        outputs |= set(sch.outputs)
        roles[sch.label] = sch.role
        reason = sch.unavailable_reason()
        if reason:
            raise InputError(f"scheme {s!r} cannot run: {reason}")
        for r in rates or ():
            sch.validate_rate(r)
    for c in channels:
        create_channel(c, seed=seed)
    if anchor is not None and anchor not in labels:
        raise InputError(f"--anchor {anchor!r} is not one of the schemes: {', '.join(labels)}")
    if anchor is not None and roles[anchor] == "reference":
        raise InputError(f"--anchor {anchor!r} is a reference scheme (plotted, never compared)")
    if dataset == "synthetic" and not isinstance(size, int):
        raise InputError(f"--size {size[0]}x{size[1]}: the synthetic world's images are square")
    if dataset == "synthetic":
        evalset = synthetic_evalset(n_images, size=size, split=split, seed=seed)
    else:
        evalset = _real_evalset(dataset, data_root, split, n_images, size, seed)
    judge_list = bench_judges(judges, dataset, size, classifier, segmenter, ft_classifier)
    asked = bool(judges or classifier or segmenter or ft_classifier)
    check_judges(judge_list, outputs, evalset, asked)
    config = SweepConfig(
        schemes=list(schemes),
        channels=list(channels),
        rates={label: list(rates) for label in labels} if rates else {},
        seed=seed,
        batch_size=batch_size,
    )
    job = (config, evalset, judge_list, out, progress, anchor)
    if workers > 1:
        spawn(workers, _bench_job, *job)
        return out / "index.html"
    return _bench_job(group_from_env(), *job)


def _bench_job(
    group: Any,
    config: SweepConfig,
    evalset: EvalSet,
    judges: Sequence[Any],
    out: Path,
    progress: bool,
    anchor: str | None,
) -> Path | None:
    """One process's part of a bench run; the first process writes the report."""
    records = run_sweep(config, evalset, judges, progress=progress, group=group)
    if group.rank != 0:
        return None
    return publish(records, out, config.schemes, evalset, [], anchor)
