"""Reading untrusted image and label files into tensors (Pillow), with clear errors."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from semcom.errors import InputError
from semcom.imageio import REFUSED_FORMATS as _UNSAFE_FORMATS  # EPS: runs Ghostscript

Size = int | tuple[int, int] | None
"""A target size: side of a square, ``(height, width)``, or None to keep the file's size."""


@functools.cache
def _safe_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in Image.OPEN if f not in _UNSAFE_FORMATS)


@functools.cache
def image_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) of the formats Pillow can open safely."""
    formats = set(_safe_formats())
    return frozenset(
        ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in formats
    )


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is a file with an extension Pillow reads (not hidden)."""
    return (
        path.suffix.lower() in image_extensions()
        and not path.name.startswith(".")
        and path.is_file()
    )


def parse_size(size: Size) -> tuple[int, int] | None:
    """``size`` as ``(height, width)`` or None; InputError when invalid."""
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        hw = (size, size)
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        hw = (size[0], size[1])
    else:
        raise InputError(f"size must be an int or (height, width), got {size!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16384 for v in hw):
        raise InputError(f"size must hold ints in 1..16384, got {size!r}")
    return int(hw[0]), int(hw[1])


def _open(path: Path) -> Image.Image:
    """A label file, decoded (size checked against :mod:`semcom.limits` first)."""
    from semcom.limits import size_problem

    try:
        with Image.open(path, formats=_safe_formats()) as im:
            problem = size_problem(im.height, im.width)
            if problem is not None:
                raise InputError(f"{path}: image is {problem}")
            im.load()
            return im.copy()
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"image file not found: {path}") from None
    except Exception as e:  # any decoder failure on untrusted bytes
        why = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        raise InputError(f"cannot read image {path}: {why}") from None


def read_image(path: str | Path, size: Size = None) -> Tensor:
    """Read an image file as uint8 ``(3, H, W)`` RGB, resized (bilinear) to ``size`` if given.

    Decoding is :func:`semcom.imageio.load_image` (size limits checked before decoding,
    EXIF orientation, 16-bit / float / palette / CMYK modes, alpha on white), the same
    as the command line's.
    """
    from semcom.imageio import load_image

    hw = parse_size(size)
    x = load_image(path)
    if hw is None or tuple(x.shape[1:]) == hw:
        return x
    im = Image.fromarray(x.permute(1, 2, 0).numpy())
    arr = np.asarray(im.resize((hw[1], hw[0]), Image.Resampling.BILINEAR), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def read_label(path: str | Path, size: Size = None) -> Tensor:
    """Read a single-channel label image (class ids as pixel values) as int64 ``(H, W)``.

    Palette images give their palette indices. Resizing (to ``size``) is nearest-neighbour.
    """
    hw = parse_size(size)
    im = _open(Path(path))
    if im.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
        raise InputError(f"label image {path} must be single-channel (L/P/I), got mode {im.mode}")
    try:
        if hw is not None and im.size != (hw[1], hw[0]):
            im = im.resize((hw[1], hw[0]), Image.Resampling.NEAREST)
        arr = np.asarray(im).astype(np.int64)
    except Exception as e:
        raise InputError(f"cannot convert label image {path}: {type(e).__name__}: {e}") from None
    if arr.ndim != 2:
        raise InputError(f"label image {path} did not decode to 2-D (shape {arr.shape})")
    return torch.from_numpy(arr)
