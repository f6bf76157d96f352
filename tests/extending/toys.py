"""A scheme, a judge and a channel added from outside the package, exactly as
docs/architecture.md ("Adding a scheme, a judge and a channel") walks through it."""

from __future__ import annotations

import torch

from semcom.channel.base import Channel, Received, check_probability
from semcom.channel.spec import register_channel
from semcom.codec.container import Message, pack, register_scheme_id, unpack
from semcom.judges import Judge, register_judge
from semcom.schemes import register_scheme
from semcom.schemes.base import Scheme
from semcom.schemes.session import Decoded

# --------------------------------------------------------------------------- a scheme
register_scheme_id("mean-colour", 0xF0F0)  # a wire id no other scheme uses


@register_scheme("mean-colour")
class MeanColourScheme(Scheme):
    """Sends the image's mean colour (3 bytes); the receiver paints the whole image with it."""

    name = "mean-colour"
    outputs = ("x_hat",)
    role = "proposed"
    family = "mean-colour"
    rate_unit = "setting"
    default_rates = (1.0,)

    def compress(self, image: torch.Tensor, rate: float) -> bytes:
        h, w = image.shape[1:]
        rgb = image.float().mean((1, 2)).round().to(torch.uint8)
        return pack(Message("mean-colour", {"h": h, "w": w}, {"rgb": bytes(rgb.tolist())}))

    def decompress(self, data: bytes, *, erasures=()) -> Decoded:
        msg = unpack(data, erasures=erasures)
        msg.expect_scheme("mean-colour")
        msg.expect_fields(("h", "w"))
        h, w = msg.image_size()
        msg.expect_sections(["rgb"])
        rgb = torch.tensor(list(msg.section("rgb", min_size=3, max_size=3)), dtype=torch.uint8)
        return Decoded(x_hat=rgb.view(3, 1, 1).expand(3, h, w).contiguous())


# --------------------------------------------------------------------------- a judge
class MeanAbsoluteError(Judge):
    """Mean absolute pixel error against the original (smaller is better)."""

    yields = "distance"
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__("mae", ("mae",), domain="any image (a formula)", source="formula")

    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return (x - ref).abs().mean((1, 2, 3))


@register_judge("mae", "mean absolute pixel error (smaller is better)")
def _mae(path: str | None) -> Judge:
    return MeanAbsoluteError()


# --------------------------------------------------------------------------- a channel
class MessageDropChannel(Channel):
    """Loses a whole message with probability ``p`` (the receiver knows it was lost).

    Output
    ------
    ``data`` unchanged, or ``L`` zero bytes with ``erasures = [(0, L)]``; ``channel_bytes = L``.
    """

    kind = "drop"

    def __init__(self, p: float = 0.5, seed: int = 0) -> None:
        self.p = check_probability("p", p)
        super().__init__(seed=seed)

    def params(self) -> dict[str, float]:
        return {"p": self.p}

    def _transmit(self, data: bytes) -> Received:
        n = len(data)
        if n and self.rng.random() < self.p:
            return Received(bytes(n), [(0, n)], n, {"lost": True})
        return Received(data, [], n, {"lost": False})


register_channel("drop", MessageDropChannel, positional=("p",))
