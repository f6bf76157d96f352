"""The packet erasure channel: whole packets are lost; the receiver knows which."""

from __future__ import annotations

from typing import Any

import numpy as np

from semcom.channel.base import Channel, Received, check_int, check_probability
from semcom.channel.bsc import flip_bits, flip_positions
from semcom.channel.packets import MAX_PAYLOAD, OVERHEAD, depacketise, packetise
from semcom.errors import InputError

__all__ = ["PacketErasureChannel"]


class PacketErasureChannel(Channel):
    """Packet network: the message is framed into CRC-protected packets, some are lost.

    The transmitter serialises the message into packets of ``packet_size`` payload bytes
    (:func:`~semcom.channel.packets.packetise`: 12-byte header + payload + CRC32). Each
    packet is lost with probability ``loss`` -- independently, or in bursts following a
    two-state (Gilbert) Markov chain whose bad state loses every packet, with stationary
    loss rate ``loss`` and mean burst length ``burst`` packets. Optionally the surviving
    packets' bytes go through a binary symmetric channel (``ber``); a packet whose CRC
    then fails is dropped too. The receiver reassembles the message from what arrived
    (:func:`~semcom.channel.packets.depacketise`): missing bytes are zero and
    ``erasures`` lists exactly their ranges.

    The burst state carries over from one message to the next (it is a property of the
    link, not of the message); :meth:`reset` redraws it.

    Parameters
    ----------
    loss : float
        Packet loss probability in ``[0, 1]`` (long-run rate for bursty losses).
    packet_size : int
        Payload bytes per packet, ``[1, 65535]`` (default 1024).
    burst : float or None
        Mean burst length in packets (``>= 1`` and ``>= loss / (1 - loss)``); ``None``
        for independent losses.
    ber : float
        Bit error probability applied to the packets that are not lost, ``[0, 0.5]``.
    seed : int
        Seed of the loss and corruption processes.

    Output
    ------
    ``data`` of length ``L`` with lost packets' bytes zeroed; ``erasures`` = merged
    byte ranges of lost or corrupted packets; ``channel_bytes`` = total size of all
    packets sent (``L + OVERHEAD * ceil(L / packet_size)``); ``info`` with
    ``packets``, ``packets_lost``, ``packets_corrupted``.
    """

    kind = "erasure"

    def __init__(
        self,
        loss: float,
        packet_size: int = 1024,
        burst: float | None = None,
        ber: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.loss = check_probability("loss", loss)
        self.packet_size = check_int("packet_size", packet_size, 1, MAX_PAYLOAD)
        self.ber = check_probability("ber", ber, high=0.5)
        self.burst: float | None = None
        if burst is not None:
            if isinstance(burst, bool) or not isinstance(burst, (int, float, np.number)):
                raise InputError(f"burst must be a number, got {burst!r}")
            burst = float(burst)
            low = 1.0 if self.loss == 1.0 else max(1.0, self.loss / (1.0 - self.loss))
            if not np.isfinite(burst) or burst < low:
                raise InputError(
                    f"burst (mean burst length) must be >= {low:.4g} for loss={self.loss}, "
                    f"got {burst}"
                )
            self.burst = burst
        self._bad: bool | None = None
        super().__init__(seed=seed)

    def reset(self) -> None:
        super().reset()
        self._bad = None

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"loss": self.loss, "packet_size": self.packet_size}
        if self.burst is not None:
            out["burst"] = self.burst
        if self.ber > 0:
            out["ber"] = self.ber
        return out

    def _loss_pattern(self, count: int) -> np.ndarray:
        """Which of the next ``count`` packets are lost: bool ``(count,)``."""
        if self.burst is None or self.loss in (0.0, 1.0):
            return self.rng.random(count) < self.loss
        leave_bad = 1.0 / self.burst
        leave_good = min(1.0, self.loss / (self.burst * (1.0 - self.loss)))
        if self._bad is None:
            self._bad = bool(self.rng.random() < self.loss)
        lost = np.empty(count, dtype=bool)
        filled = 0
        while filled < count:
            run = int(self.rng.geometric(leave_bad if self._bad else leave_good))
            take = min(run, count - filled)
            lost[filled : filled + take] = self._bad
            filled += take
            if take == run:  # the run ended inside this message: switch state
                self._bad = not self._bad
        return lost

    def _transmit(self, data: bytes) -> Received:
        packets = packetise(data, self.packet_size)
        sent_bytes = sum(len(p) for p in packets)
        lost = self._loss_pattern(len(packets))
        arrived = [p for p, gone in zip(packets, lost.tolist(), strict=True) if not gone]
        bit_errors = 0
        if self.ber > 0 and arrived:
            stream = b"".join(arrived)
            positions = flip_positions(self.rng, 8 * len(stream), self.ber)
            bit_errors = int(positions.size)
            stream = flip_bits(stream, positions)
            bounds = np.cumsum([0] + [len(p) for p in arrived]).tolist()
            arrived = [stream[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        rebuilt = depacketise(arrived, expected_length=len(data))
        return Received(
            data=rebuilt.data,
            erasures=rebuilt.erasures,
            channel_bytes=sent_bytes,
            info={
                "packets": len(packets),
                "packets_lost": int(lost.sum()),
                "packets_corrupted": rebuilt.corrupted,
                "bit_errors": bit_errors,
                "overhead_bytes": OVERHEAD * len(packets),
            },
        )
