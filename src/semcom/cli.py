"""The ``semcom`` command line.

Every command reports bad input (missing file, not an image, unknown scheme, rate out of
range, corrupted message) as one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

try:  # typer >= 0.2x vendors click
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as _cx

from semcom.errors import SemcomError, one_line


def _no_hyphen_breaks() -> None:
    """Help lines never break inside hyphenated names (``patch-mean[...]``,
    ``tiny-imagenet``), so what --help shows can be copied. Click's wrapper is the
    standard library's TextWrapper; this sets ``break_on_hyphens=False`` for it."""
    try:
        from typer._click import _textwrap
    except ImportError:  # pragma: no cover - another typer layout: default wrapping
        return
    base = _textwrap.TextWrapper
    if getattr(base, "_semcom_no_hyphens", False):
        return

    class Wrapper(base):  # type: ignore[misc, valid-type]
        _semcom_no_hyphens = True

        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("break_on_hyphens", False)
            super().__init__(*args, **kwargs)

    _textwrap.TextWrapper = Wrapper  # type: ignore[misc]


_no_hyphen_breaks()

app = typer.Typer(
    name="semcom",
    help="Task-oriented image communication: real messages, real channels, task quality vs bytes.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # plain click help: prose rewrapped to the terminal at any width, no markup to eat
    # `name[key=value]`, no table columns cropped at narrow widths
    rich_markup_mode=None,
)

DEFAULT_DEMO_CHANNELS = "ideal,bsc:1e-4,erasure:0.05:128"


@contextlib.contextmanager
def _one_image_threads() -> Iterator[None]:
    """One torch thread while a one-image command (send, receive) runs: 64x64 models gain
    nothing from more, and on a busy machine OpenMP spin-waiting costs ~1 s. An explicit
    OMP_NUM_THREADS is respected; the previous setting is restored afterwards."""
    import os

    if "OMP_NUM_THREADS" in os.environ:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _split(csv: str) -> list[str]:
    return [s.strip() for s in csv.split(",") if s.strip()]


def _rates(text: str | None) -> list[float] | None:
    """``--rates`` as numbers (InputError naming the one that is not)."""
    from semcom.errors import InputError

    if not text:
        return None
    out = []
    for item in _split(text):
        try:
            out.append(float(item))
        except ValueError:
            raise InputError(f"--rates: {item!r} is not a number") from None
    return out


def _report_folder(out: Path) -> Path:
    """``out`` as a report folder, checked before any work: an existing file is refused."""
    from semcom.errors import InputError

    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} is an existing file; the report needs a folder")
    return out


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


@app.command(short_help="Transmitter: an image (or a folder of them) to message file(s).")
def send(
    image: Annotated[
        Path,
        typer.Argument(
            help="Image file to transmit (any format Pillow reads), or a folder: then "
            "every image in it is sent, one message each, into the folder -o names."
        ),
    ],
    scheme: Annotated[
        str,
        typer.Option(
            help="Scheme name or spec name[key=value,...] (see `semcom schemes`; patch "
            "schemes take e.g. pixels=q3)."
        ),
    ] = "jpeg",
    rate: Annotated[
        float | None,
        typer.Option(
            help="Rate setting; for codecs the message size in bytes (a promise: the "
            "message is at most that long, or the command fails saying the smallest size "
            "it can reach), for patch schemes the fraction of patches kept. Default: the "
            "scheme's middle default rate."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Message file to write (default msg.smc); for a folder of images, the "
            "folder the .smc files go to (default: IMAGE's name + '-smc').",
        ),
    ] = None,
    resize: Annotated[
        bool,
        typer.Option(
            help="Scale the image to the size a fixed-size scheme takes (the patch "
            "schemes' ViT input, 64x64 for the zoo's), as --fit says; without it such a "
            "scheme refuses an image of another size."
        ),
    ] = False,
    fit: Annotated[
        str,
        typer.Option(
            help="How --resize keeps the picture: 'fit' (whole picture, aspect kept, "
            "padded with white), 'crop' (fill, aspect kept, centre cropped) or "
            "'stretch' (distorted to the size)."
        ),
    ] = "fit",
    progress: Annotated[bool, typer.Option(help="Progress bar when sending a folder.")] = True,
) -> None:
    """Transmitter: turn IMAGE into a message file (.smc) and print its size."""
    from semcom.errors import InputError
    from semcom.schemes import create_scheme

    if fit not in ("fit", "crop", "stretch"):
        raise InputError(f"--fit must be fit, crop or stretch, got {fit!r}")
    with _one_image_threads():
        sch = create_scheme(scheme)
        if rate is None:
            rate = sch.default_rates[len(sch.default_rates) // 2]
        rate = sch.validate_rate(rate)
        if not image.is_dir():
            _send_one(sch, scheme, rate, image, output or Path("msg.smc"), resize, fit)
            return
        _send_folder(sch, scheme, rate, image, output, resize, fit, progress)


def _send_one(
    sch, spec: str, rate: float, image: Path, output: Path, resize: bool, fit: str
) -> None:
    """Send one image file and print what was sent."""
    from semcom.imageio import fit_image, load_image_info

    if output.is_dir():
        raise IsADirectoryError(f"-o {output} is a folder; give a message file name")
    loaded = load_image_info(image)
    img = loaded.image
    side = getattr(sch, "img_size", None)
    notes = list(loaded.notes)
    if resize and isinstance(side, int) and tuple(img.shape[-2:]) != (side, side):
        h0, w0 = img.shape[-2:]
        img = fit_image(img, (side, side), fit).image  # type: ignore[arg-type]
        notes.append(f"resized from {w0}x{h0} to {side}x{side} ({fit})")
    elif resize and not isinstance(side, int):
        notes.append(f"--resize ignored: {sch.name} takes images of any size")
    msg = sch.compress(img, rate)
    output.write_bytes(msg)
    h, w = img.shape[-2:]
    line = (
        f"{output}: {len(msg)} bytes ({len(msg) * 8 / (h * w):.3f} bpp), scheme {spec}, "
        f"rate {sch.rate_label(rate)}, image {w}x{h}"
    )
    typer.echo(line + "".join(f"; {n}" for n in notes))


def _send_folder(sch, spec, rate, folder: Path, output, resize, fit, progress) -> None:
    from semcom.data.images import is_image_file
    from semcom.errors import InputError, SemcomError

    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    if not files:
        raise InputError(f"{folder} is a folder with no image files")
    out_dir = output or folder.with_name(folder.name + "-smc")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"-o {out_dir} is a file; sending a folder needs an output folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    from rich.progress import track

    for path in track(files, description="sending", disable=not progress, transient=True):
        try:
            _send_one(sch, spec, rate, path, out_dir / (path.name + ".smc"), resize, fit)
        except (SemcomError, OSError) as exc:
            failed.append(path.name)
            typer.echo(f"semcom: skipped {path.name}: {_one_line(exc)}", err=True)
    typer.echo(f"{len(files) - len(failed)} of {len(files)} images sent to {out_dir}/")
    if failed:
        raise InputError(f"{len(failed)} image(s) could not be sent: {', '.join(failed[:5])}")


@app.command(short_help="Receiver: decode a message and say what the judges see.")
def receive(
    message: Annotated[Path, typer.Argument(help="Message file (.smc) to decode.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the reconstruction here (PNG).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the task result as JSON.")] = False,
    scheme: Annotated[
        str | None,
        typer.Option(
            help="Decode with this scheme spec, e.g. 'patch-mean[decoder=dec.safetensors]' "
            "for a message made with other models (default: the receiver the message's "
            "header names, with the zoo's models)."
        ),
    ] = None,
) -> None:
    """Receiver: decode a message and print the task result (class, segmentation summary)."""
    from semcom.experiments.receiver import receive_file

    with _one_image_threads():
        result = receive_file(message, output, scheme)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(_describe_result(result))


def _describe_result(result: dict) -> str:
    """The receiver's result as lines of prose (``--json`` gives the same as data)."""

    def judge(info: dict) -> str:
        return f"judge {info['name']} ({info['source']}), trained on {info['trained on']}"

    lines = []
    for key, value in result.items():
        if key in ("classifier", "segmenter", "confidence"):
            continue
        if key == "class":
            conf = result.get("confidence")
            lines.append(f"class: {value} (confidence {conf:.3f})")
            if "classifier" in result:
                lines.append(f"  {judge(result['classifier'])}")
        elif key == "domain":
            lines.append(
                f"domain: {value['verdict']} (distance {value['distance']:.3f}, "
                f"threshold {value['threshold']:.3f})"
            )
        elif key.startswith("segmentation") and isinstance(value, dict):
            parts = ", ".join(f"{k} {v:.1%}" for k, v in value.items()) or "background only"
            lines.append(f"segmentation (share of pixels): {parts}")
            if "segmenter" in result:
                lines.append(f"  {judge(result['segmenter'])}")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)


@app.command(short_help="Show a message's container, field by field.")
def inspect(
    message: Annotated[Path, typer.Argument(help="Message file (.smc) to describe.")],
) -> None:
    """Print a message's container: scheme, header fields, sections, CRC status. A damaged
    message prints what is readable, then one error line naming where the damage is
    (exit code 2)."""
    from semcom.codec.container import inspect_bytes
    from semcom.errors import BitstreamError
    from semcom.experiments.receiver import read_message

    text, problem = inspect_bytes(read_message(message))
    typer.echo(text)
    if problem is not None:
        raise BitstreamError(problem)


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
        typer.Option(help="Anchor scheme of the BD-rate tables (default: jpeg if present)."),
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
    print_summary(records)
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
    size: Annotated[int, typer.Option(help="Image side (images are resized to it).", min=8)] = 64,
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
        size=size,
        classifier=classifier,
        segmenter=segmenter,
        ft_classifier=ft_classifier,
        seed=seed,
        out=_report_folder(out),
        progress=progress,
    )


_one_line = one_line


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="semcom", standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except _cx.NoArgsIsHelpError as e:
        print(e.ctx.get_help() if e.ctx is not None else "semcom --help")
        return 0
    except typer.Abort:
        print("semcom: aborted", file=sys.stderr)
        return 130
    except _cx.ClickException as e:  # usage errors: bad option, missing argument
        print(f"semcom: error: {_one_line(e.format_message())}", file=sys.stderr)
        return 2
    except SemcomError as e:
        print(f"semcom: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # missing / unwritable paths, a file where a folder should be, ...
        text = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
        print(f"semcom: error: {_one_line(text)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("semcom: interrupted", file=sys.stderr)
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
