"""Reading and writing image files for the command line (untrusted input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from semcom.errors import InputError

MAX_PIXELS = 64 * 1024 * 1024


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Read an image file as uint8 ``(3, H, W)`` RGB; InputError if missing or not an image."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such file: {p}")
    try:
        with Image.open(p) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise InputError(f"{p}: image is {w}x{h}, more than {max_pixels} pixels")
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"{p}: not a readable image ({type(e).__name__})") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def resize_image(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 ``(3, H, W)`` to ``size = (height, width)`` with Pillow's bicubic filter."""
    arr = x.permute(1, 2, 0).contiguous().numpy()
    out = Image.fromarray(arr).resize((size[1], size[0]), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(out).copy()).permute(2, 0, 1).contiguous()


def save_image(x: torch.Tensor, path: str | Path) -> None:
    """Write uint8 ``(3, H, W)`` as an image file (format from the suffix, PNG if none)."""
    p = Path(path)
    arr = x.permute(1, 2, 0).contiguous().numpy()
    fmt = None if p.suffix else "PNG"
    try:
        Image.fromarray(arr).save(p, format=fmt)
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"cannot write {p}: {e}") from None
