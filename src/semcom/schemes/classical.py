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
from semcom.errors import BitstreamError, InputError
from semcom.schemes.base import Erasures, Scheme, register_scheme


def _check_image(image: torch.Tensor) -> tuple[int, int]:
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise InputError(
            f"expected a uint8 (3, H, W) image, got {image.dtype} {tuple(image.shape)}"
        )
    return int(image.shape[1]), int(image.shape[2])


def _header_overhead(scheme: str, fields: dict[str, Any], payload_len: int) -> int:
    """Container bytes around a payload of ``payload_len`` bytes."""
    msg = Message(scheme=scheme, fields=fields, sections={"img": bytes(payload_len)})
    return len(pack(msg)) - payload_len


class PillowCodecScheme(Scheme):
    """A Pillow codec at a matched byte budget.

    Message: fields ``h``, ``w``, ``q`` (quality); section ``img`` (the codec's bytes).
    """

    fmt: ClassVar[str] = ""
    default_rates = (240.0, 360.0, 540.0, 800.0, 1200.0, 1800.0)

    def validate_rate(self, rate: float) -> float:
        if not (rate == rate) or rate < 32 or rate > 1 << 26:
            raise InputError(f"{self.name}: rate is a byte budget in [32, 2^26], got {rate!r}")
        return float(rate)

    def rate_label(self, rate: float) -> str:
        return f"{int(rate)} B"

    def compress(self, image: torch.Tensor, rate: float) -> bytes:
        from semcom.codec.pillow import encode_to_budget

        h, w = _check_image(image)
        budget = int(self.validate_rate(rate))
        fields: dict[str, Any] = {"h": h, "w": w, "q": 100}
        overhead = _header_overhead(self.name, fields, budget)
        enc = encode_to_budget(image, self.fmt, max(1, budget - overhead))
        fields["q"] = int(enc.quality)
        return pack(Message(scheme=self.name, fields=fields, sections={"img": enc.data}))

    def decompress(self, data: bytes, *, erasures: Erasures = ()) -> dict[str, Any]:
        from semcom.codec.pillow import QUALITY_RANGES, decode_image

        msg = unpack(data, erasures=erasures)
        msg.expect_scheme(self.name)
        msg.expect_fields(("h", "w", "q"))
        h, w = msg.image_size()
        lo, hi = QUALITY_RANGES[self.fmt]
        quality = msg.int_field("q", lo, hi)
        msg.expect_sections(["img"])
        x_hat = decode_image(msg.section("img", min_size=1), self.fmt, max_pixels=h * w)
        if tuple(x_hat.shape) != (3, h, w):
            raise BitstreamError(
                f"decoded image is {tuple(x_hat.shape)}, header says (3, {h}, {w})"
            )
        return {"x_hat": x_hat, "quality": quality}


@register_scheme("jpeg")
class JpegScheme(PillowCodecScheme):
    name = "jpeg"
    fmt = "jpeg"


@register_scheme("webp")
class WebpScheme(PillowCodecScheme):
    name = "webp"
    fmt = "webp"


@register_scheme("avif")
class AvifScheme(PillowCodecScheme):
    name = "avif"
    fmt = "avif"


@register_scheme("raw")
class RawScheme(Scheme):
    """Uncompressed 8-bit RGB pixels (the upper anchor). ``rate`` is ignored."""

    name = "raw"
    rate_unit = "bpp"
    default_rates = (24.0,)

    def validate_rate(self, rate: float) -> float:
        if rate != 24:
            raise InputError(f"raw: the only rate is 24 bpp, got {rate!r}")
        return 24.0

    def compress(self, image: torch.Tensor, rate: float = 24.0) -> bytes:
        h, w = _check_image(image)
        payload = image.permute(1, 2, 0).contiguous().numpy().tobytes()
        return pack(Message(scheme="raw", fields={"h": h, "w": w}, sections={"img": payload}))

    def decompress(self, data: bytes, *, erasures: Erasures = ()) -> dict[str, Any]:
        msg = unpack(data, erasures=erasures)
        msg.expect_scheme("raw")
        msg.expect_fields(("h", "w"))
        h, w = msg.image_size()
        msg.expect_sections(["img"])
        payload = msg.section("img", min_size=h * w * 3, max_size=h * w * 3)
        x = torch.frombuffer(bytearray(payload), dtype=torch.uint8).view(h, w, 3).permute(2, 0, 1)
        return {"x_hat": x.contiguous()}
