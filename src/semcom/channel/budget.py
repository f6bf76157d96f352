"""The byte-budget channel: a hard cap on how many bytes one message may use."""

from __future__ import annotations

from typing import Any

from semcom.channel.base import Channel, Received, check_int

__all__ = ["ByteBudgetChannel"]


class ByteBudgetChannel(Channel):
    """Error-free channel that carries at most ``max_bytes`` bytes per message.

    A longer message is truncated: the receiver gets its first ``max_bytes`` bytes and
    knows the rest, ``[max_bytes, L)``, was not delivered.

    Parameters
    ----------
    max_bytes : int
        Budget per message, ``>= 0``.
    seed : int
        Unused (the channel is deterministic); kept for a uniform interface.

    Output
    ------
    ``data[:max_bytes]``; ``erasures = [(max_bytes, L)]`` when truncated, else ``[]``;
    ``channel_bytes = min(L, max_bytes)``; ``info["truncated"]``, ``info["sent_bytes"]``.
    """

    kind = "budget"

    def __init__(self, max_bytes: int, seed: int = 0) -> None:
        self.max_bytes = check_int("max_bytes", max_bytes, 0)
        super().__init__(seed=seed)

    def params(self) -> dict[str, Any]:
        return {"max_bytes": self.max_bytes}

    def _transmit(self, data: bytes) -> Received:
        n = len(data)
        truncated = n > self.max_bytes
        kept = data[: self.max_bytes] if truncated else data
        return Received(
            data=kept,
            erasures=[(self.max_bytes, n)] if truncated else [],
            channel_bytes=len(kept),
            info={"truncated": truncated, "sent_bytes": n},
        )
