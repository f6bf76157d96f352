"""``semcom send``, ``receive``, ``judges`` and ``inspect``: one image to messages and back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from semcom.cli.app import (
    _one_image_threads,
    _one_line,
    app,
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
    tx = sch.transmit(img, rate)
    h, w = img.shape[-2:]
    files = _session_files(output, len(tx.messages))
    for path, data in zip(files, tx.messages, strict=True):
        path.write_bytes(data)
    size = tx.n_bytes
    if not files:
        where = "no message (the sender kept the image)"
    elif len(files) == 1:
        where = str(output)
    else:
        where = f"{len(files)} messages {files[0]} .. {files[-1]}"
    line = (
        f"{where}: {size} bytes ({size * 8 / (h * w):.3f} bpp), scheme {spec}, "
        f"rate {sch.rate_label(rate)}, image {w}x{h}"
    )
    if "caption" in tx.stats:  # a text scheme: what Alice said, and what she sent
        sent = ", ".join(tx.stats.get("sent", []))
        notes.append(f'caption "{tx.stats["caption"]}", words sent in order: {sent or "none"}')
    typer.echo(line + "".join(f"; {n}" for n in notes))


def _session_files(output: Path, n: int) -> list[Path]:
    """The files a session of ``n`` messages goes to: ``output`` itself for one message,
    else ``<stem>.<k><suffix>`` (k = 0 .. n-1, in sending order)."""
    if n == 1:
        return [output]
    return [output.with_name(f"{output.stem}.{k}{output.suffix}") for k in range(n)]


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
    messages: Annotated[
        list[Path],
        typer.Argument(
            help="Message file(s) (.smc) to decode; several are one session, in the order "
            "given (e.g. msg.0.smc msg.1.smc from a multi-message scheme)."
        ),
    ],
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
    judge: Annotated[
        list[str] | None,
        typer.Option(
            help="Judge of the reconstruction, NAME or NAME=PATH (see `semcom judges`); "
            "repeat for several. Default: the zoo's shape-classifier and shape-segmenter."
        ),
    ] = None,
) -> None:
    """Receiver: decode a message and print the task result (class, segmentation summary)."""
    from semcom.experiments.receiver import receive_files

    with _one_image_threads():
        result = receive_files(messages, output, scheme, judge or ())
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(_describe_result(result))


@app.command(short_help="List the judges that --judge takes.")
def judges() -> None:
    """List the registered judges: what each measures; NAME=PATH ones read a file."""
    from semcom.judges import list_judges

    for name, text in list_judges().items():
        typer.echo(f"{name:22s} {text}")


def _describe_result(result: dict) -> str:
    """The receiver's result as lines of prose (``--json`` gives the same as data)."""

    def judge(info: dict) -> str:
        return f"judge {info['name']} ({info['source']}), trained on {info['trained on']}"

    lines = []
    for key, value in result.items():
        tag = key[len(key.split(" [")[0]) :]  # " [judge]" of a second judge's answer
        base = key[: len(key) - len(tag)]
        if base in ("classifier", "segmenter", "confidence"):
            continue
        if base == "class":
            conf = result.get("confidence" + tag)
            lines.append(f"class{tag}: {value} (confidence {conf:.3f})")
            if "classifier" + tag in result:
                lines.append(f"  {judge(result['classifier' + tag])}")
        elif key == "domain":
            lines.append(
                f"domain: {value['verdict']} (distance {value['distance']:.3f}, "
                f"threshold {value['threshold']:.3f})"
            )
        elif base.startswith("segmentation") and isinstance(value, dict):
            parts = ", ".join(f"{k} {v:.1%}" for k, v in value.items()) or "background only"
            lines.append(f"segmentation{tag} (share of pixels): {parts}")
            if "segmenter" + tag in result:
                lines.append(f"  {judge(result['segmenter' + tag])}")
        elif isinstance(value, dict) and {"value", "better", "judge"} <= set(value):
            lines.append(f"{key}: {value['value']:.6g} ({value['better']} is better)")
            lines.append(f"  {judge(value['judge'])}")
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
    from semcom.codec.inspect import inspect_bytes
    from semcom.errors import BitstreamError
    from semcom.experiments.receiver import read_message

    text, problem = inspect_bytes(read_message(message), notes={"fp": _fingerprint_note})
    typer.echo(text)
    if problem is not None:
        raise BitstreamError(problem)


def _fingerprint_note(value: object) -> str:
    """What a patch message's ``fp`` field names: the zoo model with those weights."""
    if not isinstance(value, bytes):
        return repr(value)
    from semcom.models.fingerprint import describe_fingerprint

    return f"receiver's model weights {describe_fingerprint(value)}"


@app.command(short_help="What judges say of one image (class, segmentation, distance to --ref).")
def judge(
    image: Annotated[Path, typer.Argument(help="Image file (any format Pillow reads).")],
    judge: Annotated[
        list[str],
        typer.Option(help="Judge, NAME or NAME=PATH (see `semcom judges`); repeat for several."),
    ],
    ref: Annotated[
        Path | None,
        typer.Option(help="Original image, for judges that measure a distance (PSNR, LPIPS)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answers as JSON.")] = False,
) -> None:
    """Print what each judge says of IMAGE: a classifier its class and confidence (with its
    training domain), a segmenter its segmentation summary, a distance judge its distance
    to --ref (same size as IMAGE)."""
    from semcom.experiments.receiver import judge_image

    with _one_image_threads():
        result = judge_image(image, judge, ref)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(_describe_result(result))
