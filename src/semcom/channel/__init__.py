"""Seeded channel objects that carry a message's bytes.

Every channel is called on ``bytes`` and returns a :class:`Received` (``data``,
``erasures``, ``channel_bytes``, ``info``); see ``docs/architecture.md``.

* :class:`IdealChannel` (``ideal``): nothing happens to the bytes.
* :class:`ByteBudgetChannel` (``budget:500``): truncated to a per-message byte budget.
* :class:`BinarySymmetricChannel` (``bsc:1e-4``): independent bit flips, not signalled.
* :class:`PacketErasureChannel` (``erasure:0.1:64``): CRC-checked packets are lost;
  their bytes are zero-filled and signalled as ``erasures``.
* :class:`PhysicalChannel` (``awgn:snr_db=5,qam=16,ldpc=0.5``, ``rayleigh:...``):
  optional 5G LDPC + QAM over AWGN or Rayleigh block fading.

Build any of them from a spec with :func:`create_channel`.

The physical channel's Sionna backend is an optional extra (``semcom[phy]``) imported
only when used; :class:`PhysicalChannel` is imported lazily too (it pulls in torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from semcom.channel.base import Channel, Received
from semcom.channel.bsc import BinarySymmetricChannel
from semcom.channel.budget import ByteBudgetChannel
from semcom.channel.erasure import PacketErasureChannel
from semcom.channel.ideal import IdealChannel
from semcom.channel.packets import Reassembled, depacketise, packetise
from semcom.channel.spec import CHANNEL_KINDS, create_channel, parse_spec

if TYPE_CHECKING:
    from semcom.channel.physical import PhysicalChannel

__all__ = [
    "CHANNEL_KINDS",
    "BinarySymmetricChannel",
    "ByteBudgetChannel",
    "Channel",
    "IdealChannel",
    "PacketErasureChannel",
    "PhysicalChannel",
    "Reassembled",
    "Received",
    "create_channel",
    "depacketise",
    "packetise",
    "parse_spec",
]


def __getattr__(name: str) -> Any:
    if name == "PhysicalChannel":
        from semcom.channel.physical import PhysicalChannel

        return PhysicalChannel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
