"""What every learned-codec scheme shares: a model both ends hold, named by a zoo name, a
checkpoint path or a module; the weights' fingerprint in every message; the rate fixed
by the model (the only setting is ``1``: another rate is another ``model=``).

:class:`LearnedCodecScheme` is the base of :class:`~semcom.schemes.vqvae.VQVAEScheme`
(VQ-VAE / GOS-VAE) and :class:`~semcom.schemes.balle.BalleScheme` (Ballé et al.'s
factorized-prior and hyperprior codecs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.schemes.base import Scheme

__all__ = ["DEFAULT_MAX_PIXELS", "LearnedCodecScheme"]

#: Largest image (pixels) the receiver decodes by default: the decoder's activations
#: grow with the image, and a message of a few bytes can declare a large grid.
DEFAULT_MAX_PIXELS = 1 << 22


class LearnedCodecScheme(Scheme):
    """A scheme whose messages a trained model writes and reads (see the module docstring).

    Args:
        model: the codec -- a module, a zoo name or a checkpoint path (loaded at first
            use); both ends must hold the same weights.
        batch_size: images per encoder / decoder forward.
        max_pixels: largest image (H x W pixels) sent or received; a message declaring a
            larger one is refused before anything is allocated.
        device: torch device of the model.
        check_models: the receiver refuses (ModelMismatchError) a message whose fp field
            names other model weights than its own; false decodes it anyway.
    """

    rate_unit: ClassVar[str] = "setting"
    rate_range: ClassVar[str] = "1 only: the rate is the model's; another rate is another model="
    default_rates: ClassVar[tuple[float, ...]] = (1.0,)
    #: attributes a model must have to be this scheme's codec
    model_attrs: ClassVar[tuple[str, ...]] = ()
    #: what the codec is called in messages
    model_kind: ClassVar[str] = "codec"

    def __init__(
        self,
        model: nn.Module | str,
        batch_size: int = 64,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        device: str | torch.device = "cpu",
        check_models: bool = True,
    ) -> None:
        for what, value in (("batch_size", batch_size), ("max_pixels", max_pixels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{self.name}: {what} must be a positive int, got {value!r}")
        if not isinstance(model, (str, Path, nn.Module)):
            raise InputError(
                f"{self.name}: model must be a {self.model_kind}, a zoo name or a path, got "
                f"{type(model).__name__}"
            )
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.device = torch.device(device)
        self.check_models = bool(check_models)
        self._spec: nn.Module | str = str(model) if isinstance(model, Path) else model
        self._model: nn.Module | None = None
        self._fp: bytes | None = None

    def _adopt(self) -> None:
        """Prepare a model given as a module (call at the end of a subclass's __init__)."""
        if isinstance(self._spec, nn.Module):
            self._model = self._prepare(self._spec)

    # ------------------------------------------------------------------ model
    def unavailable_reason(self) -> str | None:
        """Why the model cannot be had here (no zoo weights, no file), or None."""
        if not isinstance(self._spec, str):
            return None
        from semcom.models.zoo import is_checkpoint_path, list_zoo

        if is_checkpoint_path(self._spec):
            return None if Path(self._spec).is_file() else f"no checkpoint file {self._spec}"
        if self._spec not in list_zoo():
            return (
                f"no zoo weights for {self._spec}: give model=CKPT (a checkpoint of "
                f"`semcom train --model {self._spec}`)"
            )
        return None

    def _prepare(self, model: nn.Module) -> nn.Module:
        """Check that ``model`` is this scheme's kind of codec; returns it in eval mode."""
        for attr in self.model_attrs:
            if not hasattr(model, attr):
                raise InputError(
                    f"{self.name}: model {type(model).__name__} is not a {self.model_kind} "
                    f"(no {attr!r})"
                )
        return model.to(self.device).eval()

    @property
    def model(self) -> nn.Module:
        """The codec (loaded from the zoo or its file at first use)."""
        if self._model is None:
            reason = self.unavailable_reason()
            if reason is not None:
                raise InputError(f"{self.name}: {reason}")
            from semcom.models.zoo import load_model

            assert isinstance(self._spec, str)
            self._model = self._prepare(load_model(self._spec))
        return self._model

    def fingerprint(self) -> bytes:
        """:data:`~semcom.models.fingerprint.FINGERPRINT_BYTES` bytes naming the weights."""
        if self._fp is None:
            from semcom.models.fingerprint import combine, spec_fingerprint

            self._fp = combine([spec_fingerprint(self._spec)])
        return self._fp

    def _source(self) -> str:
        if isinstance(self._spec, str):
            from semcom.models.zoo import is_checkpoint_path

            return f"file {self._spec}" if is_checkpoint_path(self._spec) else f"zoo: {self._spec}"
        return "a model given in memory"

    def check_fingerprint(self, sent: bytes) -> None:
        """Refuse (ModelMismatchError) a message written with other weights."""
        if not self.check_models or sent == self.fingerprint():
            return
        from semcom.models.fingerprint import mismatch_error

        raise mismatch_error(
            sent, self.fingerprint(), self._source(), self.model_kind, f"{self.name}[model=PATH]"
        )

    # ------------------------------------------------------------------ rates
    def validate_rate(self, rate: float) -> float:
        """The only setting is ``1`` (the model fixes the rate)."""
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
            raise InputError(f"{self.name}: the only rate is 1, got {rate!r}")
        if float(rate) != 1.0:
            raise InputError(
                f"{self.name}: the only rate is 1 (the model fixes it; another rate is "
                f"another model=), got {rate!r}"
            )
        return 1.0

    def settings(self, rate: float) -> dict[str, Any]:
        spec = self._spec
        name = spec if isinstance(spec, str) else str(getattr(spec, "semcom_name", self.name))
        return {**super().settings(rate), "model": name}

    # ------------------------------------------------------------- transmitter
    def check_images(self, images: Tensor, multiple: int = 1) -> Tensor:
        """uint8 ``(N, 3, H, W)`` images, sides multiples of ``multiple``, at most
        ``max_pixels`` each; InputError otherwise."""
        if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            what = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, Tensor) else ""
            raise InputError(f"{self.name}: expected uint8 images (N, 3, H, W), got {what}")
        _, c, h, w = images.shape
        if c != 3 or h % multiple or w % multiple:
            raise InputError(
                f"{self.name}: images are {c}x{h}x{w}; the model takes 3 channels and sides "
                f"that are multiples of {multiple} (resize or crop them first)"
            )
        from semcom.limits import size_problem

        problem = size_problem(int(h), int(w))
        if problem is None and h * w > self.max_pixels:
            problem = f"{w}x{h} pixels, more than max_pixels={self.max_pixels}"
        if problem is not None:
            raise InputError(f"{self.name}: image is {problem}")
        return images

    def compress(self, image: Tensor, rate: float = 1.0) -> bytes:
        """uint8 ``(3, H, W)`` -> message bytes."""
        if not isinstance(image, Tensor) or image.ndim != 3:
            raise InputError(f"{self.name}: expected a uint8 (3, H, W) image")
        return self.compress_batch(image.unsqueeze(0), rate)[0]
