"""Reading and writing image files for the command line.

Image files are **untrusted input**. Every problem with one (missing, unreadable,
truncated, corrupt, too large, unsupported) comes out as :class:`semcom.errors.InputError`
with one line that names the file, never as a raw Pillow exception or a ``MemoryError``.

Size limits
    The size a file's header declares is checked against
    :func:`semcom.limits.size_problem` (each side at most :data:`~semcom.limits.MAX_SIDE`,
    at most :data:`~semcom.limits.MAX_PIXELS` pixels) *before* any pixel is decoded:
    Pillow's :func:`PIL.Image.open` is lazy and reads the header only. Pillow's own
    decompression-bomb guard is set deliberately, when this module is imported::

        PIL.Image.MAX_IMAGE_PIXELS = semcom.limits.MAX_PIXELS

    and both its ``DecompressionBombWarning`` (more than that many pixels) and its
    ``DecompressionBombError`` (more than twice that) become :class:`InputError`.
    EPS files (PostScript programs, which Pillow hands to Ghostscript) are refused.

What loading does (:func:`load_image_info` reports each step in ``notes``)
    * Only the first frame of an animation or multi-page file is used.
    * The EXIF orientation tag (or XMP ``tiff:Orientation``) is applied, as photo
      viewers do, so the tensor is the picture as a viewer shows it.
    * Every Pillow mode becomes 8-bit RGB:

      ========================  ===========================================================
      mode                      conversion
      ========================  ===========================================================
      ``RGB``                   as is (16-bit-per-channel PNGs: Pillow keeps the high byte)
      ``L``, ``1``              grey replicated to R, G, B (``1``: 0 or 255)
      ``P``                     palette looked up
      ``CMYK``, ``YCbCr`` ...   Pillow's ``convert("RGB")`` (no ICC colour profile applied)
      ``I;16`` (16-bit grey)    ``v >> 8`` (the high byte; 65535 -> 255, 257*k -> k)
      ``I`` (32-bit int grey)   read as 16-bit data (that is what Pillow gives for 16-bit
                                PNGs in some versions): clipped to 0..65535, then ``>> 8``
      ``F`` (32-bit float)      values taken as [0, 1]: ``round(v * 255)``, values outside
                                clipped, NaN -> 0
      ``RGBA``, ``LA``, ``PA``  alpha composited on :data:`BACKGROUND` (white)
      transparency key          (``P``/``L``/``RGB``/``I;16`` with a PNG ``tRNS`` chunk or a
                                GIF transparent index) composited on :data:`BACKGROUND`
      ========================  ===========================================================

Resizing
    :func:`fit_image` scales a picture to a given size keeping its aspect ratio
    (``"fit"``: inside, padded with :data:`BACKGROUND`, centred; ``"crop"``: cover, then
    centre-crop) or not (``"stretch"``, the same as :func:`resize_image`), always with
    Pillow's bicubic filter; :func:`unfit_image` undoes a ``"fit"``.

Tensors are ``torch.uint8`` of shape ``(3, H, W)`` (RGB, channel first) throughout.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps

from semcom import limits
from semcom.errors import InputError, one_line

__all__ = [
    "BACKGROUND",
    "FitMode",
    "FittedImage",
    "LoadedImage",
    "fit_image",
    "load_image",
    "load_image_info",
    "resize_image",
    "save_image",
    "to_rgb8",
    "unfit_image",
]

# Pillow's decompression-bomb guard, set deliberately to the project's limit (see above).
Image.MAX_IMAGE_PIXELS = limits.MAX_PIXELS

#: Background colour (RGB) that transparent pixels are composited on and that
#: :func:`fit_image` pads with: white, as most viewers show transparency on a page.
BACKGROUND: tuple[int, int, int] = (255, 255, 255)

#: How :func:`fit_image` maps a picture onto the requested size.
FitMode = Literal["fit", "crop", "stretch"]
_FIT_MODES = ("fit", "crop", "stretch")

#: What Pillow raises while reading a bad file (its plugins are not consistent about it).
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes UnidentifiedImageError, "image file is truncated"
    ValueError,
    SyntaxError,  # "broken PNG file", "not a TIFF file" ...
    struct.error,
    EOFError,
    MemoryError,
    KeyError,
    IndexError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
)

#: Formats refused even though Pillow can open them, and why.
REFUSED_FORMATS = {"EPS": "PostScript (EPS) files are programs run by Ghostscript"}

_ORIENTATIONS = {
    2: "mirrored left-right",
    3: "rotated 180 degrees",
    4: "mirrored top-bottom",
    5: "transposed",
    6: "rotated 90 degrees clockwise",
    7: "transversed",
    8: "rotated 90 degrees counter-clockwise",
}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class LoadedImage:
    """An image file read by :func:`load_image_info`, with what was done to it.

    Attributes:
        image: ``torch.uint8`` ``(3, H, W)`` RGB, as a viewer shows the file (orientation
            applied, transparency composited).
        notes: Human-readable sentences, one per change that is not a plain decode, e.g.
            ``"alpha channel composited on white"``, ``"EXIF orientation 6 applied
            (rotated 90 degrees clockwise)"``, ``"16-bit greyscale scaled to 8 bits"``.
            Empty for a plain 8-bit RGB/grey/palette file.
        original_size: ``(height, width)`` of the pixel grid stored in the file, before the
            orientation was applied (``image.shape[1:]`` is the size after).
        mode: Pillow's mode of the file (``"RGB"``, ``"P"``, ``"I;16"``, ``"F"`` ...).
        format: Pillow's format name (``"PNG"``, ``"JPEG"`` ...), or None if unknown.
    """

    image: torch.Tensor
    notes: tuple[str, ...]
    original_size: tuple[int, int]
    mode: str
    format: str | None = None


@dataclass(frozen=True)
class FittedImage:
    """The result of :func:`fit_image`.

    Attributes:
        image: ``torch.uint8`` ``(3, height, width)``, the requested size.
        box: ``(top, left, height, width)`` of the region of ``image`` that holds the
            picture: without the padding for ``"fit"``, the whole image for ``"crop"`` and
            ``"stretch"``. ``image[:, top:top + height, left:left + width]`` crops it back.
    """

    image: torch.Tensor
    box: tuple[int, int, int, int]


def _one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    return one_line(text, limit)


def _unreadable(p: Path, e: BaseException) -> InputError:
    """The InputError for a file Pillow failed on with ``e``."""
    name = "struct.error" if isinstance(e, struct.error) else type(e).__name__
    msg = "out of memory while decoding" if isinstance(e, MemoryError) else _one_line(e)
    return InputError(
        f"{p}: not a readable image ({name}: {msg})"
        if msg
        else f"{p}: not a readable image ({name})"
    )


def _colour_name(rgb: tuple[int, int, int]) -> str:
    return {(255, 255, 255): "white", (0, 0, 0): "black"}.get(tuple(rgb), f"RGB{tuple(rgb)}")


def _check_background(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """``background`` as three ints in 0..255; InputError otherwise."""
    try:
        r, g, b = (int(c) for c in background)
    except (TypeError, ValueError):
        raise InputError(f"background must be (R, G, B), got {background!r}") from None
    if not all(0 <= c <= 255 for c in (r, g, b)):
        raise InputError(f"background must be three values in 0..255, got {background!r}")
    return r, g, b


def _composite(rgba: Image.Image, background: tuple[int, int, int]) -> tuple[Image.Image, bool]:
    """RGBA Pillow image -> (RGB image on ``background``, whether any pixel was transparent)."""
    alpha = rgba.getchannel("A")
    lo, _hi = alpha.getextrema()
    rgb = rgba.convert("RGB")
    if lo == 255:  # fully opaque: nothing to composite
        return rgb, False
    out = Image.new("RGB", rgba.size, background)
    out.paste(rgb, (0, 0), alpha)
    return out, True


def to_rgb8(
    im: Image.Image, background: tuple[int, int, int] = BACKGROUND
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Convert a decoded Pillow image of any mode to 8-bit RGB (table in the module doc).

    Args:
        im: A loaded Pillow image (orientation is not looked at here).
        background: RGB colour that transparent pixels are composited on.

    Returns:
        ``(array, notes)``: ``array`` is ``np.uint8`` ``(H, W, 3)``; ``notes`` are the
        sentences for :attr:`LoadedImage.notes` (empty if the conversion lost nothing).

    Raises:
        InputError: the mode cannot be converted.
    """
    bg = _check_background(background)
    notes: list[str] = []
    mode = im.mode
    trns = im.info.get("transparency")
    what = "alpha channel" if ("A" in mode or "a" in mode) else "transparency"
    alpha_note = f"{what} composited on {_colour_name(bg)}"

    if mode.startswith("I;16") or mode == "I" or mode == "F":
        a = np.asarray(im)
        if mode == "F":
            a = a.astype(np.float32, copy=True)
            bad = ~np.isfinite(a)
            clipped = bool(bad.any()) or bool((a < 0).any()) or bool((a > 1).any())
            a[np.isnan(a)] = 0.0
            np.clip(a, 0.0, 1.0, out=a)
            grey = np.rint(a * 255.0).astype(np.uint8)
            notes.append(
                "32-bit float greyscale mapped from [0, 1] to 8 bits"
                + (" (values outside [0, 1] clipped)" if clipped else "")
            )
        else:
            a = a.astype(np.int32 if mode == "I" else np.uint16, copy=False)
            clipped = mode == "I" and (bool((a < 0).any()) or bool((a > 65535).any()))
            a16 = np.clip(a, 0, 65535).astype(np.uint16) if mode == "I" else a
            grey = (a16 >> 8).astype(np.uint8)
            notes.append(
                "16-bit greyscale scaled to 8 bits"
                if mode != "I"
                else "32-bit integer greyscale read as 16-bit and scaled to 8 bits"
                + (" (values outside 0..65535 clipped)" if clipped else "")
            )
        if isinstance(trns, int) and mode != "F":
            alpha = np.where(a == trns, 0, 255).astype(np.uint8)
            la = Image.merge("LA", (Image.fromarray(grey), Image.fromarray(alpha)))
            rgb, composited = _composite(la.convert("RGBA"), bg)
            if composited:
                notes.append(alpha_note)
            return np.asarray(rgb), tuple(notes)
        return np.repeat(grey[:, :, None], 3, axis=2), tuple(notes)

    has_alpha = im.has_transparency_data
    try:
        if has_alpha:
            if mode == "La":  # premultiplied; Pillow cannot convert it directly
                im = im.convert("LA")
            rgb, composited = _composite(im.convert("RGBA"), bg)
            if composited:
                notes.append(alpha_note)
        else:
            rgb = im.convert("RGB")
    except (ValueError, OSError) as e:
        raise InputError(f"cannot convert colour mode {mode} to RGB ({_one_line(e)})") from None
    if mode == "CMYK":
        notes.append("CMYK converted to RGB without a colour profile")
    return np.asarray(rgb), tuple(notes)


def load_image_info(
    path: str | Path,
    *,
    max_pixels: int = limits.MAX_PIXELS,
    background: tuple[int, int, int] = BACKGROUND,
) -> LoadedImage:
    """Read an image file as 8-bit RGB and say what was done to it.

    The size in the file's header is checked before any pixel is decoded, the EXIF
    orientation is applied, and any mode is converted (see the module doc).

    Args:
        path: The image file (any format Pillow reads, except EPS).
        max_pixels: A lower pixel limit than :data:`semcom.limits.MAX_PIXELS`, if wanted
            (it cannot raise that limit).
        background: RGB colour transparent pixels are composited on.

    Returns:
        A :class:`LoadedImage`; its ``image`` is ``torch.uint8`` ``(3, H, W)``.

    Raises:
        InputError: (one line naming the file) missing, not a file, unreadable, not an
            image, truncated or corrupt, too large, or of a mode that cannot be converted.
    """
    p = Path(path)
    bg = _check_background(background)
    try:
        if not p.exists():
            raise InputError(f"no such file: {p}")
        if not p.is_file():
            raise InputError(f"not a file: {p}")
        fp = open(p, "rb")  # closed by the with below
    except OSError as e:
        raise InputError(f"cannot read {p}: {_one_line(e.strerror or e)}") from None
    notes: list[str] = []
    with fp, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(fp)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise InputError(f"{p}: image is too large ({_one_line(e)})") from None
        except _DECODE_ERRORS as e:
            raise _unreadable(p, e) from None
        with im:
            fmt = im.format
            if fmt in REFUSED_FORMATS:
                raise InputError(f"{p}: {fmt} not accepted: {REFUSED_FORMATS[fmt]}")
            w, h = im.size
            problem = limits.size_problem(h, w)
            if problem is None and h * w > max_pixels:
                problem = f"{w}x{h} pixels, more than the limit of {max_pixels}"
            if problem is not None:
                raise InputError(f"{p}: image is {problem}")
            mode = im.mode
            try:
                if getattr(im, "is_animated", False):
                    notes.append(f"only the first of {getattr(im, 'n_frames', '?')} frames used")
                    im.seek(0)
                rawmode = _rawmode(im)
                im.load()
                if mode in ("RGB", "RGBA") and ";16" in rawmode:
                    notes.append("16 bits per channel reduced to 8")
                im, orient_note = _apply_orientation(im)
                if orient_note:
                    notes.append(orient_note)
                arr, mode_notes = to_rgb8(im, bg)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise InputError(f"{p}: image is too large ({_one_line(e)})") from None
            except InputError as e:
                raise InputError(f"{p}: {e}") from None
            except _DECODE_ERRORS as e:
                raise _unreadable(p, e) from None
    notes.extend(mode_notes)
    if not arr.flags.writeable:  # np.asarray(PIL image) is read-only
        arr = arr.copy()
    image = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    return LoadedImage(image=image, notes=tuple(notes), original_size=(h, w), mode=mode, format=fmt)


def _rawmode(im: Image.Image) -> str:
    """The raw mode of the first tile Pillow will decode ("RGB;16B" ...), or ""."""
    try:
        args = im.tile[0].args if im.tile else None
    except (AttributeError, IndexError, TypeError):
        return ""
    if isinstance(args, tuple) and args:
        args = args[0]
    return args if isinstance(args, str) else ""


def _apply_orientation(im: Image.Image) -> tuple[Image.Image, str | None]:
    """Apply the EXIF/XMP orientation of a loaded image; (image, note or None)."""
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION)
    except _DECODE_ERRORS:
        return im, "EXIF data unreadable; orientation not applied"
    if orientation not in _ORIENTATIONS:
        return im, None
    out = ImageOps.exif_transpose(im)
    return out, f"EXIF orientation {orientation} applied ({_ORIENTATIONS[orientation]})"


def load_image(path: str | Path, max_pixels: int = limits.MAX_PIXELS) -> torch.Tensor:
    """Read an image file as ``torch.uint8`` ``(3, H, W)`` RGB.

    The same as ``load_image_info(path, max_pixels=max_pixels).image`` (orientation
    applied, transparency composited on :data:`BACKGROUND`, any mode converted).

    Raises:
        InputError: missing, not an image, corrupt, too large ... (see
            :func:`load_image_info`).
    """
    return load_image_info(path, max_pixels=max_pixels).image


def _check_tensor(x: torch.Tensor, what: str = "image") -> np.ndarray:
    """uint8 (3, H, W) tensor -> contiguous (H, W, 3) numpy array; InputError otherwise."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.uint8 or x.ndim != 3 or x.shape[0] != 3:
        raise InputError(f"{what} must be uint8 of shape (3, H, W), got {x.dtype} {tuple(x.shape)}")
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise InputError(f"{what} is empty: {tuple(x.shape)}")
    return x.detach().cpu().permute(1, 2, 0).contiguous().numpy()


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise InputError(f"size must be (height, width), got {size!r}") from None
    problem = limits.size_problem(h, w)
    if problem is not None:
        raise InputError(f"size (height, width) = ({h}, {w}) is {problem}")
    return h, w


def _to_tensor(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()


def resize_image(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``uint8 (3, H, W)`` to ``size = (height, width)``, bicubic, ignoring aspect.

    This is :func:`fit_image` with ``mode="stretch"``: the picture is distorted when its
    aspect ratio differs from the target's. Returns ``uint8 (3, height, width)``.
    """
    return fit_image(x, size, mode="stretch").image


def _round_div(a: int, b: int) -> int:
    """round(a / b) for positive ints, halves up, exactly."""
    return (2 * a + b) // (2 * b)


def fit_image(
    x: torch.Tensor,
    size: tuple[int, int],
    mode: FitMode = "fit",
    *,
    background: tuple[int, int, int] = BACKGROUND,
) -> FittedImage:
    """Scale a picture to ``size = (height, width)`` with Pillow's bicubic filter.

    Args:
        x: ``torch.uint8`` ``(3, H, W)``.
        size: ``(height, width)`` of the result.
        mode: ``"fit"``: scale to fit inside ``size`` keeping the aspect ratio, centre it,
            pad the rest with ``background`` (:attr:`FittedImage.box` says where the
            picture is). ``"crop"``: scale to cover ``size`` keeping the aspect ratio,
            keep the centre. ``"stretch"``: scale each axis to ``size`` (distorts).
            When ``x`` already has the requested size it is returned unchanged.
        background: RGB padding colour for ``"fit"``.

    Returns:
        A :class:`FittedImage` with ``image`` ``uint8 (3, height, width)``.

    Raises:
        InputError: ``x`` is not ``uint8 (3, H, W)``, ``size`` is not two positive ints
            within :mod:`semcom.limits`, or ``mode`` is unknown.
    """
    if mode not in _FIT_MODES:
        raise InputError(f"unknown fit mode {mode!r}; expected one of {', '.join(_FIT_MODES)}")
    arr = _check_tensor(x)
    th, tw = _check_size(size)
    bg = _check_background(background)
    h0, w0 = arr.shape[:2]
    full = (0, 0, th, tw)
    if (h0, w0) == (th, tw):
        return FittedImage(image=x.detach().cpu().clone().contiguous(), box=full)
    src = Image.fromarray(arr)
    bicubic = Image.Resampling.BICUBIC
    if mode == "stretch":
        return FittedImage(image=_to_tensor(src.resize((tw, th), bicubic)), box=full)
    if mode == "crop":
        # The centred source region with the target's aspect ratio (fractional box).
        if w0 * th > tw * h0:  # source is wider: use full height
            cw, ch = h0 * tw / th, float(h0)
        else:
            cw, ch = float(w0), w0 * th / tw
        left, top = (w0 - cw) / 2, (h0 - ch) / 2
        out = src.resize((tw, th), bicubic, box=(left, top, left + cw, top + ch))
        return FittedImage(image=_to_tensor(out), box=full)
    # fit
    if th * w0 <= tw * h0:  # limited by height
        nh, nw = th, min(tw, max(1, _round_div(w0 * th, h0)))
    else:
        nh, nw = min(th, max(1, _round_div(h0 * tw, w0))), tw
    scaled = src if (nh, nw) == (h0, w0) else src.resize((nw, nh), bicubic)
    top, left = (th - nh) // 2, (tw - nw) // 2
    canvas = Image.new("RGB", (tw, th), bg)
    canvas.paste(scaled, (left, top))
    return FittedImage(image=_to_tensor(canvas), box=(top, left, nh, nw))


def unfit_image(
    x: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Undo a ``"fit"``: crop ``box`` out of ``x`` and scale it (bicubic) to ``size``.

    Args:
        x: ``torch.uint8`` ``(3, H, W)``, e.g. a reconstruction of
            :attr:`FittedImage.image`.
        box: :attr:`FittedImage.box`, ``(top, left, height, width)`` inside ``x``.
        size: ``(height, width)`` wanted, e.g. the original picture's.

    Returns:
        ``torch.uint8`` ``(3, size[0], size[1])``.

    Raises:
        InputError: ``box`` is not inside ``x``, or ``x``/``size`` are invalid.
    """
    _check_tensor(x)
    try:
        top, left, bh, bw = (int(v) for v in box)
    except (TypeError, ValueError):
        raise InputError(f"box must be (top, left, height, width), got {box!r}") from None
    if top < 0 or left < 0 or bh < 1 or bw < 1 or top + bh > x.shape[1] or left + bw > x.shape[2]:
        raise InputError(f"box {box!r} is not inside an image of {tuple(x.shape[1:])}")
    return resize_image(x[:, top : top + bh, left : left + bw], size)


def save_image(x: torch.Tensor, path: str | Path) -> None:
    """Write ``torch.uint8`` ``(3, H, W)`` as an image file.

    The format comes from the suffix (any Pillow writes, case-insensitive; PNG if there is
    none). A file Pillow fails to finish is removed.

    Raises:
        InputError: ``x`` is not ``uint8 (3, H, W)``, the suffix is unknown, the format
            cannot hold the image, or the path cannot be written.
    """
    p = Path(path)
    arr = _check_tensor(x)
    fmt = None if p.suffix else "PNG"
    try:
        Image.fromarray(arr).save(p, format=fmt)
    except (OSError, ValueError, KeyError, TypeError, struct.error) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e
        if isinstance(e, KeyError):
            reason = f"Pillow cannot write {p.suffix or fmt} files"
        raise InputError(f"cannot write {p}: {_one_line(reason)}") from None
