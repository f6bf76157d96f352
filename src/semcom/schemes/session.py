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

    from semcom.errors import BitstreamError
    from semcom.schemes.base import Scheme

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
        local: the sender's own answer when it sends nothing or before the receiver
            has answered (e.g. a confident edge classifier's logits), else None.
    """

    messages: list[bytes] = field(default_factory=list)
    local: Decoded | None = None

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


class SingleMessageReceiver(Receiver):
    """The session adapter of a single-message scheme: ``scheme.decompress`` per message."""

    def __init__(self, scheme: Scheme) -> None:
        super().__init__()
        self.scheme = scheme

    def receive(self, data: bytes, erasures: Erasures = ()) -> Decoded:
        return self.accept(self.scheme.decompress(data, erasures=erasures))


def receive_all(
    scheme: Scheme,
    receivers: Sequence[Receiver],
    data: Sequence[bytes],
    erasures: Sequence[Erasures],
) -> list[Decoded | BitstreamError]:
    """One message to each of ``receivers`` (``data[i]`` to ``receivers[i]``); a message that
    fails comes back as its BitstreamError (not raised). Single-message receivers of
    ``scheme`` are decoded together through ``scheme.decompress_batch`` (vectorised)."""
    from semcom.errors import BitstreamError

    if all(isinstance(r, SingleMessageReceiver) and r.scheme is scheme for r in receivers):
        results = scheme.decompress_batch(list(data), list(erasures))
        for rx, res in zip(receivers, results, strict=True):
            if not isinstance(res, BaseException):
                rx.accept(res)
        return results
    out: list[Decoded | BitstreamError] = []
    for rx, d, e in zip(receivers, data, erasures, strict=True):
        try:
            out.append(rx.receive(d, e))
        except BitstreamError as exc:
            out.append(exc)
    return out


def run_session(
    scheme: Scheme, image: torch.Tensor, rate: float, channel: Any = None
) -> tuple[Transmission, Decoded]:
    """One image through ``scheme``'s transmitter, (optionally) a channel, and a fresh
    receiver, stopping when the receiver is satisfied: the transmission and the final
    answer (the sender's own answer when nothing was sent; an empty :class:`Decoded`
    when nothing usable arrived). A byte budget the scheme cannot meet sends its
    smallest message (:class:`~semcom.errors.BudgetError`)."""
    from semcom.errors import BitstreamError, BudgetError

    try:
        tx = scheme.transmit(image, rate)
    except BudgetError as exc:
        tx = Transmission([exc.message])
    receiver = scheme.open_receiver()
    sent = []
    for data in tx.messages:
        sent.append(data)
        rx = channel(data) if channel is not None else None
        try:
            step = receiver.receive(rx.data if rx else data, rx.erasures if rx else ())
        except BitstreamError:
            continue
        if step.satisfied and not scheme.single_message:
            break
    if not tx.messages:
        return tx, tx.local or Decoded(satisfied=False)
    return Transmission(sent, tx.local), receiver.result()
