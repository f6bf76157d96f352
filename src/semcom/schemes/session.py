"""What a receiver returns (:class:`Decoded`) and how a transmission runs as a session.

A transmission is a session: the transmitter turns one image into a
:class:`Transmission` -- zero messages (the sender keeps the image and answers itself,
e.g. a confident edge classifier), one (every codec), or several (progressive or
layered schemes). A stateful :class:`Receiver` takes the messages one by one and answers
after each with a :class:`Decoded`; its ``satisfied`` flag tells the sender it may stop.

Shapes and dtypes (one image, no batch axis):
    x_hat        : ``torch.uint8``   ``(3, H, W)``  reconstruction
    logits       : ``torch.float32`` ``(C,)``       class scores of the receiver's own classifier
    segmentation : ``torch.float32`` ``(K, H, W)``  class scores per pixel
    text         : ``str``                          e.g. a caption received word by word
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from semcom.vocabulary import OUTPUTS

Erasures = Sequence[tuple[int, int]]


@dataclass
class Decoded:
    """A receiver's answer: any of the :data:`OUTPUTS`, plus what it observed.

    Attributes:
        x_hat: uint8 ``(3, H, W)`` reconstruction, or None.
        logits: float32 ``(C,)`` class scores, or None.
        segmentation: float32 ``(K, H, W)`` class scores per pixel, or None.
        text: received / generated text, or None.
        stats: JSON-able observations of the receiver (``lost_patches``, ``quality``,
            ``coded_size``, ...), shown by ``semcom receive``.
        aux: tensors the receiver can show besides its outputs (the patch receiver's
            ``sparse`` image and ``mask`` / ``selected`` patch flags), not judged.
        satisfied: after this message the receiver has what it needs (the sender may
            stop sending). A single-message receiver is satisfied by its message.
    """

    x_hat: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    segmentation: torch.Tensor | None = None
    text: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    aux: dict[str, Any] = field(default_factory=dict)
    satisfied: bool = True

    def produced(self) -> tuple[str, ...]:
        """The :data:`OUTPUTS` this answer holds, in that order."""
        return tuple(name for name in OUTPUTS if getattr(self, name) is not None)

    def __getitem__(self, key: str) -> Any:
        """Read access by name, for scripts written against the old dict results:
        an output, a stat or an aux tensor (KeyError when absent)."""
        if key in OUTPUTS and getattr(self, key) is not None:
            return getattr(self, key)
        for table in (self.stats, self.aux):
            if key in table:
                return table[key]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """:meth:`__getitem__` with a default."""
        try:
            return self[key]
        except KeyError:
            return default

    def replace(self, **changes: Any) -> Decoded:
        """A copy with ``changes`` applied (dicts copied, tensors shared)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["stats"], values["aux"] = dict(self.stats), dict(self.aux)
        return Decoded(**{**values, **changes})


@dataclass
class Transmission:
    """What a transmitter does with one image.

    Attributes:
        messages: the messages, in the order they are sent (each the whole container;
            bytes = the sum of their lengths). Empty when the sender keeps the image.
        local: the sender's own answer (e.g. a confident edge classifier's logits),
            which stands when it sends nothing or when nothing it sent arrived usable;
            else None.
        stats: JSON-able facts of the sender's decision (e.g. ``{"offloaded": 1,
            "patches": 12}``), which :meth:`~semcom.schemes.base.Scheme.measured_cost`
            turns into a result record's costs.
    """

    messages: list[bytes] = field(default_factory=list)
    local: Decoded | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def n_bytes(self) -> int:
        """Bytes of every message of the session."""
        return sum(len(m) for m in self.messages)


class Receiver:
    """The receiving end of one session: takes messages one by one.

    Subclasses implement :meth:`receive`; :meth:`result` is the latest answer (an empty
    :class:`Decoded` before any usable message). A message that cannot be decoded raises
    :class:`~semcom.errors.BitstreamError` and leaves the state as it was.
    """

    def __init__(self) -> None:
        self.latest: Decoded | None = None
        self.steps = 0

    def receive(self, data: bytes, erasures: Erasures = ()) -> Decoded:
        """One message (with the byte ranges the channel reported lost) -> the answer now."""
        raise NotImplementedError

    def accept(self, decoded: Decoded) -> Decoded:
        """Record ``decoded`` as the answer after one more message; returns it."""
        self.latest = decoded
        self.steps += 1
        return decoded

    def result(self) -> Decoded:
        """The latest answer (an empty :class:`Decoded` when none arrived)."""
        return self.latest if self.latest is not None else Decoded(satisfied=False)
