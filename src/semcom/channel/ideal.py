"""The ideal channel: every byte arrives intact."""

from __future__ import annotations

from typing import Any

from semcom.channel.base import Channel, Received

__all__ = ["IdealChannel"]


class IdealChannel(Channel):
    """Error-free channel (the reference point of every sweep).

    Output
    ------
    ``data`` unchanged, no erasures, ``channel_bytes = L``.
    """

    kind = "ideal"

    def params(self) -> dict[str, Any]:
        return {}

    def _transmit(self, data: bytes) -> Received:
        return Received(data=data, erasures=[], channel_bytes=len(data), info={})
