"""The receiver end of ``semcom receive``: decode a message file and run the task models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semcom.errors import BitstreamError, InputError

if TYPE_CHECKING:
    import torch

    from semcom.judges import Judge

MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def read_message(path: Path) -> bytes:
    """Bytes of a message file; InputError when missing or absurdly large."""
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    if path.stat().st_size > MAX_MESSAGE_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes is larger than any message")
    return path.read_bytes()


def describe_task(x_hat: torch.Tensor, judges: Sequence[Judge] | None = None) -> dict[str, Any]:
    """What ``judges`` (default: the zoo's classifier and segmenter, when present) see in
    ``x_hat`` uint8 ``(3, H, W)``; every answer names its judge and the data it was trained
    on, and a zoo judge's domain check says whether the image is like that data
    (:mod:`semcom.models.domain`). Judges trained at another size get the image resized
    (bilinear). An answer key a judge before took gets ``[judge name]`` appended."""
    from semcom.data import to_float

    if judges is None:
        judges = receive_judges(())
    x = to_float(x_hat[None])
    out: dict[str, Any] = {}
    sizes = {j.input_size for j in judges if j.input_size}
    if len(sizes) == 1 and x.shape[-2:] != (next(iter(sizes)),) * 2:
        (s,) = sizes
        out["judged at"] = f"{s}x{s} (resized from {x.shape[-1]}x{x.shape[-2]})"
    silent = []
    for judge in judges:
        answer = judge.describe(x)
        if not answer:
            silent.append(judge.name)
        for key, value in answer.items():
            out[key if key not in out else f"{key} [{judge.name}]"] = value
    if silent:
        out["not judged here"] = (
            f"{', '.join(silent)} compare with the original image (semcom bench measures them)"
        )
    return out


def receive_judges(specs: Sequence[str]) -> list[Judge]:
    """The judges ``semcom receive`` asks: the ``--judge`` specs, else the zoo's classifier
    and segmenter (those present). Judges that need the original image say nothing."""
    from semcom.judges import create_judge
    from semcom.models.zoo import list_zoo

    if specs:
        return [create_judge(s) for s in specs]
    here = set(list_zoo())
    return [create_judge(n) for n in ("shape-classifier", "shape-segmenter") if n in here]


def receive_files(
    paths: Sequence[Path],
    output: Path | None = None,
    scheme_spec: str | None = None,
    judges: Sequence[str] = (),
) -> dict[str, Any]:
    """Decode the messages at ``paths`` -- one session, in order -- optionally save the
    reconstruction, and return the receiver's final answer as plain data.

    ``scheme_spec`` (e.g. ``"patch-mean[decoder=runs/dec.safetensors]"``) decodes with
    that scheme instead of the receiver registered for the first message's wire name.
    """
    from semcom.codec.container import unpack
    from semcom.imageio import save_image
    from semcom.schemes import create_receiver, create_scheme

    if not paths:
        raise InputError("no message files given")
    data = [read_message(p) for p in paths]
    msg = unpack(data[0])
    for path, d in zip(paths[1:], data[1:], strict=True):
        try:
            other = unpack(d, allow_damaged=True).scheme_name
        except BitstreamError:
            continue  # a broken header: its receiving step says so
        if other != msg.scheme_name:
            raise InputError(
                f"{path} is a {other!r} message, {paths[0]} a {msg.scheme_name!r} one: "
                "the messages of one session come from one scheme"
            )
    scheme = create_scheme(scheme_spec) if scheme_spec else create_receiver(msg.scheme_name)
    if len(data) > 1 and scheme.single_message:
        raise InputError(
            f"{scheme.name} sends one message per image: give one file, not {len(data)}"
        )
    receiver = scheme.open_receiver()
    failed: list[str] = []
    for path, d in zip(paths, data, strict=True):
        try:
            receiver.receive(d)
        except BitstreamError as exc:
            if len(data) == 1:
                raise
            failed.append(f"{path}: {exc}")
    if receiver.latest is None:
        raise BitstreamError(f"no message of the session could be decoded ({failed[0]})")
    out = receiver.result()
    result: dict[str, Any] = {"scheme": msg.scheme_name, "bytes": sum(len(d) for d in data)}
    if len(data) > 1:
        result["messages"] = len(data)
    if failed:
        result["not decoded"] = failed
    if out.x_hat is not None:
        result["image"] = f"{out.x_hat.shape[2]}x{out.x_hat.shape[1]}"
    if out.stats.get("coded_size"):
        result["coded at"] = f"{out.stats['coded_size']} (upsampled by the receiver)"
    if out.stats.get("lost_patches"):
        result["lost patches"] = out.stats["lost_patches"]
    if out.text is not None:
        result["text"] = out.text
    if out.logits is not None:
        probs = out.logits.float().softmax(0)
        result["receiver's class"] = int(probs.argmax())
        result["receiver's confidence"] = round(float(probs.max()), 4)
    if out.segmentation is not None:
        seg = out.segmentation.argmax(0)
        counts = seg.flatten().bincount()
        result["receiver's segmentation (fraction of pixels per class id)"] = {
            str(c): round(float(n) / seg.numel(), 4) for c, n in enumerate(counts) if n > 0
        }
    asked = receive_judges(judges) if judges else []
    for j in asked:
        if getattr(out, j.consumes, None) is None:
            raise InputError(
                f"judge {j.name} reads {j.consumes}, which the {msg.scheme_name} receiver "
                f"does not produce (it gives {', '.join(scheme.outputs)})"
            )
    if out.x_hat is not None:
        if output is not None:
            save_image(out.x_hat, output)
            result["reconstruction"] = str(output)
        result.update(describe_task(out.x_hat, asked or receive_judges(())))
    return result


def receive_file(
    path: Path, output: Path | None = None, scheme_spec: str | None = None
) -> dict[str, Any]:
    """:func:`receive_files` of one message file."""
    return receive_files([path], output, scheme_spec)


def judge_image(path: Path, specs: Sequence[str], ref: Path | None = None) -> dict[str, Any]:
    """What the judges ``specs`` say of the image file at ``path`` (``semcom judge``):
    model judges describe it, distance judges measure it against ``ref`` (an image file
    of the same size; InputError when a distance judge has none)."""
    import torch

    from semcom.data import to_float
    from semcom.imageio import load_image_info
    from semcom.judges import create_judge

    if not specs:
        raise InputError("name at least one judge: --judge NAME")
    judges = [create_judge(s) for s in specs]
    img = load_image_info(path).image
    result: dict[str, Any] = {"image": f"{path} ({img.shape[2]}x{img.shape[1]})"}
    sets = [j.name for j in judges if j.yields == "distribution"]
    if sets:
        raise InputError(
            f"{', '.join(sets)} compare(s) sets of images, not one: use it in `semcom bench`"
        )
    distance = [j for j in judges if j.yields == "distance"]
    if distance and ref is None:
        names = ", ".join(j.name for j in distance)
        raise InputError(f"{names} compare(s) with an original: give --ref")
    if ref is not None:
        original = load_image_info(ref).image
        if original.shape != img.shape:
            raise InputError(
                f"--ref {ref} is {original.shape[2]}x{original.shape[1]}, "
                f"{path} {img.shape[2]}x{img.shape[1]}: a distance needs equal sizes"
            )
        with torch.no_grad():
            for j in distance:
                value = float(j(to_float(img[None]), to_float(original[None]))[0])
                better = "higher" if j.higher_is_better else "lower"
                result[j.name] = {"value": round(value, 6), "better": better, "judge": j.info()}
    result.update(describe_task(img, [j for j in judges if j.yields != "distance"]))
    return result
