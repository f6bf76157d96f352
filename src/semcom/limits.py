"""Size limits shared by every sender and receiver (one place, so both sides agree).

An image is accepted when each side is at most :data:`MAX_SIDE` pixels and it holds at
most :data:`MAX_PIXELS` pixels: enough for today's cameras (a 50 MP photo is about
8660 x 5770; 24 MP is 6000 x 4000) and panoramas up to 16384 px long, while a decoded
RGB image stays below 300 MB. The sender checks an image before it decodes its pixels
(file header only) and before it encodes it; the receiver checks the size a message's
header declares before it allocates anything. So a message that was sent can always be
received.

Pillow's own decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``) is set to
:data:`MAX_PIXELS` when :mod:`semcom.imageio` is imported, deliberately, instead of
being left at Pillow's default.
"""

from __future__ import annotations

__all__ = ["MAX_PIXELS", "MAX_SIDE", "size_problem"]

#: Largest image side, in pixels, that semcom sends or receives.
MAX_SIDE = 16384
#: Largest image area, in pixels, that semcom sends or receives (100 MP).
MAX_PIXELS = 100_000_000


def size_problem(height: int, width: int) -> str | None:
    """Why an image of ``height`` x ``width`` pixels is out of bounds, or None if it is fine.

    The text reads after "image is ...": e.g. ``"67000000x1 pixels: a side is longer than
    16384"``.
    """
    if height < 1 or width < 1:
        return f"{width}x{height} pixels: empty"
    if height > MAX_SIDE or width > MAX_SIDE:
        return f"{width}x{height} pixels: a side is longer than the limit of {MAX_SIDE}"
    if height * width > MAX_PIXELS:
        return (
            f"{width}x{height} pixels = {height * width / 1e6:.1f} MP, more than the "
            f"limit of {MAX_PIXELS / 1e6:g} MP"
        )
    return None
