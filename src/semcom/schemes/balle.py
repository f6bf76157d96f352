"""Ballé et al.'s learned image codecs as a scheme: ``balle[model=CKPT]``.

Transmitter: the image is padded (edge pixels repeated) to a multiple of the model's
stride (16 for the factorized prior, 64 for the scale hyperprior), coded by the model's
``compress`` (:mod:`semcom.models.balle`: the latent ``y``, and for the hyperprior the
hyper-latent ``z`` first needed to decode it), and sent. Receiver: ``decompress``, then
the padding is cropped away. The rate is the model's (its training lambda): another
rate is another ``model=``, as for the VQ-VAE.

Message (scheme id of ``"balle"``)::

    fields   h, w   image size; h * w <= the receiver's max_pixels
             m      the model kind: 0 factorized prior, 1 scale hyperprior (must be the
                    receiver's)
             fp     the first 4 bytes of the model weights' sha256; a receiver holding
                    other weights refuses the message (unless check_models=false)
    sections y      the latent y, range coded (factorized: per-channel tables;
                    hyperprior: the scale table entry h_s(z) picks per element)
             z      (hyperprior only) the hyper-latent z, per-channel tables

Every section must decode exactly (every byte consumed); anything else is a
:class:`~semcom.errors.BitstreamError`. Without an outer channel code a damaged message
is lost as a whole (the container's CRCs say so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.codec.container import Message, pack, unpack
from semcom.data.convert import to_uint8
from semcom.errors import BitstreamError
from semcom.models.fingerprint import FINGERPRINT_BYTES
from semcom.schemes.base import Erasures, parse_each, register_scheme
from semcom.schemes.learned import DEFAULT_MAX_PIXELS, LearnedCodecScheme
from semcom.schemes.session import Decoded

__all__ = ["BalleScheme", "DEFAULT_MODEL"]

#: Zoo name of the model loaded when none is given.
DEFAULT_MODEL = "balle-synth"
_WIRE_NAME = "balle"
_FIELDS = ("h", "w", "m", "fp")


def _kind(model: nn.Module) -> int:
    return 1 if hasattr(model, "gaussian_conditional") else 0


@register_scheme("balle")
class BalleScheme(LearnedCodecScheme):
    """Ballé et al.'s factorized-prior or scale-hyperprior codec (module docstring).

    Args:
        model: a :class:`~semcom.models.balle.FactorizedPrior` /
            :class:`~semcom.models.balle.ScaleHyperprior`, a zoo name or a checkpoint
            path; both ends must hold the same weights.
        kw: ``batch_size``, ``max_pixels``, ``device``, ``check_models``
            (:class:`~semcom.schemes.learned.LearnedCodecScheme`).
    """

    name: ClassVar[str] = "balle"
    role: ClassVar[str] = "baseline"
    family: ClassVar[str] = "learned codec"
    rate_range: ClassVar[str] = (
        "1 only: the rate is the model's (its training lambda); another rate is another model="
    )
    model_attrs: ClassVar[tuple[str, ...]] = ("compress", "decompress", "stride", "update")
    model_kind: ClassVar[str] = "Balle codec"

    def __init__(
        self,
        model: nn.Module | str = DEFAULT_MODEL,
        batch_size: int = 64,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        device: str | torch.device = "cpu",
        check_models: bool = True,
    ) -> None:
        super().__init__(model, batch_size, max_pixels, device, check_models)
        self._adopt()

    def _prepare(self, model: nn.Module) -> nn.Module:
        model = super()._prepare(model)
        model.entropy_bottleneck.tables()  # type: ignore[union-attr, operator] - InputError
        return model

    def rate_label(self, rate: float) -> str:
        """The model's kind (its weights fix the rate)."""
        if self.unavailable_reason() is not None:
            return "model"
        return "hyperprior" if _kind(self.model) else "factorized"

    # ------------------------------------------------------------- transmitter
    def _padded(self, h: int, w: int) -> tuple[int, int]:
        s = int(self.model.stride)
        return -(-h // s) * s, -(-w // s) * s

    def compress_batch(self, images: Tensor, rate: float) -> list[bytes]:
        """uint8 ``(N, 3, H, W)`` -> N messages (each image coded on its own: the
        hyperprior's scales must be computed exactly as the receiver computes them)."""
        self.validate_rate(rate)
        images = self.check_images(images)
        model = self.model
        _, _, h, w = images.shape
        ph, pw = self._padded(int(h), int(w))
        fields = {"h": int(h), "w": int(w), "m": _kind(model), "fp": self.fingerprint()}
        out = []
        with torch.inference_mode():
            for img in images:
                x = img[None].to(self.device).float().div_(255.0)
                if (ph, pw) != (h, w):
                    x = F.pad(x, (0, pw - w, 0, ph - h), mode="replicate")
                strings = model.compress(x)["strings"]  # type: ignore[operator]
                sections = {"y": strings[0], **({"z": strings[1]} if len(strings) > 1 else {})}
                out.append(pack(Message(scheme=_WIRE_NAME, fields=fields, sections=sections)))
        return out

    # ---------------------------------------------------------------- receiver
    def _parse(self, data: bytes, erasures: Erasures) -> Decoded:
        msg = unpack(data, erasures=erasures)
        msg.expect_scheme(_WIRE_NAME)
        msg.expect_fields(_FIELDS)
        model = self.model
        h, w = msg.image_size()
        kind = msg.int_field("m", 0, 1)
        if kind != _kind(model):
            names = ("factorized prior", "scale hyperprior")
            raise BitstreamError(
                f"balle header: a {names[kind]} message, but this receiver holds a "
                f"{names[_kind(model)]}"
            )
        if h * w > self.max_pixels:
            raise BitstreamError(
                f"balle header: image {w}x{h} is larger than this receiver's "
                f"max_pixels={self.max_pixels}"
            )
        self.check_fingerprint(msg.bytes_field("fp", FINGERPRINT_BYTES))
        tags = ["y", "z"] if kind else ["y"]
        msg.expect_sections(tags)
        strings = [msg.section(t, what=f"latent {t}") for t in tags]
        ph, pw = self._padded(h, w)
        with torch.inference_mode():
            x_hat = model.decompress(strings, model.latent_shape(ph, pw))["x_hat"]  # type: ignore[operator]
        x_hat = to_uint8(x_hat[0, :, :h, :w].float().cpu())
        pixels = h * w
        bits = 8.0 * sum(len(s) for s in strings)
        return Decoded(x_hat=x_hat, stats={"bpp_payload": bits / max(pixels, 1)})

    def decompress_batch(
        self, messages: Sequence[bytes], erasures: Sequence[Erasures] | None = None
    ) -> list[Decoded | BitstreamError]:
        """Decode many messages; one that fails comes back as its BitstreamError."""
        results, _ = parse_each(self._parse, messages, erasures)
        return results

    def decompress(self, data: bytes, *, erasures: Erasures = ()) -> Decoded:
        """Message -> :class:`Decoded` with ``x_hat`` uint8 ``(3, H, W)``.

        Raises:
            BitstreamError: a damaged message, or one that disagrees with this receiver's
                model (kind, weights fingerprint, size).
        """
        out = self.decompress_batch([data], [erasures])[0]
        if isinstance(out, BitstreamError):
            raise out
        return out
