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
only when used; every export is imported on first use (:class:`PhysicalChannel` pulls in
torch, the others numpy).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from semcom.channel.base import Channel, Received
    from semcom.channel.bsc import BinarySymmetricChannel
    from semcom.channel.budget import ByteBudgetChannel
    from semcom.channel.erasure import PacketErasureChannel
    from semcom.channel.ideal import IdealChannel
    from semcom.channel.packets import Reassembled, depacketise, packetise
    from semcom.channel.physical import PhysicalChannel
    from semcom.channel.spec import CHANNEL_KINDS, create_channel, parse_spec

# Exports are imported on first use (PEP 562): `semcom channels` and spec parsing need
# neither numpy (the channel classes) nor torch (PhysicalChannel).
_EXPORTS = {
    "CHANNEL_KINDS": "semcom.channel.spec",
    "BinarySymmetricChannel": "semcom.channel.bsc",
    "ByteBudgetChannel": "semcom.channel.budget",
    "Channel": "semcom.channel.base",
    "IdealChannel": "semcom.channel.ideal",
    "PacketErasureChannel": "semcom.channel.erasure",
    "PhysicalChannel": "semcom.channel.physical",
    "Reassembled": "semcom.channel.packets",
    "Received": "semcom.channel.base",
    "create_channel": "semcom.channel.spec",
    "depacketise": "semcom.channel.packets",
    "packetise": "semcom.channel.packets",
    "parse_spec": "semcom.channel.spec",
}

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
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
