"""The scheme contract: a transmitter/receiver pair registered by name.

A scheme turns one image into one message (bytes, the whole container) and turns a
received message back into the receiver's output. Byte counts are ``len(message)``.

Shapes and dtypes:
    image  : ``torch.uint8`` ``(3, H, W)``
    x_hat  : ``torch.uint8`` ``(3, H, W)`` (reconstruction, when the scheme has one)
    logits : ``torch.float32`` ``(C,)`` (when the receiver classifies by itself)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

from semcom.errors import BitstreamError, InputError

Erasures = Sequence[tuple[int, int]]


class Scheme(ABC):
    """Base class of every transmitter/receiver pair.

    Subclasses set ``name`` (registry key), ``task`` (what the receiver outputs:
    ``"reconstruct"`` or ``"classify"``), ``rate_unit`` (what ``rate`` means) and
    ``default_rates`` (the sweep's rate settings, low to high).
    """

    name: ClassVar[str] = ""
    task: ClassVar[str] = "reconstruct"
    rate_unit: ClassVar[str] = "bytes"
    default_rates: ClassVar[tuple[float, ...]] = ()

    def validate_rate(self, rate: float) -> float:
        """Return ``rate`` if it is a valid setting for this scheme, else raise InputError."""
        return rate

    def unavailable_reason(self) -> str | None:
        """Why this scheme cannot run here (missing zoo weights, codec), or None if it can."""
        return None

    def rate_label(self, rate: float) -> str:
        """Short human label of a rate setting (for tables and plots)."""
        return f"{rate:g} {self.rate_unit}"

    def settings(self, rate: float) -> dict[str, Any]:
        """JSON-able description of this scheme at ``rate`` (stored in result records)."""
        return {"rate": rate, "rate_unit": self.rate_unit}

    @abstractmethod
    def compress(self, image: torch.Tensor, rate: float) -> bytes:
        """Transmitter: ``image`` uint8 ``(3, H, W)`` -> message bytes (whole container)."""

    @abstractmethod
    def decompress(self, data: bytes, *, erasures: Erasures = ()) -> dict[str, Any]:
        """Receiver: message bytes -> ``{"x_hat": uint8 (3, H, W)}`` and/or ``{"logits": ...}``.

        ``erasures`` lists byte ranges the channel reported lost. Raises
        :class:`~semcom.errors.BitstreamError` when nothing usable survived.
        """

    def compress_batch(self, images: torch.Tensor, rate: float) -> list[bytes]:
        """``images`` uint8 ``(N, 3, H, W)`` -> N messages. Override to vectorise."""
        return [self.compress(img, rate) for img in images]

    def decompress_batch(
        self, messages: Sequence[bytes], erasures: Sequence[Erasures] | None = None
    ) -> list[dict[str, Any] | BitstreamError]:
        """Decode many messages; a message that fails comes back as its BitstreamError
        (not raised), so one bad message does not stop the batch. Override to vectorise."""
        out: list[dict[str, Any] | BitstreamError] = []
        for i, data in enumerate(messages):
            try:
                out.append(self.decompress(data, erasures=erasures[i] if erasures else ()))
            except BitstreamError as e:
                out.append(e)
        return out


_SCHEMES: dict[str, Callable[..., Scheme]] = {}


def register_scheme(name: str) -> Callable[[type[Scheme]], type[Scheme]]:
    """Class decorator: make a scheme available as ``create_scheme(name)``."""

    def wrap(cls: type[Scheme]) -> type[Scheme]:
        if name in _SCHEMES:
            raise ValueError(f"scheme {name!r} registered twice")
        _SCHEMES[name] = cls
        return cls

    return wrap


def list_schemes() -> list[str]:
    """Names of every registered scheme, sorted."""
    return sorted(_SCHEMES)


def create_scheme(name: str, **kwargs: Any) -> Scheme:
    """Build the scheme registered as ``name``; unknown names raise InputError."""
    try:
        factory = _SCHEMES[name]
    except KeyError:
        raise InputError(
            f"unknown scheme {name!r}; known schemes: {', '.join(list_schemes())}"
        ) from None
    return factory(**kwargs)
