"""``semcom demo``, ``bench``, ``report``, ``train``; the catalogues ``schemes``, ``channels``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from semcom.cli.app import (
    DEFAULT_DEMO_CHANNELS,
    _image_size,
    _rates,
    _report_folder,
    app,
)


@app.command(short_help="The main job: every scheme on the synthetic world, with a report.")
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder the report is written to.")
    ] = Path("semcom-report"),
    n_images: Annotated[
        int, typer.Option(help="Synthetic test images per point.", min=1, max=100_000)
    ] = 128,
    channels: Annotated[
        str, typer.Option(help="Comma-separated channel specs (see `semcom channels`).")
    ] = DEFAULT_DEMO_CHANNELS,
    seed: Annotated[int, typer.Option(help="Seed of the channels.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """The main job: every available scheme (attention-guided patch transmission with
    mean / rollout / random / variance selection, and the classical codecs) on the
    synthetic world over an ideal, a bit-error and a packet-erasure channel, judged by the
    zoo's classifier, fine-tuned classifier and segmenter; writes the report (plots,
    BD-rate tables, sample and attention figures) and prints a summary."""
    from semcom.channel.spec import split_channel_list
    from semcom.experiments.demo import run_demo

    run_demo(
        _report_folder(out),
        n_images=n_images,
        channels=split_channel_list(channels),
        seed=seed,
        progress=progress,
    )


@app.command(short_help="List the schemes with their rates and options.")
def schemes() -> None:
    """List the registered schemes: what each sends, its rate setting (unit, range,
    defaults) and its options with their defaults, as a spec takes them
    (name[option=value,...])."""
    import shutil
    import textwrap

    from semcom.schemes import create_scheme, list_schemes
    from semcom.schemes.base import _SCHEMES, scheme_options

    width = max(60, min(100, shutil.get_terminal_size((100, 20)).columns))
    blocks = []
    for name in list_schemes():
        cls = _SCHEMES[name]
        sch = create_scheme(name)
        summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        lines = [f"{name}: {summary}"]
        rates = ", ".join(sch.rate_label(r) for r in sch.default_rates)
        lines += textwrap.wrap(
            f"rate: {sch.rate_range or sch.rate_unit}; defaults {rates}",
            width, initial_indent="  ", subsequent_indent="    ",
        )  # fmt: skip
        for opt, default, text in scheme_options(cls):
            shown = "none" if default is None else str(default).lower() if isinstance(
                default, bool) else default  # fmt: skip
            lines += textwrap.wrap(
                f"{opt}={shown}: {text}" if text else f"{opt}={shown}",
                width, initial_indent="  ", subsequent_indent="      ",
            )  # fmt: skip
        blocks.append("\n".join(lines))
    typer.echo("\n\n".join(blocks))
    typer.echo("\nExample: semcom send img.png --scheme 'webp[scale=auto]' --rate 300")


@app.command(short_help="Explain the channel specs that --channels takes.")
def channels() -> None:
    """Explain the channel specs that --channels accepts."""
    from semcom.channel.spec import help_text

    typer.echo(help_text())


@app.command(
    short_help="Train a model (semcom train --help lists the options).",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
def train(ctx: typer.Context) -> None:
    """Train a model (task models, ViT, patch decoder); `semcom train --help` lists options."""
    from semcom.train import main as train_main

    code = train_main(list(ctx.args), prog="semcom train")
    if code:
        raise typer.Exit(code)


@app.command(short_help="Rebuild or merge reports from results.json files.")
def report(
    results: Annotated[
        list[Path],
        typer.Argument(help="results.json files (or folders holding one) to put together."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path(
        "semcom-report"
    ),
    anchor: Annotated[
        str | None,
        typer.Option(
            help="Anchor scheme of the BD-rate tables (default: the first baseline scheme)."
        ),
    ] = None,
) -> None:
    """Rebuild a report (results.json/.csv, plots, BD-rate tables, index.html) from earlier
    results, e.g. to merge runs; images from the original report folder (samples.png,
    attention.png) are carried over when they exist."""
    import shutil

    from semcom.experiments.report import merge_results, print_summary, write_report

    _report_folder(out)
    records = merge_results(results)
    out.mkdir(parents=True, exist_ok=True)
    extra: list = []
    titles = {
        "samples.png": "Sample reconstructions",
        "attention.png": "Attention-guided patch transmission",
    }
    for name, title in titles.items():
        for path in results:
            src = (path if path.is_dir() else path.parent) / name
            if src.is_file():
                dest = out / name
                if src.resolve() != dest.resolve():
                    shutil.copyfile(src, dest)
                extra.append((title, dest))
                break
    index = write_report(records, out, extra_sections=extra, anchor_scheme=anchor, screenshot=True)
    print_summary(records, anchor_scheme=anchor)
    typer.echo(f"report: {index}")


@app.command(short_help="The sweep: schemes x rates x channels on a dataset.")
def bench(
    schemes_: Annotated[
        str,
        typer.Option(
            "--schemes",
            help="Comma-separated scheme specs: a name (see `semcom schemes`) or "
            "name[key=value,...] with constructor options, rates=a/b/c (this scheme's "
            "rate settings) and label= (its name in the results), e.g. "
            "jpeg[rates=300/600] or patch-mean[pixels=q2].",
        ),
    ] = "jpeg,webp,avif,raw",
    channels_: Annotated[
        str,
        typer.Option("--channels", help="Comma-separated channel specs (see `semcom channels`)."),
    ] = ("ideal,bsc:1e-4,erasure:0.05:128"),
    rates: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated rate settings applied to every scheme "
            "(default: each scheme's defaults)."
        ),
    ] = None,
    dataset: Annotated[
        str, typer.Option(help="synthetic | imagefolder | tiny-imagenet | camvid")
    ] = "synthetic",
    data_root: Annotated[Path | None, typer.Option(help="Root folder of a real dataset.")] = None,
    split: Annotated[str, typer.Option(help="Dataset split to evaluate on.")] = "test",
    n_images: Annotated[int, typer.Option(help="Images per point.", min=1)] = 256,
    size: Annotated[
        str,
        typer.Option(
            help="Image side N, or HxW (height x width) for a real dataset, each a multiple "
            "of 8; images are resized to it (e.g. 240x320 for CamVid at half size)."
        ),
    ] = "64",
    classifier: Annotated[
        Path | None,
        typer.Option(
            help="Classifier checkpoint judging the receiver's output "
            "(default: the zoo's shape-classifier on synthetic data)."
        ),
    ] = None,
    segmenter: Annotated[
        Path | None,
        typer.Option(
            help="Segmenter checkpoint (default: the zoo's shape-segmenter on synthetic data)."
        ),
    ] = None,
    ft_classifier: Annotated[
        Path | None,
        typer.Option(
            help="Classifier fine-tuned on masked / reconstructed images; adds the metric "
            "accuracy_ft (default: the zoo's shape-classifier-ft on synthetic data)."
        ),
    ] = None,
    judge: Annotated[
        list[str] | None,
        typer.Option(
            help="Judge of the reconstructions, NAME or NAME=PATH (see `semcom judges`); "
            "repeat for several. PSNR and SSIM are always measured. Default: the zoo's "
            "judges on 64x64 synthetic data, none on other data."
        ),
    ] = None,
    anchor: Annotated[
        str | None,
        typer.Option(
            help="Scheme (label) the BD-rate tables compare against (default: the first "
            "baseline scheme, e.g. the first classical codec in --schemes)."
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            help="Images per transmitter, receiver and judge call; also the unit of work "
            "shared between processes.",
            min=1,
        ),
    ] = 128,
    workers: Annotated[
        int,
        typer.Option(
            help="Local processes sharing the images (torch.distributed, gloo); the "
            "records equal a one-process run's on as many threads per process (each gets "
            "the caller's count). Under torchrun leave it at 1.",
            min=1,
        ),
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the channels.")] = 0,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path(
        "semcom-report"
    ),
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """The sweep: schemes x rates x channels on a dataset; writes results and the report."""
    from semcom.channel.spec import split_channel_list
    from semcom.experiments.demo import run_bench
    from semcom.schemes import split_scheme_list

    run_bench(
        schemes=split_scheme_list(schemes_),
        channels=split_channel_list(channels_),
        rates=_rates(rates),
        dataset=dataset,
        data_root=data_root,
        split=split,
        n_images=n_images,
        size=_image_size(size),
        classifier=classifier,
        segmenter=segmenter,
        ft_classifier=ft_classifier,
        judges=judge or (),
        anchor=anchor,
        batch_size=batch_size,
        workers=workers,
        seed=seed,
        out=_report_folder(out),
        progress=progress,
    )
