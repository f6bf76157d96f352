"""Classical image codecs (JPEG, WebP, AVIF through Pillow) and raw pixels as schemes.

The rate setting of a codec scheme is a **target message size in bytes** (whole
container, header included): the transmitter searches for the highest codec quality
whose message fits (matched bytes). A budget below the codec's floor (its lowest
quality; at 64x64 about 350 B for JPEG, 170 B for WebP, 420 B for AVIF, whose container
boxes alone take ~300 B) yields that lowest-quality message, larger than the budget: the
byte count reported is always the real one. ``raw`` sends the 8-bit pixels.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from semcom.codec.container import Message, pack, unpack
from semcom.errors import BitstreamError, BudgetError, InputError
from semcom.schemes.base import Erasures, Scheme, register_scheme, register_variant
from semcom.schemes.session import Decoded


def _check_image(image: torch.Tensor) -> tuple[int, int]:
    from semcom.limits import size_problem

    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise InputError(
            f"expected a uint8 (3, H, W) image, got {image.dtype} {tuple(image.shape)}"
        )
    h, w = int(image.shape[1]), int(image.shape[2])
    problem = size_problem(h, w)
    if problem is not None:
        raise InputError(f"image is {problem}")
    return h, w


def _header_overhead(scheme: str, fields: dict[str, Any], payload_len: int) -> int:
    """Container bytes around a payload of ``payload_len`` bytes."""
    msg = Message(scheme=scheme, fields=fields, sections={"img": bytes(payload_len)})
    return len(pack(msg)) - payload_len


#: Most downscaling steps of ``scale=auto`` (each step is a factor 1/sqrt(2)).
MAX_SCALE_STEPS = 24


def scaled_size(h: int, w: int, step: int) -> tuple[int, int]:
    """Size coded at downscaling ``step`` (factor ``2 ** (-step / 2)`` per side)."""
    f = 2.0 ** (-step / 2)
    return max(1, round(h * f)), max(1, round(w * f))


def scale_steps(h: int, w: int, min_side: int) -> list[int]:
    """Downscaling steps ``scale="auto"`` tries: 0, 1, ... while no side of
    :func:`scaled_size` drops below ``min_side`` (or the image's own smaller side)."""
    steps = [0]
    while len(steps) <= MAX_SCALE_STEPS:
        nxt = scaled_size(h, w, steps[-1] + 1)
        if min(nxt) < min(min_side, h, w) or nxt == scaled_size(h, w, steps[-1]):
            break
        steps.append(steps[-1] + 1)
    return steps


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    from semcom.imageio import resize_image

    return image if tuple(image.shape[1:]) == size else resize_image(image, size)


class PillowCodecScheme(Scheme):
    """A Pillow codec at a matched byte budget: the message is at most ``rate`` bytes.

    Args:
        scale: ``1`` (default) codes the image at its own size; ``"auto"`` searches
            resolution x quality: at each size from the full one down by factors of
            1/sqrt(2) (no side below ``min_side``) the best quality that fits, keeping
            the size whose upsampled reconstruction is closest to the image (MSE); the
            receiver upsamples (bicubic) to the original size. Stronger at low rates, and
            the way a real system meets a budget.
        min_side: smallest side ``scale="auto"`` codes at (pixels).

    A budget the codec cannot meet raises :class:`~semcom.errors.BudgetError` naming the
    smallest message size it can reach (and carrying that message).

    Message: fields ``h``, ``w`` (the image's size), ``q`` (quality), and ``d`` (the
    downscaling step, only when > 0: coded at :func:`scaled_size` ``(h, w, d)``); section
    ``img`` (the codec's bytes).
    """

    fmt: ClassVar[str] = ""
    role: ClassVar[str] = "baseline"
    family: ClassVar[str] = "classical-codec"
    rate_range: ClassVar[str] = "message size in bytes (a promise: at most), 32 .. 2^26"
    default_rates = (240.0, 360.0, 540.0, 800.0, 1200.0, 1800.0)

    def __init__(self, scale: str | int | float = 1, min_side: int = 8) -> None:
        if scale not in ("auto", 1, 1.0, "1"):
            raise InputError(f"{self.name}: scale must be 1 or 'auto', got {scale!r}")
        if isinstance(min_side, bool) or not isinstance(min_side, int) or min_side < 1:
            raise InputError(f"{self.name}: min_side must be a positive int, got {min_side!r}")
        self.scale = "auto" if scale == "auto" else 1
        self.min_side = min_side

    def validate_rate(self, rate: float) -> float:
        if not (rate == rate) or rate < 32 or rate > 1 << 26:
            raise InputError(f"{self.name}: rate is a byte budget in [32, 2^26], got {rate!r}")
        return float(rate)

    def rate_label(self, rate: float) -> str:
        return f"{int(rate)} B"

    def settings(self, rate: float) -> dict[str, Any]:
        return {**super().settings(rate), "scale": self.scale}

    def _steps(self, h: int, w: int) -> list[int]:
        return scale_steps(h, w, self.min_side) if self.scale == "auto" else [0]

    def _encode_at(self, image: torch.Tensor, step: int, budget: int) -> tuple[bytes, Any]:
        from semcom.codec.pillow import encode_to_budget

        h, w = image.shape[1:]
        fields: dict[str, Any] = {"h": int(h), "w": int(w), "q": 100}
        if step:
            fields["d"] = step
        overhead = _header_overhead(self.name, fields, budget)
        small = _resize(image, scaled_size(int(h), int(w), step))
        enc = encode_to_budget(small, self.fmt, max(1, budget - overhead))
        fields["q"] = int(enc.quality)
        return pack(Message(scheme=self.name, fields=fields, sections={"img": enc.data})), enc

    def compress(self, image: torch.Tensor, rate: float) -> bytes:
        from semcom.codec.pillow import QUALITY_RANGES

        h, w = _check_image(image)
        budget = int(self.validate_rate(rate))
        steps = self._steps(h, w)
        best: tuple[float, bytes] | None = None
        smallest: bytes | None = None
        for step in steps:
            msg, enc = self._encode_at(image, step, budget)
            if not enc.fits:
                smallest = msg if smallest is None or len(msg) < len(smallest) else smallest
                continue
            if len(steps) == 1:
                return msg
            err = float((self._rebuild(msg).float() - image.float()).pow(2).mean())
            if best is not None and err >= best[0]:
                break  # quality falls from here on
            best = (err, msg)
            if step == 0 and enc.quality == QUALITY_RANGES[self.fmt][1]:
                break  # full size at the highest quality: nothing smaller does better
        if best is not None:
            return best[1]
        assert smallest is not None
        raise self._budget_error(image, budget, smallest)

    def _budget_error(self, image: torch.Tensor, budget: int, smallest: bytes) -> BudgetError:
        h, w = image.shape[1:]
        text = (
            f"{self.name} cannot fit a {w}x{h} image in {budget} bytes: the smallest "
            f"message it can make is {len(smallest)} bytes"
        )
        if self.scale != "auto":
            last = scale_steps(int(h), int(w), self.min_side)[-1]
            tiny, _ = self._encode_at(image, last, 1)
            if len(tiny) < len(smallest):
                text += f" (with scale=auto: {len(tiny)} bytes)"
        return BudgetError(
            text + f"; raise the rate to at least {len(smallest)}", len(smallest), smallest
        )

    def _rebuild(self, data: bytes) -> torch.Tensor:
        x_hat = self.decompress(data).x_hat
        assert x_hat is not None
        return x_hat

    def decompress(self, data: bytes, *, erasures: Erasures = ()) -> Decoded:
        from semcom.codec.pillow import QUALITY_RANGES, decode_image

        msg = unpack(data, erasures=erasures)
        msg.expect_scheme(self.name)
        msg.expect_fields(("h", "w", "q"), optional=("d",))
        h, w = msg.image_size()
        lo, hi = QUALITY_RANGES[self.fmt]
        quality = msg.int_field("q", lo, hi)
        step = msg.int_field("d", 0, MAX_SCALE_STEPS, default=0)
        sh, sw = scaled_size(h, w, step)
        msg.expect_sections(["img"])
        x_hat = decode_image(msg.section("img", min_size=1), self.fmt, max_pixels=sh * sw)
        if tuple(x_hat.shape) != (3, sh, sw):
            raise BitstreamError(
                f"decoded image is {tuple(x_hat.shape)}, header says (3, {sh}, {sw})"
            )
        out = Decoded(x_hat=_resize(x_hat, (h, w)), stats={"quality": quality})
        if step:
            out.stats["coded_size"] = f"{sw}x{sh}"
        return out


JpegScheme = register_variant(
    PillowCodecScheme,
    "jpeg",
    "JPEG (baseline, 4:2:0, optimised Huffman tables) at a matched byte budget.",
    fmt="jpeg",
)
WebpScheme = register_variant(
    PillowCodecScheme, "webp", "Lossy WebP (method 6) at a matched byte budget.", fmt="webp"
)
AvifScheme = register_variant(
    PillowCodecScheme, "avif", "AVIF (libavif/aom, speed 6) at a matched byte budget.", fmt="avif"
)


@register_scheme("raw")
class RawScheme(Scheme):
    """Uncompressed 8-bit RGB pixels (the upper anchor: 24 bits per pixel)."""

    name = "raw"
    role = "reference"
    rate_unit = "bpp"
    rate_range = "24 bits per pixel only (the 8-bit RGB pixels as they are)"
    default_rates = (24.0,)

    def validate_rate(self, rate: float) -> float:
        if rate != 24:
            raise InputError(f"raw: the only rate is 24 bpp, got {rate!r}")
        return 24.0

    def compress(self, image: torch.Tensor, rate: float = 24.0) -> bytes:
        h, w = _check_image(image)
        payload = image.permute(1, 2, 0).contiguous().numpy().tobytes()
        return pack(Message(scheme="raw", fields={"h": h, "w": w}, sections={"img": payload}))

    def decompress(self, data: bytes, *, erasures: Erasures = ()) -> Decoded:
        msg = unpack(data, erasures=erasures)
        msg.expect_scheme("raw")
        msg.expect_fields(("h", "w"))
        h, w = msg.image_size()
        msg.expect_sections(["img"])
        payload = msg.section("img", min_size=h * w * 3, max_size=h * w * 3)
        x = torch.frombuffer(bytearray(payload), dtype=torch.uint8).view(h, w, 3).permute(2, 0, 1)
        return Decoded(x_hat=x.contiguous())
